package plansummary

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzSummarize: any document gives a summary or an error wrapping ErrNotAPlan, never a panic; a summary
// renders to valid JSON and to Markdown whose first line is the one-line headline. The seeds are the real
// plans of testdata/ (from the provider's acceptance tests) and a few broken ones.
func FuzzSummarize(f *testing.F) {
	plans, _ := filepath.Glob(filepath.Join("testdata", "*.plan.json"))
	for _, p := range plans {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{"", "{}", "null", `{"format_version":"1.2"}`, `{"format_version":"1.2","resource_changes":[{}]}`,
		`{"format_version":"1.2","resource_changes":[{"type":"crmsync_table_mapping","change":{"actions":["update"],"before":1,"after":"x"}}]}`,
		`{"format_version":"1.2","resource_drift":[{"type":"crmsync_activation","change":{"actions":["delete"]}}]}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		s, err := Summarize(t.Context(), doc, Options{Estimator: fixedEstimator{"Contact": 1234, "Account": 56}})
		if err != nil {
			if !errors.Is(err, ErrNotAPlan) {
				t.Fatalf("error %q does not wrap ErrNotAPlan", err)
			}
			return
		}
		if s.Headline == "" || strings.Contains(s.Headline, "\n") {
			t.Fatalf("headline %q is not one line", s.Headline)
		}
		js := s.JSON()
		if !json.Valid(js) {
			t.Fatalf("invalid JSON summary:\n%s", js)
		}
		md := s.Markdown()
		first, _, _ := bytes.Cut(md, []byte("\n"))
		if !bytes.HasPrefix(first, []byte("### crmsync plan: ")) {
			t.Fatalf("the Markdown does not start with the headline:\n%s", md)
		}
		if len(md) > maxMarkdown+200 {
			t.Fatalf("the Markdown is %d bytes, past the limit", len(md))
		}
		if utf8.Valid(doc) && !utf8.Valid(md) {
			t.Fatalf("valid UTF-8 in, invalid Markdown out")
		}
	})
}
