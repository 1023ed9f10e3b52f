package plansummary

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden summaries of testdata/ from the committed plans")

// TestSummarize_goldenPlans replays the real plans of testdata/ (made by the provider's acceptance tests,
// TestAccPlanSummary_goldenPlans, against a control plane and the sandbox) with the record counts the control
// plane gave then, and compares the summaries with the golden Markdown and JSON. The acceptance test checks
// that fresh plans still give the same summaries, under Terraform and OpenTofu.
func TestSummarize_goldenPlans(t *testing.T) {
	plans, err := filepath.Glob(filepath.Join("testdata", "*.plan.json"))
	if err != nil || len(plans) == 0 {
		t.Fatalf("no plans in testdata: %v", err)
	}
	for _, p := range plans {
		name := strings.TrimSuffix(filepath.Base(p), ".plan.json")
		t.Run(name, func(t *testing.T) {
			doc, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			counts := fixedEstimator{}
			if b, err := os.ReadFile(filepath.Join("testdata", name+".counts.json")); err == nil {
				if err := json.Unmarshal(b, &counts); err != nil {
					t.Fatal(err)
				}
			}
			s, err := Summarize(t.Context(), doc, Options{Estimator: counts})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name+".md", s.Markdown())
			golden(t, name+".json", s.JSON())
			// Offline, the same plan still gives a summary; the counts are said to be missing.
			off, err := Summarize(t.Context(), doc, Options{NoEstimator: "--offline"})
			if err != nil {
				t.Fatal(err)
			}
			if name == "add-columns" {
				golden(t, name+".offline.md", off.Markdown())
			}
		})
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o600); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}
