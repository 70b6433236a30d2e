// Package buildinfo tells which build of Lightbus is running: its version,
// the source revision it was built from and the Go release that built it.
// The gateway answers it at GET /v1/version; the CLI prints it with
// lightbus version.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// version, when set at link time, is the version reported:
//
//	go build -ldflags "-X github.com/lightbus-go/lightbus/internal/buildinfo.version=v1.2.0" ./cmd/gateway
var version string

// Info is what Read reports about the running binary.
type Info struct {
	// Version is the version set at link time, else the main module's
	// version as the go command stamped it (a tag, or a pseudo-version of
	// the commit built in a repository), else "(devel)".
	Version string `json:"version"`
	// Revision is the VCS commit the binary was built from, with
	// "-modified" when the work tree had changes; "" when unknown (built
	// outside a repository, or by go test).
	Revision string `json:"revision"`
	// Go is the Go release that built the binary (runtime.Version).
	Go string `json:"go"`
}

// Read returns the running binary's build information.
func Read() Info {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return fromBuild(nil)
	}
	return fromBuild(info)
}

// fromBuild returns the Info of info (nil when the binary carries none).
func fromBuild(info *debug.BuildInfo) Info {
	out := Info{Version: version, Go: runtime.Version()}
	if info == nil {
		if out.Version == "" {
			out.Version = "(devel)"
		}
		return out
	}
	if info.GoVersion != "" {
		out.Go = info.GoVersion
	}
	if out.Version == "" {
		out.Version = info.Main.Version
	}
	if out.Version == "" {
		out.Version = "(devel)"
	}
	var modified bool
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			out.Revision = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if modified && out.Revision != "" && !strings.HasSuffix(out.Revision, "-modified") {
		out.Revision += "-modified"
	}
	return out
}
