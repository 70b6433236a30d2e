package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/testwait"
	"github.com/lightbus-go/lightbus/migrations"
	"github.com/lightbus-go/lightbus/store/postgres"
)

// TestReadPoolOnAHotStandby gives the read pool a real streaming replica
// (a hot standby made with pg_basebackup) of a primary of its own: the
// schema check, the listing, the detail and the live stream work there
// (the stream's horizon, pg_current_snapshot, is the primary's as of the
// standby's replay), and what is fired on the primary appears on the
// standby. It needs PostgreSQL's server binaries (initdb, postgres,
// pg_basebackup): without them it skips, except under CI=true, where it
// fails.
func TestReadPoolOnAHotStandby(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	primaryURL, standbyURL := startStandbyPair(t)

	primary, err := pgxpool.New(ctx, primaryURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(primary.Close)
	if err := migrations.Up(ctx, primary, nil); err != nil {
		t.Fatalf("migrate the primary: %v", err)
	}
	standby, err := pgxpool.New(ctx, standbyURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(standby.Close)
	_, err = standby.Exec(ctx, `CREATE TABLE lightbus_not_on_a_standby ()`)
	if pgErr := (*pgconn.PgError)(nil); !errors.As(err, &pgErr) || pgErr.Code != "25006" { // read_only_sql_transaction
		t.Fatalf("a write on the standby: %v, want it refused as read-only", err)
	}

	db, err := postgres.New(primary, nil, postgres.WithReadPool(standby))
	if err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 30*time.Second, "the standby to replay the migrations", func() bool { return db.ReadReady(ctx) == nil })

	head, err := db.StreamHead(ctx)
	if err != nil {
		t.Fatalf("StreamHead on the standby: %v", err)
	}
	ev, _ := fire(ctx, t, db, "shop", "paid", `{"n":1}`)
	if got, err := db.GetEvent(ctx, ev.ID); err != nil || got.ID != ev.ID {
		t.Fatalf("GetEvent right after the fire: %+v, %v", got, err)
	}
	testwait.For(t, 30*time.Second, "the event in the standby's listing", func() bool {
		events, err := db.ListEvents(ctx, gateway.EventQuery{Limit: 10})
		if err != nil {
			t.Fatalf("ListEvents on the standby: %v", err)
		}
		return slices.Equal(eventIDs(events), []string{ev.ID})
	})
	testwait.For(t, 30*time.Second, "the event in the standby's stream", func() bool {
		streamed, pos, err := db.StreamEvents(ctx, head, gateway.EventFilter{}, 10)
		if err != nil {
			t.Fatalf("StreamEvents on the standby: %v", err)
		}
		if len(streamed) > 1 || len(streamed) == 1 && streamed[0].Event.ID != ev.ID || head.After(pos) {
			t.Fatalf("StreamEvents = %+v at %+v, want the one event after %+v", streamed, pos, head)
		}
		return len(streamed) == 1
	})
	if n := countRows(ctx, t, standby, `SELECT count(*) FROM lightbus_event`); n != 1 {
		t.Errorf("events on the standby = %d, want the 1 fired on the primary", n)
	}
}

// startStandbyPair starts a primary and a hot standby streaming from it,
// each its own server on a free loopback port, stopped at cleanup, and
// returns their URLs.
func startStandbyPair(t *testing.T) (primaryURL, standbyURL string) {
	t.Helper()
	bin := serverBinaries()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("PostgreSQL's server binaries (initdb, postgres, pg_basebackup) are not installed")
		}
		t.Skip("PostgreSQL's server binaries (initdb, postgres, pg_basebackup) are not installed")
	}
	dir, err := os.MkdirTemp("", "lightbus-standby-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var cred *syscall.Credential // PostgreSQL refuses to run as root
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running as root, PostgreSQL needs a postgres user: %v", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		if err := os.Chown(dir, int(uid), int(gid)); err != nil {
			t.Fatal(err)
		}
	}
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", name, err, out)
		}
	}
	primaryDir, standbyDir := filepath.Join(dir, "primary"), filepath.Join(dir, "standby")
	run("initdb", "-D", primaryDir, "-A", "trust", "-U", "postgres", "--no-sync")
	primaryPort := startServer(t, bin, primaryDir, dir, cred)
	primaryURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", primaryPort)
	run("pg_basebackup", "-D", standbyDir, "-R", "-X", "stream", "-c", "fast", "--no-sync",
		"-h", "127.0.0.1", "-p", strconv.Itoa(primaryPort), "-U", "postgres")
	standbyPort := startServer(t, bin, standbyDir, dir, cred)
	standbyURL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", standbyPort)
	return primaryURL, standbyURL
}

// startServer runs postgres on dataDir at a free loopback port until the
// test ends, and returns the port once it accepts connections.
func startServer(t *testing.T, bin, dataDir, socketDir string, cred *syscall.Credential) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", dataDir, "-p", strconv.Itoa(port), "-k", socketDir,
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=30", "-c", "shared_buffers=16MB")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start postgres on %s: %v", dataDir, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("postgres on %s:\n%s", filepath.Base(dataDir), out.String())
		}
	})
	url := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", port)
	testwait.For(t, 30*time.Second, "postgres on "+filepath.Base(dataDir)+" to accept connections", func() bool {
		select {
		case <-exited:
			t.Fatalf("postgres on %s exited:\n%s", dataDir, out.String())
		default:
		}
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			return false
		}
		conn.Close(context.Background())
		return true
	})
	return port
}

// serverBinaries returns a directory holding initdb, postgres and
// pg_basebackup, "" when there is none: Debian's, the newest first, else
// the PATH's.
func serverBinaries() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.Reverse(dirs) // "17" after "15": not numeric, but majors have two digits
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		ok := true
		for _, name := range []string{"initdb", "postgres", "pg_basebackup"} {
			if _, err := os.Stat(filepath.Join(d, name)); err != nil {
				ok = false
			}
		}
		if ok {
			return d
		}
	}
	return ""
}
