package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	lightbus "github.com/lightbus-go/lightbus/clientgo"
)

// dumpschemaCmd is `lightbus dumpschema`.
func (c *cli) dumpschemaCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "dumpschema [API...]",
		Short: "Write the current schema of every API (or of the APIs named)",
		Long: `Writes the current schema documents the gateway stores: to standard output or
to FILE as one JSON object keyed by API name, or into DIR (an existing
directory, or a path ending in /) as one file per API, e.g. auth.json.
loadschema reads either form back.`,
		RunE: func(cmd *cobra.Command, apis []string) error {
			bus, err := c.bus()
			if err != nil {
				return err
			}
			all, err := bus.Schemas(cmd.Context())
			if err != nil {
				return err
			}
			docs := map[string]json.RawMessage{}
			for _, s := range all {
				if len(apis) == 0 || slices.Contains(apis, s.API) {
					docs[s.API] = s.Document
				}
			}
			for _, api := range apis {
				if _, ok := docs[api]; !ok {
					return fmt.Errorf("API %q has no schema", api)
				}
			}
			if info, err := os.Stat(out); out != "" && (strings.HasSuffix(out, "/") || err == nil && info.IsDir()) {
				if err := os.MkdirAll(out, 0o755); err != nil {
					return err
				}
				for _, api := range slices.Sorted(maps.Keys(docs)) {
					path := filepath.Join(out, api+".json")
					if err := os.WriteFile(path, []byte(indentJSON(docs[api])+"\n"), 0o644); err != nil {
						return err
					}
					c.progress("wrote %s\n", path)
				}
				return nil
			}
			data, err := json.MarshalIndent(docs, "", "  ")
			if err != nil {
				return err
			}
			data = append(data, '\n')
			if out == "" || out == "-" {
				_, err = c.stdout.Write(data)
				return err
			}
			if err := os.WriteFile(out, data, 0o644); err != nil {
				return err
			}
			c.progress("wrote %s (%d APIs)\n", out, len(docs))
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to FILE, or one file per API into DIR")
	return cmd
}

// loadschemaCmd is `lightbus loadschema`.
func (c *cli) loadschemaCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "loadschema FILE|DIR",
		Short: "Publish API schemas from a file or directory, without a worker",
		Long: `Publishes schema documents to the gateway (PUT /v1/schema/{api}). FILE holds
one schema document (its API named by its "api" member, else by the file
name: auth.json is the schema of auth) or an object of documents keyed by API
name, as dumpschema writes; DIR holds such files (*.json). Each API gets a new
schema version unless its content is unchanged.

The output of Lightbus's (Python) dumpschema is read too, and converted: its
events' and RPCs' "parameters" become params_schema and their "response"
result_schema; the draft-07 schemas are kept as they are.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			files := []string{args[0]}
			if info, err := os.Stat(args[0]); err != nil {
				return err
			} else if info.IsDir() {
				if files, err = filepath.Glob(filepath.Join(args[0], "*.json")); err != nil {
					return err
				}
				if len(files) == 0 {
					return fmt.Errorf("%s holds no .json files", args[0])
				}
			}
			docs := map[string]json.RawMessage{}
			for _, f := range files {
				if err := readSchemaFile(f, docs); err != nil {
					return err
				}
			}
			for _, api := range slices.Sorted(maps.Keys(docs)) {
				if !isLightbusSchema(docs[api]) {
					continue
				}
				doc, err := fromLightbusSchema(api, docs[api])
				if err != nil {
					return err
				}
				docs[api] = doc
				c.progress("%s: converted from Lightbus's schema format\n", api)
			}
			bus, err := c.bus()
			if err != nil {
				return err
			}
			published := []lightbus.Schema{}
			for _, api := range slices.Sorted(maps.Keys(docs)) {
				s, err := bus.PublishSchema(cmd.Context(), api, docs[api])
				if err != nil {
					return err
				}
				s.Document = nil // the document sent, as stored: not worth repeating
				published = append(published, *s)
			}
			if c.jsonOut {
				return c.printJSON(struct {
					Schemas []lightbus.Schema `json:"schemas"`
				}{published})
			}
			w := c.table()
			row(w, "API", "VERSION", "HASH", "CREATED")
			for _, s := range published {
				row(w, s.API, strconv.Itoa(s.Version), s.Hash, formatTime(s.CreatedAt))
			}
			return w.Flush()
		},
	}
}

// readSchemaFile adds the schema documents in path to docs, by API.
func readSchemaFile(path string, docs map[string]json.RawMessage) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(data, &fields); err != nil {
		return fmt.Errorf("%s: not a JSON object: %w", path, err)
	}
	_, hasEvents := fields["events"]
	_, hasRPCs := fields["rpcs"]
	var api string
	if raw, ok := fields["api"]; ok {
		if err := json.Unmarshal(raw, &api); err != nil {
			return fmt.Errorf("%s: \"api\" is not a string", path)
		}
	}
	if !hasEvents && !hasRPCs && api == "" {
		for name, doc := range fields { // an object of documents keyed by API
			if err := addSchema(docs, path, name, doc); err != nil {
				return err
			}
		}
		return nil
	}
	if api == "" {
		api = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	}
	return addSchema(docs, path, api, data)
}

func addSchema(docs map[string]json.RawMessage, path, api string, doc json.RawMessage) error {
	if _, dup := docs[api]; dup {
		return fmt.Errorf("%s: a second schema of API %q", path, api)
	}
	if len(doc) == 0 || doc[0] != '{' {
		return errors.New(path + ": the schema of API " + api + " is not a JSON object")
	}
	docs[api] = doc
	return nil
}
