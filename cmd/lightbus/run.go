package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/spf13/cobra"
)

// runCmd is `lightbus run`: build the worker if its sources changed, then run
// it in the foreground.
func (c *cli) runCmd() *cobra.Command {
	var (
		module  string
		verbose bool
		opts    buildOptions
	)
	cmd := &cobra.Command{
		Use:   "run [--module PATH] [-- ARGS...]",
		Short: "Build (cached) and run the service's worker",
		Long: `run starts the worker process of the service's bus package: it serves the
service's RPCs and listeners and registers them with the gateway.

The bus package (./bus, --module or $LIGHTBUS_MODULE: a directory or an import
path) declares "var Bus = lightbus.MustCreate(...)" and registers APIs and
listeners on it at init. run compiles a small main package around it inside
your module, without writing to your source tree, and keeps the binary in the
user cache directory; it is rebuilt only when the module's Go files, go.mod,
go.sum, the toolchain or the build flags change.

Arguments after -- are passed to the worker, --url as $LIGHTBUS_URL and --token as $LIGHTBUS_TOKEN. SIGINT and SIGTERM are passed on
to it, and run exits with its exit code.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dash := cmd.ArgsLenAtDash(); len(args) > 0 && dash != 0 {
				return fmt.Errorf("run: unexpected argument %q (pass arguments to the worker after --)", args[0])
			}
			dir, err := c.workDir()
			if err != nil {
				return err
			}
			cacheRoot, err := c.cacheDir()
			if err != nil {
				return fmt.Errorf("run: no cache directory for the worker binary: %w", err)
			}
			t, err := c.builder.resolve(cmd.Context(), dir, c.busModule(module))
			if err != nil {
				return err
			}
			bin, built, err := c.builder.cachedWorker(cmd.Context(), cacheRoot, t, opts, c.stderr)
			if err != nil {
				return err
			}
			if !built && verbose {
				c.progress("using cached worker %s\n", bin)
			}
			var set []string
			if cmd.Flags().Changed("url") {
				set = append(set, "LIGHTBUS_URL="+c.url)
			}
			if cmd.Flags().Changed("token") {
				set = append(set, "LIGHTBUS_TOKEN="+c.token)
			}
			var env []string // nil: lightbus's own environment
			if set != nil {
				env = append(os.Environ(), set...)
			}
			return c.runWorker(bin, dir, args, env)
		},
	}
	f := cmd.Flags()
	f.StringVar(&module, "module", "", "the bus package: a directory or an import path ($LIGHTBUS_MODULE, default ./bus)")
	f.BoolVarP(&verbose, "verbose", "v", false, "say which cached worker binary runs")
	f.StringVar(&opts.Tags, "tags", "", "build tags, as go build -tags")
	f.BoolVar(&opts.Race, "race", false, "enable the race detector")
	return cmd
}

// runWorker runs bin in dir with args, env (nil for lightbus's own) and the
// command line's standard streams, passes SIGINT and SIGTERM on to it and returns its exit status as
// an *exitError (nil when it exits 0).
func (c *cli) runWorker(bin, dir string, args, env []string) error {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdin = c.stdin
	cmd.Stdout = c.stdout
	cmd.Stderr = c.stderr

	sigs, stop := c.signals()
	defer stop()

	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run: starting the worker: %w", err)
	}
	done := make(chan struct{})
	go func() {
		for {
			select {
			case sig := <-sigs:
				_ = cmd.Process.Signal(sig)
			case <-done:
				return
			}
		}
	}()
	err := cmd.Wait()
	close(done)
	return exitStatus(err)
}

// exitStatus turns the error of a finished process into an *exitError with
// its exit code, 128+N for a process killed by signal N.
func exitStatus(err error) error {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		if err != nil {
			return fmt.Errorf("run: %w", err)
		}
		return nil
	}
	code := ee.ExitCode()
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	}
	if code <= 0 {
		code = 1
	}
	return &exitError{code: code}
}
