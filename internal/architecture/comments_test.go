package architecture

import (
	"fmt"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// What a comment or a doc of the repository may not hold. The design notes and the services' wire notes the
// project started from are not in a clone, so citing them leaves a reader with nothing to open: code and docs
// cite files of the repository. And an issue number says when something was written, not what it does: a
// comment says what the code or the test pins.
var (
	// outsideCitation matches a citation of a file outside the repository.
	outsideCitation = regexp.MustCompile(`\bspecs/[\w.-]+\.md|\.\./shared/|\bARCHITECTURE\.md`)
	// processNote matches a process note: "(issue 9)", "Issue 18:", "finding 5 of issue 12".
	processNote = regexp.MustCompile(`(?i)\b(issue|finding)\s+#?\d+`)
)

// docFile says whether a file of the repository is prose or code a reader follows citations from.
func docFile(rel string) bool {
	switch filepath.Ext(rel) {
	case ".go", ".md", ".tf", ".tmpl", ".proto", ".yaml", ".yml", ".sh", ".html", ".js", ".css":
		return true
	}
	base := filepath.Base(rel)
	return base == "GNUmakefile" || base == "Makefile" || base == "Dockerfile"
}

// citations returns the lines of src that cite a file outside the repository, and, for Go, the comments
// that carry a process note (a link to another project's issue, with its address, is a citation and fine).
func citations(rel string, src []byte) ([]string, error) {
	var out []string
	for i, line := range strings.Split(string(src), "\n") {
		if outsideCitation.MatchString(line) {
			out = append(out, fmt.Sprintf("%s:%d cites a file outside the repository: %s", rel, i+1, strings.TrimSpace(line)))
		}
	}
	if filepath.Ext(rel) != ".go" {
		return out, nil
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, rel, src, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	for _, g := range f.Comments {
		for _, c := range g.List {
			if processNote.MatchString(c.Text) && !strings.Contains(c.Text, "://") {
				out = append(out, fmt.Sprintf("%s:%d holds a process note (say what the code or test pins instead): %s", rel, fset.Position(c.Pos()).Line, c.Text))
			}
		}
	}
	return out, nil
}

// Code and docs cite only files in the repository, and comments carry no process notes. The CHANGELOG is
// history and may say anything; this file holds the patterns themselves.
func TestCommentsAndDocsCiteOnlyTheRepository(t *testing.T) {
	root := moduleRoot(t)
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if rel != "." && (strings.HasPrefix(d.Name(), ".") && d.Name() != ".ci" || d.Name() == "node_modules" || rel == "bin" || rel == "dist" || rel == "bench/results") {
				return filepath.SkipDir
			}
			return nil
		}
		if !docFile(rel) || rel == "CHANGELOG.md" || rel == "internal/architecture/comments_test.go" {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		found, err := citations(rel, src)
		for _, f := range found {
			t.Error(f)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 300 {
		t.Fatalf("read %d files; the repository has more", files)
	}
}

// The patterns catch what they are written for, and let the rest be.
func TestTheCitationRulesCatchWhatTheyAreWrittenFor(t *testing.T) {
	src := "package p\n\n" +
		"// Built to specs/salesforce-api" + ".md section 8.\n" +
		"var a = 1\n\n" +
		"// See ../shared" + "/STYLE.md.\n" +
		"var b = 2\n\n" +
		"// Finding 5 of issue" + " 12: a second agent started.\n" +
		"var c = 3\n\n" +
		"/* Issue" + " 18: several users. */\n" +
		"var d = 4\n\n" +
		"// The fix of https://github.com/golang/go/issues/12345 (issue 12345 upstream).\n" +
		"// idGen issues 18-character Ids; docs/architecture.md is the map.\n" +
		"var e = 5\n"
	got, err := citations("p/p.go", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"p/p.go:3 cites", "p/p.go:6 cites", "p/p.go:9 holds a process note", "p/p.go:12 holds a process note"}
	if len(got) != len(want) {
		t.Fatalf("found %d: %q; want %d", len(got), got, len(want))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("finding %d = %q; want it to start with %q", i, got[i], want[i])
		}
	}
	if got, _ := citations("docs/x.md", []byte("Issue 9 of the design; see ARCHITECTURE"+".md\n")); len(got) != 1 {
		t.Errorf("a doc is checked for citations only: %q", got)
	}
}
