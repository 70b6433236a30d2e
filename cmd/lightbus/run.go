package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	"github.com/lightbus-go/lightbus/internal/names"
)

// runCmd is `lightbus run`: build the worker if its sources changed, then run
// it in the foreground.
func (c *cli) runCmd() *cobra.Command {
	var (
		module  string
		verbose bool
		opts    buildOptions
		ws      workerSettings
	)
	cmd := &cobra.Command{
		Use:   "run [--module PATH] [-- ARGS...]",
		Short: "Build (cached) and run the service's worker",
		Long: `run starts the worker process of the service's bus package: it serves the
service's RPCs and listeners and registers them with the gateway.

The bus package (./bus, --module or $LIGHTBUS_MODULE: a directory or an import
path) declares "var Bus = New()", a constructor that creates the Bus and
registers the service's RPC handlers, listeners and tasks on it. run compiles a small main package around it inside
your module, without writing to your source tree, and keeps the binary in the
user cache directory; it is rebuilt only when the module's Go files, go.mod,
go.sum, the toolchain or the build flags change.

The worker's settings reach it as environment variables, which beat what
the bus package's code sets: --url ($LIGHTBUS_URL), --token
($LIGHTBUS_TOKEN), --service-name ($LIGHTBUS_SERVICE_NAME), --process-name
($LIGHTBUS_PROCESS_NAME, the worker id: {hostname}, {pid}, {random4} and
{friendly} are replaced), --log-level and --log-format ($LIGHTBUS_LOG_LEVEL,
$LIGHTBUS_LOG_FORMAT), --only or --skip ($LIGHTBUS_ONLY, $LIGHTBUS_SKIP:
rpcs, events, tasks). A flag beats the variable, which beats the code.
Arguments after -- are passed to the worker.

SIGINT and SIGTERM are passed on to the worker, and run exits with its exit
code (128+N, said on standard error, when a signal N killed it). The worker
never outlives run: when run ends, even killed with SIGKILL, the worker
deregisters and exits.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if dash := cmd.ArgsLenAtDash(); len(args) > 0 && dash != 0 {
				return fmt.Errorf("run: unexpected argument %q (pass arguments to the worker after --)", args[0])
			}
			if err := ws.check(); err != nil {
				return fmt.Errorf("run: %w", err)
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
			set = append(set, ws.env(cmd.Flags().Changed)...)
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
	f.StringSliceVar(&ws.only, "only", nil, "run only these features: rpcs, events, tasks ($LIGHTBUS_ONLY)")
	f.StringSliceVar(&ws.skip, "skip", nil, "run every feature but these: rpcs, events, tasks ($LIGHTBUS_SKIP)")
	f.StringVar(&ws.service, "service-name", "", "the service the worker belongs to ($LIGHTBUS_SERVICE_NAME)")
	f.StringVar(&ws.process, "process-name", "", "the worker id, with placeholders {hostname}, {pid}, {random4}, {friendly} ($LIGHTBUS_PROCESS_NAME)")
	f.StringVar(&ws.logLevel, "log-level", "", "debug, info, warn or error ($LIGHTBUS_LOG_LEVEL)")
	f.StringVar(&ws.logFormat, "log-format", "", "text or json ($LIGHTBUS_LOG_FORMAT)")
	cmd.MarkFlagsMutuallyExclusive("only", "skip")
	return cmd
}

// workerSettings are the flags of lightbus run that configure the worker.
type workerSettings struct {
	only, skip          []string
	service, process    string
	logLevel, logFormat string
}

// check validates the settings before anything is built.
func (w workerSettings) check() error {
	for _, list := range [][]string{w.only, w.skip} {
		if list != nil {
			if _, err := lightbus.ParseFeatures(strings.Join(list, ",")); err != nil {
				return err
			}
		}
	}
	if w.service != "" && !names.IsAPIName(w.service) {
		return fmt.Errorf("--service-name %q: want identifiers joined by dots", w.service)
	}
	if w.process != "" {
		if _, err := lightbus.ProcessName(w.process); err != nil {
			return fmt.Errorf("--process-name: %w", err)
		}
	}
	switch w.logLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("--log-level %q: want debug, info, warn or error", w.logLevel)
	}
	switch w.logFormat {
	case "", "text", "json":
	default:
		return fmt.Errorf("--log-format %q: want text or json", w.logFormat)
	}
	return nil
}

// env returns the worker's environment variables for the flags given
// (changed reports which). --only and --skip each clear the other's
// variable, so that a flag is never combined with the environment's
// opposite.
func (w workerSettings) env(changed func(string) bool) []string {
	var env []string
	if changed("only") {
		env = append(env, lightbus.EnvOnly+"="+strings.Join(w.only, ","), lightbus.EnvSkip+"=")
	}
	if changed("skip") {
		env = append(env, lightbus.EnvSkip+"="+strings.Join(w.skip, ","), lightbus.EnvOnly+"=")
	}
	for _, f := range []struct{ flag, name, value string }{
		{"service-name", lightbus.EnvServiceName, w.service},
		{"process-name", lightbus.EnvProcessName, w.process},
		{"log-level", lightbus.EnvLogLevel, w.logLevel},
		{"log-format", lightbus.EnvLogFormat, w.logFormat},
	} {
		if changed(f.flag) {
			env = append(env, f.name+"="+f.value)
		}
	}
	return env
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
