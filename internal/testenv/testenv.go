// Package testenv holds what tests that run crmsync as processes share: the module's executables, built
// once per test process, and free loopback addresses. Only tests import it.
package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/harness"
)

const module = "github.com/crmsync/terraform-provider-crmsync"

var (
	mu    sync.Mutex
	dir   string
	built = map[string]string{}
)

// Binary builds a main package of the module once per test process and returns the executable's path:
// "cmd/crmsync" (the agent, the control plane) or "." (the Terraform provider).
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if p, ok := built[pkg]; ok {
		return p
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "crmsync-test-bin-")
		if err != nil {
			t.Fatal(err)
		}
		dir = d
	}
	name, path := filepath.Base(pkg), module+"/"+pkg
	if pkg == "." {
		name, path = "terraform-provider-crmsync", module
	}
	out := filepath.Join(dir, name)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	// -buildvcs=auto whatever GOFLAGS says: the binary records its commit, as a release build does
	// (`crmsync version` reads it).
	cmd := exec.CommandContext(ctx, "go", "build", "-buildvcs=auto", "-o", out, path) //nolint:gosec // G204: go build of a package of this module
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, b)
	}
	built[pkg] = out
	return out
}

// Crmsync builds cmd/crmsync once per test process.
func Crmsync(t testing.TB) string { t.Helper(); return Binary(t, "cmd/crmsync") }

// RemoveBinaries deletes what Binary built; a TestMain calls it after the tests ran.
func RemoveBinaries() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
		dir, built = "", map[string]string{}
	}
}

// FreeAddr returns a free loopback address ("127.0.0.1:port").
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := harness.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
