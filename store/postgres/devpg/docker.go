package devpg

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/ory/dockertest/v3"
	"github.com/ory/dockertest/v3/docker"
)

// Names of the Docker objects used by the fallback. They are fixed so that a
// later Start finds the same container and data.
const (
	// DockerContainerName is the name of the container run by the fallback.
	DockerContainerName = "lightbus-dev-postgres"
	// DockerVolumeName is the named volume holding the container's data.
	DockerVolumeName = "lightbus-dev-postgres-data"
)

// errDockerUnavailable means the Docker engine cannot be reached.
var errDockerUnavailable = errors.New("no Docker engine reachable")

// dockerDataDir is where the postgres image keeps its cluster (PGDATA).
const dockerDataDir = "/var/lib/postgresql/data"

// startDocker runs the container DockerContainerName, or reuses it. It returns
// an error wrapping errDockerUnavailable when the engine does not answer.
func startDocker(ctx context.Context, opts Options) (*Server, error) {
	pool, err := dockertest.NewPool(opts.DockerEndpoint)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errDockerUnavailable, err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, opts.dockerTimeout)
	err = pool.Client.PingWithContext(pingCtx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w at %s: %v", errDockerUnavailable, pool.Client.Endpoint(), err)
	}

	s := &Server{Method: MethodDocker, DataDir: DockerVolumeName, logger: opts.Logger}
	c, err := findContainer(ctx, pool)
	if err != nil {
		return nil, err
	}
	if c == nil {
		c, err = createContainer(pool, opts.DockerImage)
		if err != nil {
			// Another process may have created it meanwhile.
			if again, findErr := findContainer(ctx, pool); findErr == nil && again != nil {
				c = again
			} else {
				return nil, fmt.Errorf("devpg: run container %s from %s: %w", DockerContainerName, opts.DockerImage, err)
			}
		} else {
			opts.Logger.Info("created dev postgres container", "container", DockerContainerName,
				"docker_image", opts.DockerImage, "volume", DockerVolumeName)
			s.stop = stopContainer(pool, c.ID)
		}
	}
	if !c.State.Running {
		err := pool.Client.StartContainerWithContext(c.ID, nil, ctx)
		var already *docker.ContainerAlreadyRunning
		if err != nil && !errors.As(err, &already) {
			return nil, fmt.Errorf("devpg: start container %s: %w", DockerContainerName, err)
		}
		if err == nil {
			s.stop = stopContainer(pool, c.ID)
		}
	}
	s.Reused = s.stop == nil

	// The host port is assigned when the container starts.
	c, err = pool.Client.InspectContainerWithContext(c.ID, ctx)
	if err != nil {
		return nil, fmt.Errorf("devpg: inspect container %s: %w", DockerContainerName, err)
	}
	port, err := hostPort(c)
	if err != nil {
		return nil, err
	}

	adminURL := serverURL("127.0.0.1", port, "postgres")
	pool.MaxWait = 2 * time.Minute
	err = pool.Retry(func() error {
		if ctx.Err() != nil {
			return backoff.Permanent(ctx.Err())
		}
		return ping(ctx, adminURL)
	})
	if err == nil {
		err = ensureDatabase(ctx, adminURL, opts.Database)
	}
	if err != nil {
		if s.stop != nil {
			_ = s.stop(context.WithoutCancel(ctx))
		}
		return nil, fmt.Errorf("devpg: wait for postgres in container %s: %w", DockerContainerName, err)
	}

	s.URL = serverURL("127.0.0.1", port, opts.Database)
	opts.Logger.Info("dev postgres ready", "method", s.Method, "data_dir", s.DataDir, "url", s.URL,
		"reused", s.Reused, "container", DockerContainerName)
	return s, nil
}

// findContainer returns the container named DockerContainerName, or nil.
func findContainer(ctx context.Context, pool *dockertest.Pool) (*docker.Container, error) {
	list, err := pool.Client.ListContainers(docker.ListContainersOptions{
		All:     true,
		Filters: map[string][]string{"name": {"^/" + DockerContainerName + "$"}}, // the filter is a regexp
		Context: ctx,
	})
	if err != nil {
		return nil, fmt.Errorf("devpg: list containers: %w", err)
	}
	if len(list) == 0 {
		return nil, nil
	}
	c, err := pool.Client.InspectContainerWithContext(list[0].ID, ctx)
	if err != nil {
		return nil, fmt.Errorf("devpg: inspect container %s: %w", DockerContainerName, err)
	}
	return c, nil
}

// createContainer runs image as DockerContainerName with the data in
// DockerVolumeName and port 5432 published on a random loopback port.
func createContainer(pool *dockertest.Pool, image string) (*docker.Container, error) {
	repo, tag := splitImage(image)
	res, err := pool.RunWithOptions(&dockertest.RunOptions{
		Name:       DockerContainerName,
		Repository: repo,
		Tag:        tag,
		Env: []string{
			"POSTGRES_USER=postgres",
			"POSTGRES_HOST_AUTH_METHOD=trust",
			"PGDATA=" + dockerDataDir,
		},
		Mounts:       []string{DockerVolumeName + ":" + dockerDataDir},
		ExposedPorts: []string{"5432/tcp"},
		PortBindings: map[docker.Port][]docker.PortBinding{
			"5432/tcp": {{HostIP: "127.0.0.1", HostPort: ""}},
		},
		Labels: map[string]string{"org.lightbus.dev": "true"},
	}, func(hc *docker.HostConfig) {
		hc.AutoRemove = false
		hc.RestartPolicy = docker.RestartPolicy{Name: "no"}
	})
	if err != nil {
		return nil, err
	}
	return res.Container, nil
}

// stopContainer returns a Server.stop that stops the container and keeps it,
// with its volume, for the next Start.
func stopContainer(pool *dockertest.Pool, id string) func(context.Context) error {
	return func(ctx context.Context) error {
		err := pool.Client.StopContainerWithContext(id, 10, ctx)
		var notRunning *docker.ContainerNotRunning
		if err != nil && !errors.As(err, &notRunning) {
			return fmt.Errorf("devpg: stop container %s: %w", DockerContainerName, err)
		}
		return nil
	}
}

// hostPort returns the host port published for the container's 5432/tcp.
func hostPort(c *docker.Container) (int, error) {
	if c.NetworkSettings != nil {
		for _, b := range c.NetworkSettings.Ports["5432/tcp"] {
			if p, err := strconv.Atoi(b.HostPort); err == nil && p > 0 {
				return p, nil
			}
		}
	}
	return 0, fmt.Errorf("devpg: container %s publishes no host port for 5432/tcp; remove it (docker rm -f %s) to let it be recreated",
		DockerContainerName, DockerContainerName)
}

// splitImage splits "repo:tag" into its parts; the tag defaults to latest.
// A colon in a registry host (localhost:5000/postgres) is not a tag.
func splitImage(image string) (repo, tag string) {
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i+1:], "/") {
		return image, "latest"
	}
	return image[:i], image[i+1:]
}
