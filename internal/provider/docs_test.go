package provider

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// docsManaged are the files and directories of docs/ that tfplugindocs renders (the rest of docs/ is other
// pages of the project).
var docsManaged = []string{"index.md", "resources", "data-sources", "functions", "guides"}

// TestDocsAreUpToDate renders the documentation as `make docs` does, into a temporary directory, and fails
// when the committed docs/ differ: docs are generated from the schema, examples/ and templates/, never edited
// by hand.
func TestDocsAreUpToDate(t *testing.T) {
	accPreCheck(t) // needs ./bin/terraform, like the acceptance tests
	if providerHost() != "registry.terraform.io" {
		t.Skip("the docs are rendered with ./bin/terraform: checked in the Terraform run of make test, not again under OpenTofu")
	}
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "bin", "terraform")); err != nil {
		t.Skip("./bin/terraform is missing: run make tools")
	}
	out := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "docs.sh"), out)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/docs.sh: %v\n%s", err, b)
	}
	want := readTree(t, out, docsManaged)
	got := readTree(t, filepath.Join(root, "docs"), docsManaged)
	var names []string
	for name := range want {
		names = append(names, name)
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		w, inWant := want[name]
		g, inGot := got[name]
		switch {
		case !inGot:
			t.Errorf("docs/%s is missing: run make docs", name)
		case !inWant:
			t.Errorf("docs/%s is not generated any more: run make docs (it removes it)", name)
		case w != g:
			t.Errorf("docs/%s is stale: run make docs", name)
		}
	}
}

// readTree reads the given files and directories under dir, by slash-separated relative path.
func readTree(t *testing.T, dir string, roots []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range roots {
		err := filepath.WalkDir(filepath.Join(dir, r), func(p string, d os.DirEntry, err error) error {
			if os.IsNotExist(err) {
				return nil
			}
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			out[filepath.ToSlash(rel)] = string(b)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}
