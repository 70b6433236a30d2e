// Command lightbus is the Lightbus command line: it runs and builds a
// service's worker process, fires events, calls RPCs and inspects the
// gateway.
//
//	lightbus run [--module PATH] [-- ARGS...]   build (cached) and run the worker
//	lightbus build [--module PATH] -o FILE      build the worker for production
//	lightbus fire API.EVENT [PARAMS|-]          fire an event
//	lightbus call API.METHOD [PARAMS|-]         call an RPC
//	lightbus workers                            list live workers
//	lightbus listeners                          listener groups: pending, in flight, dead, lag
//	lightbus events list [--api --event ...]    list stored events
//	lightbus events show ID                     one event with its deliveries
//	lightbus dead list SERVICE.LISTENER         a listener group's dead deliveries
//	lightbus dead show ID                       one delivery with its attempts
//	lightbus dead redrive ID|--all GROUP        give dead deliveries fresh attempts
//	lightbus replay SERVICE.LISTENER --since S  rewind a listener group (--wait: until queued)
//	lightbus listeners delete SERVICE.LISTENER  remove a listener group
//	lightbus version                            this command's version and the gateway's
//	lightbus completion bash|zsh|fish|powershell  a shell completion script
//
// The worker process imports the service's bus package (./bus by default,
// else --module or $LIGHTBUS_MODULE), which declares
//
//	var Bus = New()
//
// where its constructor New creates the Bus (lightbus.MustCreate) and
// registers the service's RPC handlers, listeners and tasks on it: at
// creation, not in init or an OnStart hook, so that what the service does
// is in one place and tests get a fresh Bus from New (see the package doc
// of clientgo for the reason and the naming rules). The gateway
// is at --url, $LIGHTBUS_URL, else http://127.0.0.1:8080; the API key sent
// to it is --token, else $LIGHTBUS_TOKEN.
//
// The load tool is a command of its own, lightbus-bench (cmd/lightbus-bench),
// so that this one links no database driver.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var exit *exitError
		if errors.As(err, &exit) {
			os.Exit(exit.code)
		}
		fmt.Fprintf(os.Stderr, "lightbus: %s\n", errorLine(err))
		os.Exit(1)
	}
}

// run runs the command line args (without the program name), reading
// standard input where a command takes it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return newCLI(os.Stdin, stdout, stderr, os.Getenv).execute(ctx, args)
}

// exitError ends lightbus with an exit code and no message of its own: the
// worker's exit code, passed on.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// cli is one invocation of the command line, with everything it touches
// from outside injected so tests can run many at once.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string

	// dir is the directory paths are relative to; "" is the process's.
	dir string
	// cacheDir returns the user cache directory that worker binaries are
	// kept under.
	cacheDir func() (string, error)
	// builder builds worker binaries.
	builder *workerBuilder
	// signals returns the signals to pass on to a running worker and a
	// function that stops their delivery.
	signals func() (<-chan os.Signal, func())

	// progressTo is where progress lines are drawn: standard error when
	// it is a terminal, else nil (none).
	progressTo io.Writer

	// Global flags.
	url     string
	token   string
	jsonOut bool
}

// newCLI returns a command line reading stdin and writing to stdout and
// stderr, with getenv for its environment.
func newCLI(stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) *cli {
	return &cli{
		stdin:    stdin,
		stdout:   stdout,
		stderr:   stderr,
		getenv:   getenv,
		cacheDir: os.UserCacheDir,
		builder:  &workerBuilder{goCmd: "go", clientImport: clientImportPath, stderr: stderr},
		signals:  notifySignals,

		progressTo: terminalWriter(stderr),
	}
}

// execute runs args.
func (c *cli) execute(ctx context.Context, args []string) error {
	root := c.rootCmd()
	root.SetArgs(args)
	return root.ExecuteContext(ctx)
}

func (c *cli) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "lightbus",
		Short: "Run Lightbus workers, fire events, call RPCs and inspect the gateway",
		Long: `lightbus runs and builds a service's worker process, fires events, calls RPCs
and inspects the Lightbus gateway.

A worker is built from the service's bus package (./bus, --module or
$LIGHTBUS_MODULE), which declares "var Bus = New()": a constructor that
creates the Bus and registers the service's APIs, listeners and tasks on it.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(c.stdin)
	root.SetOut(c.stdout)
	root.SetErr(c.stderr)
	url := c.getenv("LIGHTBUS_URL")
	if url == "" {
		url = "http://127.0.0.1:8080"
	}
	root.PersistentFlags().StringVar(&c.url, "url", url, "the gateway's base URL ($LIGHTBUS_URL)")
	// The token's default is read when it is used, not shown in --help.
	root.PersistentFlags().StringVar(&c.token, "token", "", "the API key sent to the gateway (default $LIGHTBUS_TOKEN)")
	root.PersistentFlags().BoolVar(&c.jsonOut, "json", false, "print the gateway's answers as JSON")
	root.AddCommand(c.runCmd(), c.buildCmd(), c.fireCmd(), c.callCmd(), c.workersCmd(), c.listenersCmd(), c.eventsCmd(), c.inspectCmd(), c.deadCmd(), c.replayCmd(),
		c.dumpschemaCmd(), c.loadschemaCmd(), c.versionCmd())
	return root
}

// notifySignals relays SIGINT and SIGTERM.
func notifySignals() (<-chan os.Signal, func()) {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	return ch, func() { signal.Stop(ch) }
}

// workDir returns the directory relative paths are resolved from.
func (c *cli) workDir() (string, error) {
	if c.dir != "" {
		return c.dir, nil
	}
	return os.Getwd()
}

// busModule returns the bus package to build: flag, else
// $LIGHTBUS_MODULE, else ./bus.
func (c *cli) busModule(flag string) string {
	if flag != "" {
		return flag
	}
	if m := c.getenv("LIGHTBUS_MODULE"); m != "" {
		return m
	}
	return defaultBusModule
}

// errorLine renders err as the one line printed after "lightbus: ". A
// gateway's 401 says how to pass a key; its 403 names the missing scope.
func errorLine(err error) string {
	line := strings.TrimPrefix(oneLine(err.Error()), "lightbus: ")
	if lightbus.IsCode(err, lightbus.CodeUnauthorized) {
		line += " (pass an API key with --token or $LIGHTBUS_TOKEN)"
	}
	return line
}

// oneLine joins the lines of a message so that an error prints on one line.
func oneLine(s string) string {
	out := []rune{}
	space := false
	for _, r := range s {
		if r == '\n' || r == '\r' || r == '\t' {
			space = true
			continue
		}
		if space && len(out) > 0 {
			out = append(out, ' ')
		}
		space = false
		out = append(out, r)
	}
	return string(out)
}

// progress prints a progress line to standard error.
func (c *cli) progress(format string, args ...any) {
	fmt.Fprintf(c.stderr, format, args...)
}
