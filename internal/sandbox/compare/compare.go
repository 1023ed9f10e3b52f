// Package compare checks a whole sync: it reads every Salesforce record and every Dataverse row as the two
// emulators store them and reports each difference. Expectations are written out here independently of the
// runtime's mapping code (plain field → column pairs and the value rules of docs/architecture.md), so a mapping bug
// cannot hide itself. Tests, the chaos suite and the benchmarks use it.
package compare

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"
	"unicode/utf16"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
)

// Kinds of column values.
const (
	Text   = "text"   // string ↔ string
	Date   = "date"   // YYYY-MM-DD ↔ YYYY-MM-DD
	Number = "number" // number ↔ number
	Lookup = "lookup" // Salesforce Id ↔ GUID of that Id
)

// Column is one expected column.
type Column struct {
	Dest, Source, Kind string
	// MaxLength truncates the expected text to that many UTF-16 code units, as Dataverse counts them (for
	// columns mapped with truncate = true); 0 keeps it whole.
	MaxLength int
}

// Table is one expected table mapping.
type Table struct {
	Source, Dest, PrimaryID string
	Columns                 []Column
	// KeepDeleted is true for delete behaviours that leave the row (ignore, deactivate).
	KeepDeleted bool
}

// Contact is the predefined Contact → contact mapping; withAccount adds AccountId → parentcustomerid.
func Contact(withAccount bool) Table {
	t := Table{Source: "Contact", Dest: "contact", PrimaryID: "contactid", Columns: []Column{
		{"assistantname", "AssistantName", Text, 0}, {"assistantphone", "AssistantPhone", Text, 0},
		{"birthdate", "Birthdate", Date, 0}, {"department", "Department", Text, 0},
		{"description", "Description", Text, 0}, {"emailaddress1", "Email", Text, 0}, {"fax", "Fax", Text, 0},
		{"firstname", "FirstName", Text, 0}, {"lastname", "LastName", Text, 0}, {"mobilephone", "MobilePhone", Text, 0},
		{"salutation", "Salutation", Text, 0}, {"telephone1", "Phone", Text, 0},
	}}
	if withAccount {
		t.Columns = append(t.Columns, Column{"parentcustomerid", "AccountId", Lookup, 0})
	}
	return t
}

// Account is the predefined Account → account mapping.
func Account() Table {
	return Table{Source: "Account", Dest: "account", PrimaryID: "accountid", Columns: []Column{
		{"accountnumber", "AccountNumber", Text, 0}, {"description", "Description", Text, 0}, {"fax", "Fax", Text, 0},
		{"name", "Name", Text, 0}, {"numberofemployees", "NumberOfEmployees", Number, 0}, {"sic", "Sic", Text, 0},
		{"telephone1", "Phone", Text, 0}, {"tickersymbol", "TickerSymbol", Text, 0},
	}}
}

// Result is one table's comparison.
type Result struct {
	Table      string
	Compared   int // live Salesforce records checked
	Deleted    int // deleted Salesforce records checked
	Skipped    int // records the caller expects to be missing (dead-lettered)
	Missing    int // live records with no row
	Extra      int // rows of no live record (or of a deleted one)
	Mismatched int // rows with at least one column different
	Duplicates int // more than one row for one key (cannot happen with keyed rows; counted to prove it)
	Examples   []string
	// Keys names every difference (not only the first examples), one stable key each: the record and what
	// the row should hold, so a difference that lasts keeps its key and a new expectation gets a new one.
	Keys []string
}

// Differences is the number of problems found.
func (r Result) Differences() int { return r.Missing + r.Extra + r.Mismatched + r.Duplicates }

func (r Result) String() string {
	return fmt.Sprintf("%s: compared %d live + %d deleted (skipped %d): missing %d, extra %d, mismatched %d, duplicates %d",
		r.Table, r.Compared, r.Deleted, r.Skipped, r.Missing, r.Extra, r.Mismatched, r.Duplicates)
}

