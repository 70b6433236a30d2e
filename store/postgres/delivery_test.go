package postgres_test

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/lightbus-go/lightbus/gateway"
	"github.com/lightbus-go/lightbus/gateway/dispatch"
)

// Each failed attempt's status comes from the outcomes the delivery job
// records in its output (metadata "output"), matched to River's errors by
// attempt number, wherever deliveries are read: an event's deliveries, one
// delivery, and a group's dead deliveries. The error text is not read for
// it.
func TestDeliveryAttemptStatus(t *testing.T) {
	t.Parallel()
	ctx, bundle := setup(t)
	register(ctx, t, bundle.db, registration("a1", "auth", nil,
		gateway.ListenerDeclaration{Name: "create_user", Events: []string{"customers.new_customer"}, Path: "/e"}))

	// died makes the delivery of a new event dead after the given River
	// errors, with the given output recorded (nil for none), and returns
	// the event's id and the delivery's.
	died := func(t *testing.T, errs []gateway.DeliveryError, output *string) (string, int64) {
		t.Helper()
		ev, n := fire(ctx, t, bundle.db, "customers", "new_customer", `{}`)
		if n != 1 {
			t.Fatalf("deliveries = %d, want 1", n)
		}
		var id int64
		var rows []map[string]any
		for _, e := range errs {
			rows = append(rows, map[string]any{"at": e.At, "attempt": e.Attempt, "error": e.Error, "trace": ""})
		}
		// JSON as a string: it encodes in every exec mode (LIGHTBUS_TEST_EXEC_MODE).
		rowsJSON, err := json.Marshal(rows)
		if err != nil {
			t.Fatal(err)
		}
		tag, err := bundle.pool.Exec(ctx, `
			UPDATE river_job SET state = 'discarded', attempt = $2, max_attempts = $2, attempted_at = now(), finalized_at = now(),
				errors = (SELECT array_agg(e ORDER BY n) FROM jsonb_array_elements($3::jsonb) WITH ORDINALITY AS x(e, n)),
				metadata = COALESCE(jsonb_set(metadata, '{output}', $4::jsonb), metadata)
			WHERE args->>'event_id' = $1`, ev.ID, len(errs), string(rowsJSON), output)
		if err != nil || tag.RowsAffected() != 1 {
			t.Fatalf("updating the delivery: %v, %d rows", err, tag.RowsAffected())
		}
		if err := bundle.pool.QueryRow(ctx, `SELECT id FROM river_job WHERE args->>'event_id' = $1`, ev.ID).Scan(&id); err != nil {
			t.Fatal(err)
		}
		return ev.ID, id
	}
	at := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	errs := []gateway.DeliveryError{
		{Attempt: 1, At: at, Error: "listener answered 503: busy (Retry-After 30s)"},
		{Attempt: 2, At: at.Add(time.Minute), Error: "deliver to http://127.0.0.1:9000/a1/e: no answer within 5s"},
		{Attempt: 3, At: at.Add(2 * time.Minute), Error: "listener answered 410 (endpoint of worker a1 removed)"},
		// No outcome is recorded for attempt 4: its text names a status,
		// which is not read.
		{Attempt: 4, At: at.Add(3 * time.Minute), Error: "listener answered 500: boom"},
	}
	// Out of order, and with an attempt River has no error for.
	const output = `{"attempts": [{"attempt": 3, "status": 410, "kind": "gone"}, {"attempt": 1, "status": 503, "kind": "status"},
		{"attempt": 2, "status": 0, "kind": "timeout"}, {"attempt": 9, "status": 418, "kind": "status"}]}`
	want := []gateway.DeliveryError{errs[0], errs[1], errs[2], errs[3]}
	want[0].Status, want[2].Status = 503, 410

	check := func(t *testing.T, eventID string, id int64, want []gateway.DeliveryError) {
		t.Helper()
		detail, err := bundle.db.GetEvent(ctx, eventID)
		if err != nil || len(detail.Deliveries) != 1 {
			t.Fatalf("GetEvent = %+v, %v", detail, err)
		}
		if got := detail.Deliveries[0].Errors; !reflect.DeepEqual(got, want) {
			t.Errorf("event's delivery errors = %+v, want %+v", got, want)
		}
		rec, err := bundle.db.GetDelivery(ctx, id)
		if err != nil {
			t.Fatalf("GetDelivery: %v", err)
		}
		if !reflect.DeepEqual(rec.Errors, want) {
			t.Errorf("delivery errors = %+v, want %+v", rec.Errors, want)
		}
		dead, err := bundle.db.ListDead(ctx, gateway.DeadQuery{Service: "auth", Listener: "create_user", Before: id + 1, Limit: 1})
		if err != nil || len(dead) != 1 || dead[0].ID != id {
			t.Fatalf("ListDead = %+v, %v; want delivery %d", dead, err, id)
		}
		if !reflect.DeepEqual(dead[0].Errors, want) {
			t.Errorf("dead delivery errors = %+v, want %+v", dead[0].Errors, want)
		}
	}

	t.Run("FromOutput", func(t *testing.T) {
		eventID, id := died(t, errs, ptr(output))
		check(t, eventID, id, want)
	})
	t.Run("NoOutput", func(t *testing.T) {
		eventID, id := died(t, errs[:2], nil)
		check(t, eventID, id, errs[:2])
	})
	t.Run("MalformedOutput", func(t *testing.T) {
		eventID, id := died(t, errs[:2], ptr(`{"attempts": "503"}`))
		check(t, eventID, id, errs[:2])
	})
	t.Run("OutputOfAppendOutcome", func(t *testing.T) {
		// The output a delivery job builds with dispatch.AppendOutcome
		// attempt after attempt, as River would store it.
		meta := []byte(`{}`)
		for _, o := range []dispatch.AttemptOutcome{{Attempt: 1, Status: 503, Kind: dispatch.OutcomeStatus},
			{Attempt: 2, Kind: dispatch.OutcomeTransport}} {
			out, err := json.Marshal(dispatch.AppendOutcome(meta, o))
			if err != nil {
				t.Fatal(err)
			}
			if err := bundle.pool.QueryRow(context.Background(), `SELECT jsonb_set($1::jsonb, '{output}', to_jsonb($2::json))`,
				string(meta), string(out)).Scan(&meta); err != nil {
				t.Fatal(err)
			}
		}
		eventID, id := died(t, errs[:2], ptr(string(mustGet(t, meta, "output"))))
		w := []gateway.DeliveryError{errs[0], errs[1]}
		w[0].Status = 503
		check(t, eventID, id, w)
	})
}

// mustGet returns the value of key in the JSON object doc.
func mustGet(t *testing.T, doc []byte, key string) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil || m[key] == nil {
		t.Fatalf("%s has no %q: %v", doc, key, err)
	}
	return m[key]
}

func ptr[T any](v T) *T { return &v }
