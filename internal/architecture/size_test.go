package architecture

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The limits of production code, outside the emulators (internal/sandbox), generated code, bench/ and
// scripts/: a file of at most maxFileLines lines; a function of at most maxFuncLines lines (lines inside a
// composite literal, such as a schema, do not count, unless they hold a function literal's code) and at most
// maxBranches branch points (if, for, range, a case or select clause other than default, && and ||: the
// cyclomatic complexity less one, as gocyclo counts it, function literals included).
const (
	maxFileLines = 600
	maxFuncLines = 80
	maxBranches  = 25
)

// offence is one limit broken: key names it (the limit, the file and the function), detail says by how much.
type offence struct {
	key, detail string
}

// measureFile returns the offences of one Go source file (rel is its path from the module root).
func measureFile(rel string, src []byte) ([]offence, error) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, rel, src, parser.ParseComments)
	if err != nil {
		return nil, err
	}
	if ast.IsGenerated(f) {
		return nil, nil
	}
	var out []offence
	if n := strings.Count(string(src), "\n"); n > maxFileLines {
		out = append(out, offence{"file " + rel, fmt.Sprintf("%s has %d lines (limit %d)", rel, n, maxFileLines)})
	}
	for _, d := range f.Decls {
		fd, ok := d.(*ast.FuncDecl)
		if !ok || fd.Body == nil {
			continue
		}
		name, at := funcName(fd), fset.Position(fd.Pos()).Line
		if n := codeLines(fset, fd); n > maxFuncLines {
			out = append(out, offence{"lines " + rel + " " + name, fmt.Sprintf("%s:%d %s has %d lines of code (limit %d)", rel, at, name, n, maxFuncLines)})
		}
		if n := branchPoints(fd); n > maxBranches {
			out = append(out, offence{"branches " + rel + " " + name, fmt.Sprintf("%s:%d %s has %d branch points (limit %d)", rel, at, name, n, maxBranches)})
		}
	}
	return out, nil
}

// funcName is "Recv.Name" for a method, "Name" for a function.
func funcName(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return fd.Name.Name
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	switch t := t.(type) {
	case *ast.IndexExpr:
		t2, _ := t.X.(*ast.Ident)
		return t2.Name + "." + fd.Name.Name
	case *ast.IndexListExpr:
		t2, _ := t.X.(*ast.Ident)
		return t2.Name + "." + fd.Name.Name
	case *ast.Ident:
		return t.Name + "." + fd.Name.Name
	}
	return fd.Name.Name
}

// codeLines counts a function's lines but those inside composite literals (declarations: schemas, tables),
// keeping the lines of function literals written inside them.
func codeLines(fset *token.FileSet, fd *ast.FuncDecl) int {
	literal, code := map[int]bool{}, map[int]bool{}
	ast.Inspect(fd.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CompositeLit:
			for l := fset.Position(n.Lbrace).Line + 1; l <= fset.Position(n.Rbrace).Line; l++ {
				literal[l] = true
			}
		case *ast.FuncLit:
			for l := fset.Position(n.Body.Lbrace).Line; l <= fset.Position(n.Body.Rbrace).Line; l++ {
				code[l] = true
			}
		}
		return true
	})
	n := 0
	for l := fset.Position(fd.Pos()).Line; l <= fset.Position(fd.End()).Line; l++ {
		if !literal[l] || code[l] {
			n++
		}
	}
	return n
}

// branchPoints counts if, for, range, non-default case and select clauses, && and ||.
func branchPoints(fd *ast.FuncDecl) int {
	n := 0
	ast.Inspect(fd.Body, func(node ast.Node) bool {
		switch node := node.(type) {
		case *ast.IfStmt, *ast.ForStmt, *ast.RangeStmt:
			n++
		case *ast.CaseClause:
			if node.List != nil {
				n++
			}
		case *ast.CommClause:
			if node.Comm != nil {
				n++
			}
		case *ast.BinaryExpr:
			if node.Op == token.LAND || node.Op == token.LOR {
				n++
			}
		}
		return true
	})
	return n
}

// exempt are the trees the limits do not apply to.
func exempt(rel string) bool {
	for _, dir := range []string{"internal/sandbox", "bench", "scripts", "bin", "dist", "node_modules"} {
		if rel == dir || strings.HasPrefix(rel, dir+"/") {
			return true
		}
	}
	return strings.HasPrefix(filepath.Base(rel), ".") && rel != "."
}

// Production code keeps to the limits: a function that grows past them, or a file, fails here naming it.
func TestProductionFunctionsAndFilesKeepToTheLimits(t *testing.T) {
	root := moduleRoot(t)
	var found []offence
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if exempt(rel) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(rel, ".go") || strings.HasSuffix(rel, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		o, err := measureFile(rel, src)
		found = append(found, o...)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Fatalf("measured %d production files; the module has more", files)
	}
	for _, o := range found {
		t.Errorf("%s: split it by responsibility", o.detail)
	}
}

// The measures see what they are written for.
func TestTheSizeMeasuresCountCodeNotDeclarations(t *testing.T) {
	var b strings.Builder
	b.WriteString("package p\n\nfunc schema() map[string]int {\n\treturn map[string]int{\n")
	for i := range 200 {
		fmt.Fprintf(&b, "\t\t\"k%d\": %d,\n", i, i)
	}
	b.WriteString("\t}\n}\n\nfunc long(x int) int {\n")
	for range 90 {
		b.WriteString("\tx++\n")
	}
	b.WriteString("\treturn x\n}\n\nfunc branchy(a, b bool, x int) int {\n")
	for range 13 {
		b.WriteString("\tif a && b {\n\t\tx++\n\t}\n")
	}
	b.WriteString("\treturn x\n}\n\nfunc closures() []func() {\n\treturn []func(){\n\t\tfunc() {\n")
	for range 85 {
		b.WriteString("\t\t\tprintln()\n")
	}
	b.WriteString("\t\t},\n\t}\n}\n")
	got, err := measureFile("p/p.go", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range got {
		keys = append(keys, o.key)
	}
	want := []string{"lines p/p.go long", "branches p/p.go branchy", "lines p/p.go closures"}
	if !slices.Equal(keys, want) {
		t.Errorf("offences %v; want %v (a 200-line map literal is a declaration, 90 statements are not, 13 ifs with && are 26 branch points, a long function literal inside a literal is code)", keys, want)
	}
	gen := "// Code generated by protoc-gen-go. DO NOT EDIT.\n\n" + b.String()
	if got, _ := measureFile("p/gen.go", []byte(gen)); len(got) != 0 {
		t.Errorf("generated code measured: %v", got)
	}
}