// Compare checks every table: every live record has its row with every mapped column equal and owned by
// teamID; deleted records have no row (unless KeepDeleted); no other rows exist. skip names Salesforce Ids
// expected to be absent (dead-lettered records).
func Compare(sf *salesforce.Emulator, dv *dataverse.Emulator, teamID string, skip map[string]bool, tables ...Table) ([]Result, error) {
	var out []Result
	for _, t := range tables {
		r, err := compareTable(sf, dv, teamID, skip, t)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, nil
}

func compareTable(sf *salesforce.Emulator, dv *dataverse.Emulator, teamID string, skip map[string]bool, t Table) (Result, error) {
	res := Result{Table: t.Source + " → " + t.Dest}
	rows := map[string]map[string]any{}
	var dvBuf bytes.Buffer
	if err := dv.ExportNDJSON(t.Dest, &dvBuf); err != nil {
		return res, err
	}
	if err := eachLine(&dvBuf, func(m map[string]any) {
		key, _ := m[t.PrimaryID].(string)
		key = strings.ToLower(key)
		if _, dup := rows[key]; dup {
			res.Duplicates++
		}
		rows[key] = m
	}); err != nil {
		return res, err
	}
	var sfBuf bytes.Buffer
	if err := sf.Export(&sfBuf, t.Source); err != nil {
		return res, err
	}
	example := func(format string, args ...any) {
		if len(res.Examples) < 20 {
			res.Examples = append(res.Examples, fmt.Sprintf(format, args...))
		}
	}
	keyOf := func(format string, args ...any) { res.Keys = append(res.Keys, fmt.Sprintf(format, args...)) }
	err := eachLine(&sfBuf, func(rec map[string]any) {
		id, _ := rec["Id"].(string)
		key := sfid.MustGUID(id).String()
		row, present := rows[key]
		delete(rows, key)
		if skip[id] {
			res.Skipped++
			return
		}
		if deleted, _ := rec["IsDeleted"].(bool); deleted {
			res.Deleted++
			if present && !t.KeepDeleted {
				res.Extra++
				example("%s %s is deleted in Salesforce but row %s exists", t.Source, id, key)
				keyOf("%s %s deleted", t.Source, id)
			}
			return
		}
		res.Compared++
		if !present {
			res.Missing++
			example("%s %s has no row %s", t.Source, id, key)
			keyOf("%s %s missing", t.Source, id)
			return
		}
		var diffs []string
		if owner, _ := row["ownerid"].(string); !strings.EqualFold(owner, teamID) {
			diffs = append(diffs, fmt.Sprintf("ownerid %v, want team %s", row["ownerid"], teamID))
			keyOf("%s %s ownerid=%s", t.Source, id, teamID)
		}
		for _, c := range t.Columns {
			want, ok := expected(rec[c.Source], c)
			got := row[c.Dest]
			if !ok {
				diffs = append(diffs, fmt.Sprintf("%s: source value %#v cannot be converted", c.Dest, rec[c.Source]))
				keyOf("%s %s %s unconvertible", t.Source, id, c.Dest)
				continue
			}
			if !equal(want, got, c.Kind) {
				diffs = append(diffs, fmt.Sprintf("%s = %#v, want %#v (from %s)", c.Dest, got, want, c.Source))
				keyOf("%s %s %s=%#v", t.Source, id, c.Dest, want)
			}
		}
		if len(diffs) > 0 {
			res.Mismatched++
			example("%s %s: %s", t.Source, id, strings.Join(diffs, "; "))
		}
	})
	if err != nil {
		return res, err
	}
	for key := range rows {
		res.Extra++
		example("row %s of %s matches no Salesforce record", key, t.Dest)
		keyOf("%s row %s extra", t.Dest, key)
	}
	return res, nil
}

// expected converts a Salesforce value (REST JSON form) into the value the row should hold; nil means the
// column should be null.
func expected(v any, c Column) (any, bool) {
	if v == nil {
		return nil, true
	}
	switch c.Kind {
	case Text, Date:
		s, ok := v.(string)
		if !ok {
			return nil, false
		}
		if s == "" {
			return nil, true
		}
		if c.MaxLength > 0 {
			// Dataverse counts UTF-16 code units; a cut never splits a surrogate pair.
			used := 0
			for pos, r := range s {
				used += max(1, utf16.RuneLen(r))
				if used > c.MaxLength {
					s = s[:pos]
					break
				}
			}
		}
		return s, true
	case Number:
		switch n := v.(type) {
		case json.Number:
			f, err := n.Float64()
			return f, err == nil
		case float64:
			return n, true
		}
		return nil, false
	case Lookup:
		s, ok := v.(string)
		if !ok {
			return nil, false
		}
		g, err := sfid.GUID(s)
		if err != nil {
			return nil, false
		}
		return g.String(), true
	}
	return nil, false
}

func equal(want, got any, kind string) bool {
	if want == nil || got == nil {
		return want == nil && got == nil
	}
	switch kind {
	case Number:
		var g float64
		switch n := got.(type) {
		case float64:
			g = n
		case json.Number:
			g, _ = n.Float64()
		default:
			return false
		}
		return math.Abs(g-want.(float64)) < 1e-9
	case Date:
		gs, _ := got.(string)
		return len(gs) >= 10 && gs[:10] == want.(string)
	case Lookup:
		gs, _ := got.(string)
		return strings.EqualFold(gs, want.(string))
	}
	return got == want
}

func eachLine(r io.Reader, fn func(map[string]any)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.UseNumber()
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			return fmt.Errorf("export line: %w", err)
		}
		fn(m)
	}
	return sc.Err()
}
