package architecture

import (
	"bufio"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/crmsync/terraform-provider-crmsync"

// moduleRoot is the repository's root directory.
func moduleRoot(t *testing.T) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("cannot locate the test's source file")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// goList returns, for every package of the module, its production imports (or, with deps, every package it
// depends on), keeping the module's own packages only, by path relative to the module ("internal/api").
func goList(t *testing.T, deps bool) map[string][]string {
	t.Helper()
	field := "Imports"
	if deps {
		field = "Deps"
	}
	cmd := exec.CommandContext(t.Context(), "go", "list", "-f", `{{.ImportPath}}{{range .`+field+`}} {{.}}{{end}}`, "./...")
	cmd.Dir = moduleRoot(t)
	out, err := cmd.Output()
	if err != nil {
		var stderr string
		if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list: %v\n%s", err, stderr)
	}
	pkgs := map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		pkg := rel(fields[0])
		pkgs[pkg] = []string{}
		for _, imp := range fields[1:] {
			if imp == module || strings.HasPrefix(imp, module+"/") {
				pkgs[pkg] = append(pkgs[pkg], rel(imp))
			}
		}
	}
	if len(pkgs) < 20 {
		t.Fatalf("go list found %d packages; the module has more", len(pkgs))
	}
	return pkgs
}

func rel(importPath string) string {
	if importPath == module {
		return "."
	}
	return strings.TrimPrefix(importPath, module+"/")
}

// under reports whether pkg is dir or below it.
func under(pkg, dir string) bool { return pkg == dir || strings.HasPrefix(pkg, dir+"/") }

// floorRule is one rule of the floors: the packages it governs (who) may import only what allowed accepts.
type floorRule struct {
	name    string
	who     func(pkg string) bool
	deps    bool // check every dependency, not only direct imports
	allowed func(imp string) bool
}

var floorRules = []floorRule{
	{
		name:    "internal/mapping imports nothing of the project's but its own sub-packages",
		who:     func(p string) bool { return under(p, "internal/mapping") },
		allowed: func(imp string) bool { return under(imp, "internal/mapping") },
	},
	{
		name:    "internal/api imports nothing of the project's but internal/mapping",
		who:     func(p string) bool { return p == "internal/api" },
		allowed: func(imp string) bool { return under(imp, "internal/mapping") },
	},
	{
		name: "leaf helpers import nothing of the project's",
		who: func(p string) bool {
			return slices.Contains([]string{"internal/cafile", "internal/retry", "internal/strictjson", "internal/version"}, p)
		},
		allowed: func(string) bool { return false },
	},
	{
		name: "the Terraform side (provider, client, plan summary) reaches nothing of internal/runtime or the sandbox",
		who: func(p string) bool {
			return under(p, "internal/provider") || under(p, "internal/client") || under(p, "internal/plansummary")
		},
		deps:    true,
		allowed: func(imp string) bool { return !under(imp, "internal/runtime") && !under(imp, "internal/sandbox") },
	},
	{
		name: "nothing outside cmd/, bench/ and tests imports the emulators (internal/sandbox)",
		who: func(p string) bool {
			return !under(p, "cmd") && !under(p, "bench") && !under(p, "internal/sandbox") && !under(p, "internal/testenv")
		},
		allowed: func(imp string) bool { return !under(imp, "internal/sandbox") },
	},
	{
		// The benchmarks start what the tests start (a private PostgreSQL cluster): they are tests that print.
		name:    "internal/testenv is for tests and benchmarks only",
		who:     func(p string) bool { return !under(p, "internal/testenv") && !under(p, "bench") },
		allowed: func(imp string) bool { return !under(imp, "internal/testenv") },
	},
}

// violations lists, for each rule, the imports it forbids: "pkg → imp".
func violations(direct, deps map[string][]string) map[string][]string {
	out := map[string][]string{}
	for _, r := range floorRules {
		graph := direct
		if r.deps {
			graph = deps
		}
		for pkg, imps := range graph {
			if !r.who(pkg) {
				continue
			}
			for _, imp := range imps {
				if imp != pkg && !r.allowed(imp) {
					out[r.name] = append(out[r.name], fmt.Sprintf("%s → %s", pkg, imp))
				}
			}
		}
		slices.Sort(out[r.name])
	}
	return out
}

// Every package keeps to its floor: a new import that reaches up (the wire types importing the control
// plane, the provider importing the runtime, production code importing an emulator) fails here, naming it.
func TestImportsKeepToTheFloors(t *testing.T) {
	for rule, bad := range violations(goList(t, false), goList(t, true)) {
		t.Errorf("%s; these break it:\n  %s", rule, strings.Join(bad, "\n  "))
	}
}

// The rules themselves catch what they are written for (a rule that can never fail would pass the test
// above whatever the imports).
func TestTheFloorRulesCatchImportsThatReachUp(t *testing.T) {
	direct := map[string][]string{
		"internal/api":                      {"internal/mapping", "internal/runtime/mapping"},
		"internal/mapping":                  {"internal/mapping/sfid", "internal/api"},
		"internal/retry":                    {"internal/api"},
		"internal/runtime/agent":            {"internal/sandbox/harness", "internal/api"},
		"internal/runtime/controlplane":     {"internal/testenv"},
		"cmd/crmsync":                       {"internal/sandbox"},
		"internal/provider":                 {"internal/client"},
		"internal/sandbox/dataverse":        {"internal/mapping/jsonrow"},
		"internal/runtime/controlplane/e2e": {},
	}
	deps := map[string][]string{"internal/provider": {"internal/client", "internal/runtime/policy"}}
	got := violations(direct, deps)
	want := map[string]string{
		"internal/mapping imports nothing of the project's but its own sub-packages":                             "internal/mapping → internal/api",
		"internal/api imports nothing of the project's but internal/mapping":                                     "internal/api → internal/runtime/mapping",
		"leaf helpers import nothing of the project's":                                                           "internal/retry → internal/api",
		"the Terraform side (provider, client, plan summary) reaches nothing of internal/runtime or the sandbox": "internal/provider → internal/runtime/policy",
		"nothing outside cmd/, bench/ and tests imports the emulators (internal/sandbox)":                        "internal/runtime/agent → internal/sandbox/harness",
		"internal/testenv is for tests and benchmarks only":                                                      "internal/runtime/controlplane → internal/testenv",
	}
	for rule, v := range want {
		if !slices.Equal(got[rule], []string{v}) {
			t.Errorf("rule %q caught %v; want exactly [%s]", rule, got[rule], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("rules caught %v; want only %v", got, want)
	}
}
