package pgtest

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func TestNewGivesIsolatedMigratedDatabases(t *testing.T) {
	t.Parallel()

	first, second := New(t), New(t)

	var firstName, secondName string
	if err := first.QueryRow(t.Context(), "SELECT current_database()").Scan(&firstName); err != nil {
		t.Fatal(err)
	}
	if err := second.QueryRow(t.Context(), "SELECT current_database()").Scan(&secondName); err != nil {
		t.Fatal(err)
	}
	if firstName == secondName || !strings.HasPrefix(firstName, "lb_test_") {
		t.Fatalf("databases %q and %q, want two distinct lb_test_ databases", firstName, secondName)
	}

	// Both hold the whole schema: River's tables and the gateway's.
	for _, pool := range []interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}{first, second} {
		var river, lightbus *string
		if err := pool.QueryRow(t.Context(), "SELECT to_regclass('river_job')::text, to_regclass('lightbus_event')::text").Scan(&river, &lightbus); err != nil {
			t.Fatal(err)
		}
		if river == nil || lightbus == nil {
			t.Errorf("schema not migrated: river_job %v, lightbus_event %v", river, lightbus)
		}
	}

	if _, err := first.Exec(t.Context(), "CREATE TABLE only_in_first (id int)"); err != nil {
		t.Fatal(err)
	}
	var found *string
	if err := second.QueryRow(t.Context(), "SELECT to_regclass('only_in_first')::text").Scan(&found); err != nil {
		t.Fatal(err)
	}
	if found != nil {
		t.Errorf("table made in %s is visible in %s", firstName, secondName)
	}
}

func TestNewURLDroppedAtCleanup(t *testing.T) {
	t.Parallel()

	var name string
	t.Run("Use", func(t *testing.T) {
		url := NewURL(t)
		conn, err := pgx.Connect(t.Context(), url)
		if err != nil {
			t.Fatalf("connect %s: %v", url, err)
		}
		// Left open on purpose: cleanup must drop the database regardless.
		if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(url, "/"+name) {
			t.Errorf("URL %q does not name database %s", url, name)
		}
	})
	if name == "" {
		t.Fatal("no database created")
	}

	e, _, err := environmentOf()
	if err != nil {
		t.Fatal(err)
	}
	var exists bool
	if err := e.admin.QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	if exists {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestTemplateName(t *testing.T) {
	t.Parallel()

	name := templateName()
	if !regexp.MustCompile(`^lightbus_tmpl_[0-9a-f]{12}$`).MatchString(name) {
		t.Errorf("templateName() = %q", name)
	}
	if again := templateName(); again != name {
		t.Errorf("templateName() = %q then %q", name, again)
	}
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()

	tests := map[string]string{
		"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable": "postgres://postgres@127.0.0.1:5432/lb_x?sslmode=disable",
		"postgresql://u:p@h/db":                        "postgresql://u:p@h/lb_x",
		"host=127.0.0.1 user=postgres dbname=postgres": "host=127.0.0.1 user=postgres dbname=postgres dbname=lb_x",
	}
	for base, want := range tests {
		got, err := withDatabase(base, "lb_x")
		if err != nil || got != want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", base, got, err, want)
		}
	}
}
