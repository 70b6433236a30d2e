package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/cliout"
	"github.com/lightbus-go/lightbus/store/postgres"
)

// keysUsage is the help text of `gateway keys`.
const keysUsage = `gateway keys create --name NAME --scope SCOPE [--scope SCOPE ...]
                          make an API key; prints its token, shown only this once
gateway keys list         every key: name, scopes, created, revoked
gateway keys revoke NAME  revoke a key (every replica refuses it within a second)

--json (right after create, list or revoke) prints the answer as JSON, as the
HTTP API does.

Scopes: fire:PATTERN, call:PATTERN, serve:PATTERN, listen:PATTERN, read, admin;
PATTERN is an API name (billing), a prefix wildcard (billing.*) or *.`

// scopeFlags collects repeated --scope flags.
type scopeFlags []string

func (s *scopeFlags) String() string { return strings.Join(*s, " ") }

func (s *scopeFlags) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// keysCommand is one parsed `gateway keys` invocation.
type keysCommand struct {
	action  string // create, list, revoke
	name    string
	scopes  []string
	jsonOut bool
}

// parseKeys parses the arguments after `gateway keys`.
func parseKeys(args []string) (*keysCommand, error) {
	if len(args) == 0 {
		return nil, errors.New("keys: want create, list or revoke\n" + keysUsage)
	}
	kc := &keysCommand{action: args[0]}
	fs := flag.NewFlagSet("gateway keys "+args[0], flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var scopes scopeFlags
	if kc.action == "create" {
		fs.StringVar(&kc.name, "name", "", "the key's name")
		fs.Var(&scopes, "scope", "a scope (repeat for more)")
	}
	fs.BoolVar(&kc.jsonOut, "json", false, "print the answer as JSON")
	if err := fs.Parse(args[1:]); err != nil {
		return nil, fmt.Errorf("keys %s: %w", kc.action, err)
	}
	kc.scopes = scopes
	rest := fs.Args()
	switch kc.action {
	case "create":
		if kc.name == "" || len(kc.scopes) == 0 || len(rest) > 0 {
			return nil, errors.New("keys create: want --name NAME and at least one --scope SCOPE")
		}
	case "list":
		if len(rest) > 0 {
			return nil, errors.New("keys list takes no arguments")
		}
	case "revoke":
		if len(rest) != 1 {
			return nil, errors.New("keys revoke: want the key's NAME")
		}
		kc.name = rest[0]
	default:
		return nil, fmt.Errorf("keys: unknown command %q: want create, list or revoke", kc.action)
	}
	return kc, nil
}

// runKeys runs `gateway keys ...` against the database (DATABASE_URL, else
// the development Postgres), applying the migrations first as `gateway
// migrate` does. create prints the token alone on stdout.
func runKeys(ctx context.Context, args []string, cfg Config, logger *slog.Logger, stdout io.Writer) error {
	kc, err := parseKeys(args)
	if err != nil {
		return err
	}
	dbURL, stopDB, err := database(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer stopDB()
	pool, err := connect(ctx, dbURL, cfg, logger)
	if err != nil {
		return err
	}
	defer pool.Close()
	store, err := postgres.New(pool, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	// The operator, with the database in hand, may do anything: no
	// principal is needed.
	svc := gateway.NewService(gateway.ServiceConfig{Keys: store, Logger: logger, StoreTimeout: cfg.DBTimeout})
	switch kc.action {
	case "create":
		key, err := svc.CreateKey(ctx, kc.name, kc.scopes)
		if err != nil {
			return fmt.Errorf("keys create: %w", err)
		}
		if kc.jsonOut {
			return cliout.JSON(stdout, key)
		}
		fmt.Fprintln(stdout, key.Token)
	case "list":
		keys, err := svc.Keys(ctx)
		if err != nil {
			return fmt.Errorf("keys list: %w", err)
		}
		if kc.jsonOut {
			if keys == nil {
				keys = []gateway.APIKey{}
			}
			return cliout.JSON(stdout, map[string][]gateway.APIKey{"keys": keys})
		}
		tw := cliout.Table(stdout)
		cliout.Row(tw, "NAME", "SCOPES", "CREATED", "REVOKED")
		for _, k := range keys {
			revoked := "-"
			if k.RevokedAt != nil {
				revoked = cliout.Time(*k.RevokedAt)
			}
			cliout.Row(tw, k.Name, strings.Join(k.Scopes, " "), cliout.Time(k.CreatedAt), revoked)
		}
		return tw.Flush()
	case "revoke":
		if err := svc.RevokeKey(ctx, kc.name); err != nil {
			return fmt.Errorf("keys revoke: %w", err)
		}
		if kc.jsonOut {
			return cliout.JSON(stdout, map[string]string{"revoked": kc.name})
		}
		fmt.Fprintf(stdout, "revoked %s\n", kc.name)
	}
	return nil
}
