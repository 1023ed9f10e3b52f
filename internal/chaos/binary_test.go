package chaos_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildMu  sync.Mutex
	binDir   string
	binaries = map[string]string{}
)

// binary builds a main package of the module once per test run and returns the executable's path:
// "cmd/crmsync" or "." (the Terraform provider).
func binary(t testing.TB, pkg string) string {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := binaries[pkg]; ok {
		return p
	}
	if binDir == "" {
		d, err := os.MkdirTemp("", "crmsync-chaos-bin-")
		if err != nil {
			t.Fatal(err)
		}
		binDir = d
	}
	name := filepath.Base(pkg)
	if pkg == "." {
		name = "terraform-provider-crmsync"
	}
	out := filepath.Join(binDir, name)
	cmd := exec.Command("go", "build", "-o", out, importPath(pkg))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, b)
	}
	binaries[pkg] = out
	return out
}

func importPath(pkg string) string {
	const module = "github.com/crmsync/terraform-provider-crmsync"
	if pkg == "." {
		return module
	}
	return module + "/" + pkg
}

func crmsyncBinary(t testing.TB) string { return binary(t, "cmd/crmsync") }

func removeBinaries() {
	if binDir != "" {
		if err := os.RemoveAll(binDir); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
}
