// Package version holds the build's version, set at link time by goreleaser and the Makefile, or read from
// what the Go toolchain stamps into every binary it builds (debug.ReadBuildInfo) when no -ldflags gave one.
package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"time"
)

// Version is overridden with -ldflags "-X .../internal/version.Version=v1.2.3". When the link leaves it at
// "dev", init replaces it with what the build info says: the module version Go records (that of a `go install
// module@v1.2.3`, or the tag or pseudo-version of a build in a git clone), else "dev-<commit>[-dirty]".
var Version = "dev"

// Info describes the running binary: `crmsync version --json`, the crmsync_build_info metric.
type Info struct {
	Version string `json:"version"`
	// Commit is the VCS revision the binary was built from ("" when the build did not record it, as with
	// `go run` or a build outside a checkout); Modified says the work tree had uncommitted changes.
	Commit     string    `json:"commit,omitempty"`
	CommitTime time.Time `json:"commit_time,omitzero"`
	Modified   bool      `json:"modified,omitempty"`
	GoVersion  string    `json:"go_version"`
	Platform   string    `json:"platform"` // GOOS/GOARCH
}

var info Info

func init() {
	info = fromBuildInfo(Version, readBuildInfo())
	Version = info.Version
}

// readBuildInfo is debug.ReadBuildInfo, nil when the binary has none.
func readBuildInfo() *debug.BuildInfo {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return nil
	}
	return bi
}

// fromBuildInfo builds the Info of a binary linked with version linked (ldflags) and build info bi.
func fromBuildInfo(linked string, bi *debug.BuildInfo) Info {
	out := Info{Version: linked, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi == nil {
		return out
	}
	if bi.GoVersion != "" {
		out.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			out.Commit = s.Value
		case "vcs.time":
			out.CommitTime, _ = time.Parse(time.RFC3339, s.Value)
		case "vcs.modified":
			out.Modified = s.Value == "true"
		}
	}
	if linked != "dev" && linked != "" {
		return out
	}
	switch mv := bi.Main.Version; {
	case mv != "" && mv != "(devel)":
		// `go install module@version`, or a build the toolchain stamped from a tag (Go 1.24+).
		out.Version = strings.TrimSuffix(mv, "+dirty")
		if out.Modified && !strings.HasSuffix(out.Version, "-dirty") {
			out.Version += "-dirty"
		}
	case out.Commit != "":
		out.Version = "dev-" + short(out.Commit)
		if out.Modified {
			out.Version += "-dirty"
		}
	default:
		out.Version = "dev"
	}
	return out
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

// Get returns the running binary's Info.
func Get() Info { return info }
