package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runPlanSummary(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	t.Setenv("CRMSYNC_ENDPOINT", "")
	t.Setenv("CRMSYNC_TOKEN", "")
	cmd := newRootCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetArgs(append([]string{"plan-summary"}, args...))
	err := cmd.ExecuteContext(t.Context())
	return out.String(), err
}

// The command prints the golden summary of a real plan (internal/plansummary/testdata), offline.
func TestPlanSummary_printsTheSummaryOfAPlanFile(t *testing.T) {
	plan := filepath.Join("..", "..", "internal", "plansummary", "testdata", "add-columns.plan.json")
	want, err := os.ReadFile(filepath.Join("..", "..", "internal", "plansummary", "testdata", "add-columns.offline.md"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := runPlanSummary(t, "", "--offline", plan)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
	b, err := os.ReadFile(plan)
	if err != nil {
		t.Fatal(err)
	}
	got, err = runPlanSummary(t, string(b), "--format", "json", "-")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(got, "{\n  \"headline\": \"2 columns added to contact") || !strings.Contains(got, "no control plane given") {
		t.Errorf("JSON output from stdin:\n%s", got)
	}
}

func TestPlanSummary_clearErrors(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state.json")
	if err := os.WriteFile(state, []byte(`{"format_version":"1.0","terraform_version":"1.8.5","values":{"root_module":{}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--format", "html", state}, `--format "html": use markdown or json`},
		{[]string{filepath.Join(dir, "missing.json")}, "no such file"},
		{[]string{state}, "this is a state"},
		{[]string{}, "accepts 1 arg"},
	} {
		_, err := runPlanSummary(t, "", tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("plan-summary %v: err = %v, want %q", tc.args, err, tc.want)
		}
	}
}

// A control plane that does not answer costs the counts, not the summary.
func TestPlanSummary_unreachableControlPlaneStillSummarizes(t *testing.T) {
	plan := filepath.Join("..", "..", "internal", "plansummary", "testdata", "add-columns.plan.json")
	t.Setenv("CRMSYNC_TOKEN", "whatever")
	cmd := newRootCommand()
	var out, errOut bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SetArgs([]string{"plan-summary", "--endpoint", "http://127.0.0.1:1", plan})
	if err := cmd.ExecuteContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "not shown: the control plane did not answer") || !strings.Contains(errOut.String(), "did not answer") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", out.String(), errOut.String())
	}
}
