package buildinfo

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestFromBuild(t *testing.T) {
	t.Parallel()

	for name, tc := range map[string]struct {
		info *debug.BuildInfo
		want Info
	}{
		"no build information": {nil, Info{Version: "(devel)", Go: runtime.Version()}},
		"a tagged module": {
			&debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v1.4.0"},
				Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "false"}}},
			Info{Version: "v1.4.0", Revision: "abc123", Go: "go1.26.1"},
		},
		"a modified work tree": {
			&debug.BuildInfo{GoVersion: "go1.26.1", Main: debug.Module{Version: "v0.0.0-20260101000000-abc123+dirty"},
				Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "abc123"}, {Key: "vcs.modified", Value: "true"}}},
			Info{Version: "v0.0.0-20260101000000-abc123+dirty", Revision: "abc123-modified", Go: "go1.26.1"},
		},
		"go test": {
			&debug.BuildInfo{GoVersion: "go1.26.1"},
			Info{Version: "(devel)", Go: "go1.26.1"},
		},
	} {
		if got := fromBuild(tc.info); got != tc.want {
			t.Errorf("%s: %+v, want %+v", name, got, tc.want)
		}
	}
}

func TestRead(t *testing.T) {
	t.Parallel()

	got := Read()
	if got.Go != runtime.Version() || got.Version == "" {
		t.Fatalf("Read() = %+v", got)
	}
}
