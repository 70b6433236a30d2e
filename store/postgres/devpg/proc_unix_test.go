//go:build unix

package devpg

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckTraversable(t *testing.T) {
	t.Parallel()

	// An account that owns nothing here and shares no group with the files.
	acct := &account{name: "someone", uid: 54321, gid: 54321}

	open := reachableTempDir(t)
	if err := checkTraversable(filepath.Join(open, "pgdata"), acct); err != nil {
		t.Errorf("checkTraversable(open) = %v", err)
	}

	closed := filepath.Join(open, "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	err := checkTraversable(filepath.Join(closed, "pgdata"), acct)
	if err == nil || !strings.Contains(err.Error(), "directory "+closed+" ") {
		t.Fatalf("checkTraversable(closed) = %v, want an error naming %s", err, closed)
	}
}

func TestCanSearch(t *testing.T) {
	t.Parallel()

	acct := &account{name: "pg", uid: 101, gid: 104, groups: []uint32{103}}
	tests := []struct {
		perm     os.FileMode
		uid, gid uint32
		want     bool
	}{
		{0o700, 101, 0, true},
		{0o077, 101, 104, false}, // the owner bits decide for the owner
		{0o710, 0, 104, true},
		{0o710, 0, 103, true},
		{0o700, 0, 104, false},
		{0o701, 0, 0, true},
		{0o770, 0, 0, false},
	}
	for _, tt := range tests {
		if got := canSearch(tt.perm, tt.uid, tt.gid, acct); got != tt.want {
			t.Errorf("canSearch(%o, %d, %d) = %v, want %v", tt.perm, tt.uid, tt.gid, got, tt.want)
		}
	}
}

func TestStartUnreachableDataDir(t *testing.T) {
	t.Parallel()

	closed := filepath.Join(reachableTempDir(t), "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	srv, err := Start(t.Context(), Options{DataDir: filepath.Join(closed, "pgdata"), Logger: testLogger(t)})
	if os.Geteuid() != 0 {
		// The cluster runs as the caller, who owns the directory.
		if err != nil {
			t.Fatalf("Start: %v", err)
		}
		if err := srv.Stop(t.Context()); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		return
	}
	if err == nil {
		srv.Stop(context.Background())
		t.Fatalf("Start succeeded with a data dir the postgres user cannot reach")
	}
	if !strings.Contains(err.Error(), "directory "+closed+" is not traversable") {
		t.Errorf("error %q does not name %s", err, closed)
	}
}
