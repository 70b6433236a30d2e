package bodyread

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadAll(t *testing.T) {
	long := strings.Repeat("x", 5000)
	for _, tc := range []struct {
		name          string
		body          string
		length, limit int64
	}{
		{"announced", `{"a":1}`, 7, 100},
		{"empty", "", 0, 100},
		{"unknown length", long, -1, 1 << 20},
		{"longer than announced", long, 10, 1 << 20},
		{"shorter than announced", "abc", 10, 100},
		{"at the limit", long, 5000, 5000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// One byte a read, so that every path through the loop runs.
			got, err := ReadAll(iotest.OneByteReader(strings.NewReader(tc.body)), tc.length, tc.limit)
			if err != nil || string(got) != tc.body {
				t.Errorf("ReadAll = %d bytes, %v; want the %d bytes of the body", len(got), err, len(tc.body))
			}
		})
	}

	// A body of the announced length is read into one buffer of its size.
	body := []byte(long)
	r := bytes.NewReader(body)
	if n := testing.AllocsPerRun(20, func() {
		r.Reset(body)
		if _, err := ReadAll(r, int64(len(body)), 1<<20); err != nil {
			t.Fatal(err)
		}
	}); n > 1 {
		t.Errorf("ReadAll of an announced body: %v allocations, want 1", n)
	}

	// Errors other than EOF are returned, with what was read.
	boom := errors.New("boom")
	got, err := ReadAll(io.MultiReader(strings.NewReader("ab"), iotest.ErrReader(boom)), 10, 100)
	if !errors.Is(err, boom) || string(got) != "ab" {
		t.Errorf("ReadAll = %q, %v; want \"ab\", boom", got, err)
	}
}
