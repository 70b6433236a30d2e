package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/internal/testwait"
	"github.com/lightbus-go/lightbus/internal/webhook"
	"github.com/lightbus-go/lightbus/store/postgres"
	"github.com/lightbus-go/lightbus/store/postgres/pgtest"
)

// TestReadDatabase runs a gateway with DATABASE_READ_URL naming a second
// database whose contents differ from the primary's (a marker worker,
// group and event that only it holds), so that every answer tells which
// database it was read from: the inspection routes read the read
// database, fires are stored on the primary, a client finds the event it
// has just fired, and /readyz reports the read database, which, when it
// goes away, fails inspection (503) but not fires.
func TestReadDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	primaryURL, readURL := pgtest.NewURL(t), pgtest.NewURL(t)

	// The marker, written in the read database alone.
	readPool, err := pgxpool.New(ctx, readURL)
	if err != nil {
		t.Fatal(err)
	}
	defer readPool.Close()
	marker, err := postgres.New(readPool, nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := &gateway.Registration{WorkerID: "marker-worker", Service: "inventory", BaseURL: "http://127.0.0.1:9/marker", LeaseTTLMS: 600_000,
		Listeners: []gateway.ListenerDeclaration{{Name: "restock", Events: []string{"inventory.low"}, Path: "/e/restock"}}}
	if _, err := marker.RegisterWorker(ctx, reg, webhook.NewSecret, 3); err != nil {
		t.Fatal(err)
	}
	ev, err := gateway.NewEvent("inventory", "low", json.RawMessage(`{"sku":"marker"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := marker.FireEvent(ctx, ev, time.Hour); err != nil {
		t.Fatal(err)
	}
	markerID := ev.ID

	gw := startGatewayOn(t, primaryURL, func(c *Config) { c.DatabaseReadURL = readURL })
	var fired fireResult
	if resp := gw.do(t, "POST", "/v1/events/customers/new_customer", `{"name":"Sally"}`, nil, &fired); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("fire: %d", resp.StatusCode)
	}

	t.Run("InspectionReadsTheReadDatabase", func(t *testing.T) {
		var events struct {
			Events []struct {
				ID string `json:"id"`
			} `json:"events"`
		}
		gw.do(t, "GET", "/v1/events", "", nil, &events)
		if len(events.Events) != 1 || events.Events[0].ID != markerID {
			t.Errorf("GET /v1/events = %+v, want the read database's marker %s alone", events.Events, markerID)
		}
		var workers struct {
			Workers []struct {
				ID string `json:"id"`
			} `json:"workers"`
		}
		gw.do(t, "GET", "/v1/workers", "", nil, &workers)
		if len(workers.Workers) != 1 || workers.Workers[0].ID != "marker-worker" {
			t.Errorf("GET /v1/workers = %+v, want marker-worker alone", workers.Workers)
		}
		var listeners struct {
			Listeners []struct {
				Service string `json:"service"`
				Name    string `json:"name"`
				Pending int    `json:"pending"`
			} `json:"listeners"`
		}
		gw.do(t, "GET", "/v1/listeners", "", nil, &listeners)
		if len(listeners.Listeners) != 1 || listeners.Listeners[0].Name != "restock" || listeners.Listeners[0].Pending != 1 {
			t.Errorf("GET /v1/listeners = %+v, want inventory.restock with 1 pending", listeners.Listeners)
		}
		series := scrape(t, gw, nil)
		if got := series[`lightbus_workers_live{service="inventory"}`]; got != 1 {
			t.Errorf(`lightbus_workers_live{service="inventory"} = %v, want 1 (the read database's)`, got)
		}
		if got := series["lightbus_db_read_pool_max_connections"]; got != float64(testConfig().DBReadMaxConns) {
			t.Errorf("lightbus_db_read_pool_max_connections = %v, want LIGHTBUS_DB_READ_MAX_CONNS (%d)", got, testConfig().DBReadMaxConns)
		}
		if got := series["lightbus_db_read_pool_acquires_total"]; got < 1 {
			t.Errorf("lightbus_db_read_pool_acquires_total = %v, want the inspection reads' acquisitions", got)
		}
	})

	t.Run("DetailFallsBackToThePrimary", func(t *testing.T) {
		for _, id := range []string{markerID, fired.ID} {
			if resp := gw.do(t, "GET", "/v1/events/"+id, "", nil, nil); resp.StatusCode != http.StatusOK {
				t.Errorf("GET /v1/events/%s: %d, want 200", id, resp.StatusCode)
			}
		}
	})

	t.Run("FiresAreStoredOnThePrimary", func(t *testing.T) {
		for _, c := range []struct {
			url, id string
			want    int
		}{{primaryURL, fired.ID, 1}, {primaryURL, markerID, 0}, {readURL, fired.ID, 0}, {readURL, markerID, 1}} {
			conn, err := pgx.Connect(ctx, c.url)
			if err != nil {
				t.Fatal(err)
			}
			var n int
			err = conn.QueryRow(ctx, `SELECT count(*) FROM lightbus_event WHERE id = $1`, c.id).Scan(&n)
			conn.Close(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if n != c.want {
				t.Errorf("event %s in %s: %d rows, want %d", c.id, databaseName(t, c.url), n, c.want)
			}
		}
	})

	t.Run("Readiness", func(t *testing.T) {
		var ready map[string]string
		if resp := gw.do(t, "GET", "/readyz", "", nil, &ready); resp.StatusCode != http.StatusOK ||
			ready["status"] != "ready" || ready["read_database"] != "ready" {
			t.Fatalf("GET /readyz: %d %v, want ready with read_database ready", resp.StatusCode, ready)
		}

		// The read database goes away: inspection fails, fires do not, and
		// the gateway stays ready.
		admin, err := pgx.Connect(ctx, primaryURL)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(ctx)
		name := pgx.Identifier{databaseName(t, readURL)}.Sanitize()
		setConnections := func(allow bool) {
			t.Helper()
			if _, err := admin.Exec(ctx, `ALTER DATABASE `+name+` ALLOW_CONNECTIONS `+map[bool]string{true: "true", false: "false"}[allow]); err != nil {
				t.Fatal(err)
			}
		}
		setConnections(false)
		defer setConnections(true)
		readPool.Close()
		if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, databaseName(t, readURL)); err != nil {
			t.Fatal(err)
		}
		testwait.For(t, 10*time.Second, "/readyz to report the read database unavailable", func() bool {
			var ready map[string]string
			resp := gw.do(t, "GET", "/readyz", "", nil, &ready)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /readyz with the read database away: %d, want 200 (the gateway serves)", resp.StatusCode)
			}
			return ready["read_database"] == "unavailable"
		})
		expectProblem(t, gw.do(t, "GET", "/v1/events", "", nil, nil), http.StatusServiceUnavailable, gateway.EUnavailable)
		if resp := gw.do(t, "POST", "/v1/events/customers/new_customer", `{"name":"Ann"}`, nil, nil); resp.StatusCode != http.StatusAccepted {
			t.Errorf("fire with the read database away: %d, want 202", resp.StatusCode)
		}

		setConnections(true)
		testwait.For(t, 10*time.Second, "/readyz to report the read database ready again", func() bool {
			var ready map[string]string
			gw.do(t, "GET", "/readyz", "", nil, &ready)
			return ready["read_database"] == "ready"
		})
		if resp := gw.do(t, "GET", "/v1/events", "", nil, nil); resp.StatusCode != http.StatusOK {
			t.Errorf("GET /v1/events with the read database back: %d", resp.StatusCode)
		}
	})
}

// databaseName is the database a connection URL names.
func databaseName(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}
