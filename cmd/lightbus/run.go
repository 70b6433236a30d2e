package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"

	"github.com/spf13/cobra"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
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
// command line's standard streams, passes SIGINT and SIGTERM on to it and
// returns its exit status as an *exitError (nil when it exits 0). A worker
// killed by a signal is reported on standard error.
//
// The worker must not outlive lightbus run, even one killed with SIGKILL:
// it would stay registered and keep taking calls with old code beside the
// next run's worker. Two mechanisms end it: on Linux the kernel sends it
// SIGTERM when the thread that started it exits (Pdeathsig, so this
// goroutine keeps its OS thread until the worker has exited), and on every
// system but Windows it inherits the read end of a pipe whose write end only
// lightbus run holds: end of file there tells the worker runtime that
// lightbus run is gone.
func (c *cli) runWorker(bin, dir string, args, env []string) error {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if env == nil {
		env = os.Environ()
	}
	cmd.Env = env
	cmd.Stdin = c.stdin
	cmd.Stdout = c.stdout
	cmd.Stderr = c.stderr
	setParentDeathSignal(cmd)

	var parentEnd *os.File
	if runtime.GOOS != "windows" {
		r, w, err := os.Pipe()
		if err != nil {
			return fmt.Errorf("run: %w", err)
		}
		defer w.Close()
		defer r.Close()
		parentEnd = r
		cmd.ExtraFiles = []*os.File{r} // file descriptor 3 in the worker
		cmd.Env = append(cmd.Env, lightbus.EnvParentFD+"=3")
	}

	sigs, stop := c.signals()
	defer stop()

	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run: starting the worker: %w", err)
	}
	if parentEnd != nil {
		parentEnd.Close() // the worker has its own copy
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
	if sig, ok := killedBy(err); ok {
		fmt.Fprintf(c.stderr, "lightbus: worker killed by signal %d (%s)\n", sig, sig)
	}
	return exitStatus(err)
}

// killedBy returns the signal that ended the process whose Wait returned
// err, if one did.
func killedBy(err error) (syscall.Signal, bool) {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return 0, false
	}
	ws, ok := ee.Sys().(syscall.WaitStatus)
	if !ok || !ws.Signaled() {
		return 0, false
	}
	return ws.Signal(), true
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
	if sig, ok := killedBy(err); ok {
		code = 128 + int(sig)
	}
	if code <= 0 {
		code = 1
	}
	return &exitError{code: code}
}
