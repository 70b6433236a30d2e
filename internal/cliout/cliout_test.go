package cliout

import (
	"bytes"
	"testing"
	"time"
)

func TestTable(t *testing.T) {
	t.Parallel()

	var b bytes.Buffer
	w := Table(&b)
	Row(w, "NAME", "SCOPES", "CREATED")
	Row(w, "bootstrap", "admin", Time(time.Date(2026, 11, 25, 11, 0, 0, 5, time.FixedZone("CET", 3600))))
	Row(w, "ci", "fire:*\tread", Time(time.Time{}))
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	want := "NAME       SCOPES       CREATED\n" +
		"bootstrap  admin        2026-11-25T10:00:00Z\n" +
		"ci         fire:* read  -\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()

	var b bytes.Buffer
	if err := JSON(&b, map[string]string{"url": "http://x/?a=1&b=<2>"}); err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"url\": \"http://x/?a=1&b=<2>\"\n}\n"; b.String() != want {
		t.Errorf("JSON = %q, want %q", b.String(), want)
	}
}
