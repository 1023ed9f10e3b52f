package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/crmsync/terraform-provider-crmsync/internal/testenv"
	"github.com/crmsync/terraform-provider-crmsync/internal/testenv/pgtest"
	"github.com/crmsync/terraform-provider-crmsync/internal/version"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBinaries()
	pgtest.Shutdown()
	os.Exit(code)
}

// A binary built with plain `go build` in the checkout (no -ldflags) names its commit: `crmsync version` was
// "unknown" (cobra's --version printed "dev"), which tells an operator nothing about what runs.
func TestABuiltBinaryKnowsItsVersionAndExitsByTheDocumentedCodes(t *testing.T) {
	if testing.Short() {
		t.Skip("builds crmsync")
	}
	bin := testenv.Crmsync(t)
	out, err := exec.CommandContext(t.Context(), bin, "version", "--json").Output()
	if err != nil {
		t.Fatalf("crmsync version --json: %v", err)
	}
	var info version.Info
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Logf("%+v", info)
	if mainCheckout(t) {
		if info.Commit == "" || info.Version == "dev" || info.Version == "unknown" {
			t.Errorf("built from a git checkout, the binary does not know its commit: %+v", info)
		}
	} else {
		t.Log("not a main git checkout (Go records no VCS information in a linked worktree): the commit is not checked")
	}
	if info.Version == "" || info.Version == "unknown" {
		t.Errorf("version %q", info.Version)
	}
	line, err := exec.CommandContext(t.Context(), bin, "--version").Output()
	if err != nil || !strings.Contains(string(line), info.Version) {
		t.Errorf("crmsync --version: %q (%v), want it to name %s", line, err, info.Version)
	}

	// The process exits with the documented codes (not 1 for everything).
	for _, tc := range []struct {
		args []string
		env  []string
		want int
	}{
		{[]string{"status", "--bogus"}, nil, exitUsage},
		{[]string{"status"}, []string{"CRMSYNC_TOKEN="}, exitUsage},
		{[]string{"status"}, []string{"CRMSYNC_TOKEN=t", "CRMSYNC_ENDPOINT=http://127.0.0.1:1"}, exitUsage},
		{[]string{"version"}, nil, exitOK},
	} {
		cmd := exec.CommandContext(t.Context(), bin, tc.args...)
		cmd.Env = append(os.Environ(), tc.env...)
		err := cmd.Run()
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != tc.want {
			t.Errorf("crmsync %v (%v): exit %d, want %d", tc.args, tc.env, code, tc.want)
		}
	}
}

// mainCheckout reports whether the tests run in a git clone's main work tree (as CI's fresh clone), where
// go build records the commit; it does not in a linked worktree (`git worktree add`).
func mainCheckout(t *testing.T) bool {
	if _, err := exec.LookPath("git"); err != nil {
		return false
	}
	dir, err1 := exec.CommandContext(t.Context(), "git", "rev-parse", "--git-dir").Output()
	common, err2 := exec.CommandContext(t.Context(), "git", "rev-parse", "--git-common-dir").Output()
	if err1 != nil || err2 != nil {
		return false
	}
	abs := func(p []byte) string {
		s := strings.TrimSpace(string(p))
		if a, err := filepath.Abs(s); err == nil {
			return a
		}
		return s
	}
	return abs(dir) == abs(common)
}
