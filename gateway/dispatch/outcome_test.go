package dispatch

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestAttemptOutcomes(t *testing.T) {
	t.Parallel()

	t.Run("Append", func(t *testing.T) {
		t.Parallel()
		for _, tc := range []struct {
			name, metadata string
			want           []AttemptOutcome
		}{
			{"NoMetadata", ``, []AttemptOutcome{{3, 503, OutcomeStatus}}},
			{"NoOutput", `{"snoozes": 1}`, []AttemptOutcome{{3, 503, OutcomeStatus}}},
			{"Appended", `{"output": {"attempts": [{"attempt": 1, "status": 0, "kind": "timeout"}, {"attempt": 2, "status": 410, "kind": "gone"}]}}`,
				[]AttemptOutcome{{1, 0, OutcomeTimeout}, {2, 410, OutcomeGone}, {3, 503, OutcomeStatus}}},
			{"SameAttemptReplaced", `{"output": {"attempts": [{"attempt": 3, "status": 0, "kind": "transport"}]}}`,
				[]AttemptOutcome{{3, 503, OutcomeStatus}}},
			{"OtherOutputShape", `{"output": "done"}`, []AttemptOutcome{{3, 503, OutcomeStatus}}},
			{"MalformedEntryDropped", `{"output": {"attempts": [{"attempt": "one"}, {"attempt": 2, "status": 500, "kind": "status"}]}}`,
				[]AttemptOutcome{{2, 500, OutcomeStatus}, {3, 503, OutcomeStatus}}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				out := AppendOutcome([]byte(tc.metadata), AttemptOutcome{Attempt: 3, Status: 503, Kind: OutcomeStatus})
				if !reflect.DeepEqual(out.Attempts, tc.want) {
					t.Fatalf("AppendOutcome = %+v; want %+v", out.Attempts, tc.want)
				}
			})
		}
		if out := AppendOutcome([]byte(`not json`), AttemptOutcome{Attempt: 1}); len(out.Attempts) != 1 {
			t.Errorf("AppendOutcome on metadata that is no JSON = %+v, want the new outcome alone", out)
		}
	})

	t.Run("Wire", func(t *testing.T) {
		t.Parallel()
		b, err := json.Marshal(AttemptOutcomes{Attempts: []AttemptOutcome{{1, 503, OutcomeStatus}, {2, 0, OutcomeTimeout}}})
		want := `{"attempts":[{"attempt":1,"status":503,"kind":"status"},{"attempt":2,"status":0,"kind":"timeout"}]}`
		if err != nil || string(b) != want {
			t.Fatalf("output = %s, %v; want %s", b, err, want)
		}
	})

	t.Run("Decode", func(t *testing.T) {
		t.Parallel()
		got := DecodeOutcomes([]byte(`[{"attempt": 2, "status": 0, "kind": "timeout"}, 7, {"attempt": 3, "status": "410"}]`))
		if want := []AttemptOutcome{{2, 0, OutcomeTimeout}}; !reflect.DeepEqual(got, want) {
			t.Errorf("outcomes = %+v, want %+v (entries that are no outcome skipped)", got, want)
		}
		if got := DecodeOutcomes([]byte(`{"attempt": 1, "status": 503}`)); got != nil {
			t.Errorf("outcomes of an object = %+v, want none", got)
		}
	})

	t.Run("Bounded", func(t *testing.T) {
		t.Parallel()
		meta := []byte(`{}`)
		for i := 1; i <= maxOutcomes+5; i++ {
			out := AppendOutcome(meta, AttemptOutcome{Attempt: i, Status: 500, Kind: OutcomeStatus})
			b, _ := json.Marshal(map[string]any{"output": out})
			meta = b
		}
		out := DecodeOutcomes(mustOutput(t, meta))
		if len(out) != maxOutcomes || out[0].Attempt != 6 || out[len(out)-1].Attempt != maxOutcomes+5 {
			t.Fatalf("%d outcomes from attempt %d: want the latest %d", len(out), out[0].Attempt, maxOutcomes)
		}
	})
}

func mustOutput(t *testing.T, meta []byte) []byte {
	t.Helper()
	var m struct {
		Output struct {
			Attempts json.RawMessage `json:"attempts"`
		} `json:"output"`
	}
	if err := json.Unmarshal(meta, &m); err != nil {
		t.Fatal(err)
	}
	return m.Output.Attempts
}
