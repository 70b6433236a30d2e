package main

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
	authbus "github.com/lightbus-go/lightbus/examples/auth/bus"
	customersbus "github.com/lightbus-go/lightbus/examples/customers/bus"
	"github.com/lightbus-go/lightbus/internal/schemacheck"
	"github.com/lightbus-go/lightbus/internal/testhook"
)

// exampleSchemas are the parameters schemas the example services declare
// (what `lightbus dumpschema` shows once they run), by event or RPC.
var exampleSchemas = map[string]json.RawMessage{
	authbus.CheckPassword.Name():    authbus.CheckPassword.ParamsSchema(),
	authbus.CreateUser.Name():       authbus.CreateUser.ParamsSchema(),
	authbus.UserRegistered.Name():   authbus.UserRegistered.ParamsSchema(),
	customersbus.NewCustomer.Name(): customersbus.NewCustomer.ParamsSchema(),
}

// exampleBuses are the example services' buses, by service.
var exampleBuses = map[string]func(...lightbus.Option) *lightbus.Bus{
	"auth":      authbus.New,
	"customers": customersbus.New,
}

// TestHelpExamples runs every command's help example through the command's
// own argument and flag parsing, and checks it against the example
// services: a fired event's or called RPC's parameters must match the
// schema the service declares, and a listener group must be one the
// service sets up. A help example can therefore not drift from the
// examples a reader runs it against.
func TestHelpExamples(t *testing.T) {
	t.Parallel()
	root := newCLI(strings.NewReader(""), &lockedBuffer{}, &lockedBuffer{}, func(string) string { return "" }).rootCmd()
	seen := 0
	var walk func(cmd *cobra.Command)
	walk = func(cmd *cobra.Command) {
		for line := range strings.Lines(cmd.Example) {
			line = strings.TrimSpace(line)
			if line == "" {
				continue
			}
			seen++
			checkHelpExample(t, root, cmd, line)
		}
		for _, sub := range cmd.Commands() {
			walk(sub)
		}
	}
	walk(root)
	if seen < 4 {
		t.Errorf("found %d help examples, want at least fire's, call's, dead list's and replay's", seen)
	}
}

func checkHelpExample(t *testing.T, root, owner *cobra.Command, line string) {
	t.Helper()
	words, err := shellWords(line)
	if err != nil || len(words) < 2 || words[0] != "lightbus" {
		t.Errorf("%s: example %q: want `lightbus ...` (%v)", owner.CommandPath(), line, err)
		return
	}
	cmd, rest, err := root.Find(words[1:])
	if err != nil || cmd != owner {
		t.Errorf("%s: example %q runs %s (%v)", owner.CommandPath(), line, cmd.CommandPath(), err)
		return
	}
	// The flags must exist and take the values given.
	if err := cmd.ParseFlags(rest); err != nil {
		t.Errorf("%s: example %q: %v", owner.CommandPath(), line, err)
		return
	}
	args := cmd.Flags().Args()
	if cmd.Args != nil {
		if err := cmd.Args(cmd, args); err != nil {
			t.Errorf("%s: example %q: %v", owner.CommandPath(), line, err)
			return
		}
	}
	switch cmd.Name() {
	case "fire", "call":
		schema, ok := exampleSchemas[args[0]]
		if !ok {
			t.Errorf("%s: example %q: the examples declare no %s", owner.CommandPath(), line, args[0])
			return
		}
		params := "{}"
		if len(args) > 1 {
			params = args[1]
		}
		compiled, err := schemacheck.Compile(schema)
		if err != nil {
			t.Fatal(err)
		}
		vs, err := schemacheck.Validate(compiled, []byte(params))
		if err != nil || len(vs) > 0 {
			t.Errorf("%s: example %q: the parameters do not match the schema of %s: %v %v", owner.CommandPath(), line, args[0], vs, err)
		}
	case "list", "replay", "delete", "redrive":
		if len(args) == 0 || !strings.Contains(args[0], ".") {
			return // dead redrive ID
		}
		service, listener, _ := strings.Cut(args[0], ".")
		newBus, ok := exampleBuses[service]
		if !ok {
			t.Errorf("%s: example %q: no example service %s", owner.CommandPath(), line, service)
			return
		}
		bus := newBus(lightbus.WithURL("http://127.0.0.1:1"))
		if err := testhook.Start(context.Background(), bus); err != nil {
			t.Fatal(err)
		}
		if _, ok := testhook.ListenerKey(bus, listener); !ok {
			t.Errorf("%s: example %q: the %s service has no listener group %s", owner.CommandPath(), line, service, listener)
		}
	}
}

// shellWords splits a command line into words as sh does for plain words
// and single-quoted strings, which is all help examples use.
func shellWords(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case quoted && r == '\'':
			quoted = false
		case quoted:
			cur.WriteRune(r)
		case r == '\'':
			quoted, inWord = true, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		return nil, errors.New("unclosed quote")
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
