package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestDumpAndLoadSchema(t *testing.T) {
	t.Parallel()

	t.Run("Stdout", func(t *testing.T) {
		t.Parallel()
		tb, _ := gatewayBundle(t)
		if err := tb.execute(t, "dumpschema"); err != nil {
			t.Fatal(err)
		}
		var docs map[string]map[string]any
		if err := json.Unmarshal([]byte(tb.stdout.String()), &docs); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, tb.stdout.String())
		}
		if len(docs) != 2 || docs["auth"]["api"] != "auth" || docs["customers"]["events"] == nil {
			t.Fatalf("dump = %v", docs)
		}
		tb2, _ := gatewayBundle(t)
		if err := tb2.execute(t, "dumpschema", "billing"); err == nil || !strings.Contains(err.Error(), "billing") {
			t.Fatalf("dumpschema of an unknown API: %v", err)
		}
	})

	t.Run("DirectoryRoundTrip", func(t *testing.T) {
		t.Parallel()
		tb, g := gatewayBundle(t)
		dir := filepath.Join(t.TempDir(), "schemas") + "/"
		if err := tb.execute(t, "dumpschema", "-o", dir, "auth"); err != nil {
			t.Fatal(err)
		}
		files, _ := filepath.Glob(filepath.Join(dir, "*.json"))
		if len(files) != 1 || filepath.Base(files[0]) != "auth.json" {
			t.Fatalf("files %v, want auth.json", files)
		}
		data, _ := os.ReadFile(files[0])
		if !strings.Contains(string(data), `"user_registered"`) {
			t.Fatalf("auth.json = %s", data)
		}
		// A document without "api" is named by its file.
		if err := os.WriteFile(filepath.Join(dir, "billing.json"), []byte(`{"events": {"paid": {}}}`), 0o644); err != nil {
			t.Fatal(err)
		}
		before := len(tb.stdout.String())
		if err := tb.execute(t, "loadschema", dir); err != nil {
			t.Fatal(err)
		}
		want := "API      VERSION  HASH  CREATED\n" +
			"auth     4        ab    2026-11-25T10:00:00Z\n" +
			"billing  4        ab    2026-11-25T10:00:00Z\n"
		if got := tb.stdout.String()[before:]; got != want {
			t.Errorf("stdout = %q, want %q", got, want)
		}
		before = len(tb.stdout.String())
		if err := tb.execute(t, "loadschema", dir, "--json"); err != nil {
			t.Fatal(err)
		}
		var published struct {
			Schemas []struct {
				API     string          `json:"api"`
				Version int             `json:"version"`
				Schema  json.RawMessage `json:"schema"`
			} `json:"schemas"`
		}
		if err := json.Unmarshal([]byte(tb.stdout.String()[before:]), &published); err != nil || len(published.Schemas) != 2 ||
			published.Schemas[1].API != "billing" || published.Schemas[1].Version != 4 || published.Schemas[1].Schema != nil {
			t.Errorf("--json: %s (%v)", tb.stdout.String()[before:], err)
		}
		var puts []string
		g.mu.Lock()
		for _, r := range g.requests {
			if r.Method == "PUT" {
				puts = append(puts, r.Path)
			}
		}
		g.mu.Unlock()
		if !slices.Equal(puts, []string{"/v1/schema/auth", "/v1/schema/billing", "/v1/schema/auth", "/v1/schema/billing"}) { // twice: table, then --json
			t.Fatalf("PUTs %v", puts)
		}
	})

	t.Run("FileOfDocuments", func(t *testing.T) {
		t.Parallel()
		tb, g := gatewayBundle(t)
		file := filepath.Join(t.TempDir(), "all.json")
		if err := tb.execute(t, "dumpschema", "-o", file); err != nil {
			t.Fatal(err)
		}
		if err := tb.execute(t, "loadschema", file); err != nil {
			t.Fatal(err)
		}
		if r := g.last(); r.Path != "/v1/schema/customers" || !strings.Contains(r.Body, "new_customer") {
			t.Fatalf("last request %+v", r)
		}
		if err := tb.execute(t, "loadschema", filepath.Join(t.TempDir(), "missing.json")); err == nil {
			t.Fatal("loadschema of a missing file: no error")
		}
	})
}
