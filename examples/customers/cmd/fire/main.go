// Command fire fires customers.new_customer through the Go client, as any
// code of the customers service would:
//
//	go run ./examples/customers/cmd/fire -name Sally -email sally@example.com
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/lightbus-go/lightbus/examples/customers/bus"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fire:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fire", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "Sally", "the customer's name")
	email := fs.String("email", "sally@example.com", "the customer's email")
	if err := fs.Parse(args); err != nil {
		return err
	}
	res, err := bus.NewCustomer.Fire(ctx, bus.Bus, bus.NewCustomerParams{Name: *name, Email: *email})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "fired %s.%s %s (%d deliveries)\n", res.API, res.Event, res.ID, res.Deliveries)
	return nil
}
