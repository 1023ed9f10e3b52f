package mapping

import (
	"errors"
	"strings"
	"testing"
)

// TestTextLengthsAreCountedAsDataverseCountsThem: Dataverse measures text in UTF-16 code units, so an emoji
// (outside the Basic Multilingual Plane) takes two of a column's MaxLength. A value that fits in characters
// but not in UTF-16 units is refused (or cut, when the column truncates) before Dataverse sees it, and a cut
// never splits a surrogate pair. Regression: lengths were counted in characters, so a truncating column
// sent Dataverse a value it refused, and the record was dead-lettered instead of truncated.
func TestTextLengthsAreCountedAsDataverseCountsThem(t *testing.T) {
	p := compileContact(t, contactConfig())
	// 30 emoji: 30 characters, 60 UTF-16 units, for lastname's 50.
	_, err := p.Patch(map[string]any{"LastName": strings.Repeat("😀", 30)}, []string{"LastName"})
	var ve *ValueError
	if !errors.As(err, &ve) || ve.Column != "lastname" {
		t.Fatalf("60 UTF-16 units into lastname (50) must be refused with the column named: %v", err)
	}
	// Exactly at the limit passes unchanged.
	row, err := p.Patch(map[string]any{"LastName": strings.Repeat("😀", 25)}, []string{"LastName"})
	if err != nil || row["lastname"] != strings.Repeat("😀", 25) {
		t.Errorf("25 emoji (50 units) = %q, %v", row["lastname"], err)
	}

	cfg := contactConfig()
	cfg.Columns = map[string]ColumnOverride{"lastname": {Source: "LastName", Truncate: true}}
	p = compileContact(t, cfg)
	for _, c := range []struct{ in, want string }{
		{strings.Repeat("😀", 30), strings.Repeat("😀", 25)},
		// An odd budget: the 25th emoji would need units 50 and 51, so the cut comes before it.
		{"x" + strings.Repeat("😀", 30), "x" + strings.Repeat("😀", 24)},
		{strings.Repeat("é", 60), strings.Repeat("é", 50)},
	} {
		row, err := p.Patch(map[string]any{"LastName": c.in}, []string{"LastName"})
		if err != nil || row["lastname"] != c.want {
			t.Errorf("truncating %d runes: got %q (%v), want %q", len([]rune(c.in)), row["lastname"], err, c.want)
		}
	}
}
