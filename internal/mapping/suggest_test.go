package mapping

import (
	"strings"
	"testing"
)

func TestDidYouMean(t *testing.T) {
	known := []string{"Title", "FirstName", "LastName", "Email", "Region__c", "MailingCity"}
	for _, c := range []struct{ in, want string }{
		{"Titel", "Title"},
		{"title", ""}, // equal without case: not a typo (the caller found it)
		{"Fristname", "FirstName"},
		{"Region", "Region__c"},
		{"MailingCty", "MailingCity"},
		{"Description", ""},
		{"X", ""},
	} {
		got := closest(c.in, known)
		if c.in == "title" {
			if got != "Title" {
				t.Errorf("closest(%q) = %q", c.in, got)
			}
			continue
		}
		if got != c.want {
			t.Errorf("closest(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// A typo in a source field (source = "Titel") names the field it probably meant, statically and live.
func TestUnknownSourceSuggestsTheClosestField(t *testing.T) {
	cfg := contactConfig()
	cfg.Columns = map[string]ColumnOverride{"jobtitle": {Source: "Titel"}}
	cols, _ := resolve(cfg, []string{"Contact", "Account"})
	for _, schemas := range []sides{staticSchemas(cfg, bothSynced), {Source: staticSchemas(cfg, bothSynced).Source, Dest: staticSchemas(cfg, bothSynced).Dest, SyncedTables: bothSynced}} {
		var found bool
		for _, p := range validate(cfg, cols, schemas) {
			if p.Code == CodeUnknownSource {
				found = true
				if !strings.Contains(p.Message, `did you mean "Title"?`) {
					t.Errorf("static %v: %s", schemas.Static, p.Message)
				}
				if !schemas.Static && p.Severity != Error {
					t.Errorf("live: an unknown source field is %v, want an error", p.Severity)
				}
			}
		}
		if !found {
			t.Errorf("static %v: no unknown_source_column problem for Titel", schemas.Static)
		}
	}
}

func TestEditDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"kitten", "sitting", 3}, {"titel", "title", 1}, {"", "abc", 3}, {"abc", "abc", 0}, {"ca", "ac", 1}, {"émile", "emile", 1}} {
		if got := editDistance(c.a, c.b, 10); got != c.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := editDistance(c.a, c.b, 1); c.want >= 1 && got != 1 {
			t.Errorf("editDistance(%q, %q) bounded at 1 = %d", c.a, c.b, got)
		}
	}
}
