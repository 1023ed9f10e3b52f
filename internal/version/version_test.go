package version

import (
	"runtime/debug"
	"testing"
)

func TestVersionFromBuildInfo(t *testing.T) {
	vcs := []debug.BuildSetting{{Key: "vcs.revision", Value: "0c59693e487f9d86933bec39b873bb04f682091c"}, {Key: "vcs.time", Value: "2026-12-06T13:44:00Z"}}
	dirty := append(append([]debug.BuildSetting(nil), vcs...), debug.BuildSetting{Key: "vcs.modified", Value: "true"})
	for _, tc := range []struct {
		name, linked string
		bi           *debug.BuildInfo
		want         string
	}{
		{"linked by the release", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs}, "v1.2.3"},
		{"go install module@version", "dev", &debug.BuildInfo{Main: debug.Module{Version: "v1.4.0"}}, "v1.4.0"},
		{"go build in a checkout", "dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: vcs}, "dev-0c59693e487f"},
		{"go build in a dirty checkout", "dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: dirty}, "dev-0c59693e487f-dirty"},
		{"a stamped pseudo-version, dirty", "dev", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261206134400-0c59693e487f+dirty"}, Settings: dirty}, "v0.0.0-20261206134400-0c59693e487f-dirty"},
		{"go run (no VCS)", "dev", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, "dev"},
		{"no build info", "dev", nil, "dev"},
	} {
		got := fromBuildInfo(tc.linked, tc.bi)
		if got.Version != tc.want {
			t.Errorf("%s: version %q, want %q", tc.name, got.Version, tc.want)
		}
		if got.GoVersion == "" || got.Platform == "" {
			t.Errorf("%s: %+v lacks the Go version or platform", tc.name, got)
		}
	}
	if got := fromBuildInfo("dev", &debug.BuildInfo{Settings: dirty}); got.Commit != "0c59693e487f9d86933bec39b873bb04f682091c" || !got.Modified || got.CommitTime.IsZero() {
		t.Errorf("commit details: %+v", got)
	}
}
