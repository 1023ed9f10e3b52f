package mapping

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/jsonrow"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
)

// Plan is a compiled table mapping: it turns Salesforce records into Dataverse row bodies. Build it with
// Compile; it is immutable and safe for concurrent use.
//
// Source records are maps of field API name → value, where a value is nil, a string (REST JSON and Bulk CSV
// give strings for text, dates and datetimes), a bool, a number (float64, json.Number or an integer type),
// or a time.Time (the Pub/Sub decoder's dates and datetimes). Components of compound fields appear under
// their own names (FirstName, not Name.FirstName). Field names match case-insensitively.
type Plan struct {
	SourceTable     string
	DestTable       string
	EntitySet       string
	PrimaryID       string
	DeleteBehaviour string
	// OwnerBind is the ownerid@odata.bind value every written row carries: "/teams(<id>)".
	OwnerBind string

	columns     []plannedColumn // without the key
	bySource    map[string][]int
	fields      []string
	ownerMember []byte // "ownerid@odata.bind":"/teams(<id>)"
}

type plannedColumn struct {
	Column
	maxLength int
	dateOnly  bool
	min, max  int64
	// bindProperty is the navigation property for lookups (parentcustomerid_account), bindSet the target's
	// entity set (accounts).
	bindProperty string
	bindSet      string
	// member is the row member the column writes (the destination, or "<bindProperty>@odata.bind"), and
	// memberJSON its encoded name with the colon, for AppendRow.
	member     string
	memberJSON []byte
	// plainText is a String or Memo column fed by a text source: a source string is written as it is.
	plainText bool
}

// ValueError says why a record cannot be written; the agent dead-letters the record with it.
type ValueError struct {
	Column string // destination column
	Source string // source field
	Reason string
}

func (e *ValueError) Error() string {
	return fmt.Sprintf("column %s (from %s): %s", e.Column, e.Source, e.Reason)
}

// Tables describes the connector's synced tables for Compile: source object → destination table, and
// destination table → entity set name.
type Tables struct {
	DestOf       map[string]string
	EntitySetOf  map[string]string
	OwnerTeamID  string
	DefaultTrunc bool
}

// Compile builds a Plan from the effective columns of a table config (as ResolveAll gave them), validated
// against both sides' live schemas; t.DestOf are the connector's synced tables. It fails when validation
// finds errors.
func Compile(cfg TableConfig, cols []Column, live Live, t Tables) (*Plan, Problems) {
	cols = slices.Clone(cols) // validate types them from the schemas; the caller's columns stay as given
	s := sides{Source: live.Source, Dest: live.Dest, SyncedTables: t.DestOf}
	probs := validate(cfg, cols, s)
	if probs.HasErrors() {
		return nil, probs
	}
	if s.Source == nil || s.Dest == nil {
		return nil, append(probs, Problem{Severity: Error, Code: CodeUnknownTable, Path: PathSourceTable, Message: "compiling a mapping needs both schemas"})
	}
	p := &Plan{
		SourceTable:     s.Source.Object,
		DestTable:       s.Dest.Table,
		EntitySet:       s.Dest.EntitySetName,
		PrimaryID:       s.Dest.PrimaryID,
		DeleteBehaviour: cfg.DeleteBehaviour,
		bySource:        map[string][]int{},
	}
	if p.DeleteBehaviour == "" {
		p.DeleteBehaviour = DeleteRow
	}
	if t.OwnerTeamID != "" {
		p.OwnerBind = "/teams(" + t.OwnerTeamID + ")"
		p.ownerMember = jsonrow.AppendString([]byte(`"ownerid@odata.bind":`), p.OwnerBind)
	}
	seenField := map[string]bool{}
	addField := func(name string) {
		if !seenField[strings.ToLower(name)] {
			seenField[strings.ToLower(name)] = true
			p.fields = append(p.fields, name)
		}
	}
	addField("Id")
	for _, c := range cols {
		if c.Key {
			continue
		}
		sField, _ := s.Source.Field(c.Source)
		dCol, _ := s.Dest.Column(c.Destination)
		pc := plannedColumn{Column: c, maxLength: dCol.MaxLength, dateOnly: dCol.DateOnly, min: dCol.MinValue, max: dCol.MaxValue}
		pc.Truncate = c.Truncate || t.DefaultTrunc
		if isLookupDest(dCol.AttributeType) {
			target := ""
			for _, obj := range sField.ReferenceTo {
				for so, dt := range t.DestOf {
					if strings.EqualFold(so, obj) {
						target = dt
					}
				}
			}
			pc.bindSet = t.EntitySetOf[target]
			if pc.bindSet == "" {
				pc.bindSet = target + "s"
			}
			pc.bindProperty = c.Destination
			if dCol.AttributeType == "Customer" {
				pc.bindProperty = c.Destination + "_" + target
			}
		}
		pc.member = c.Destination
		if pc.bindProperty != "" {
			pc.member = pc.bindProperty + "@odata.bind"
		}
		pc.memberJSON = append(jsonrow.AppendString(nil, pc.member), ':')
		pc.plainText = (c.DestinationType == "String" || c.DestinationType == "Memo") && c.SourceType != "date" && c.SourceType != "datetime"
		p.bySource[strings.ToLower(sField.Name)] = append(p.bySource[strings.ToLower(sField.Name)], len(p.columns))
		p.columns = append(p.columns, pc)
		addField(sField.Name)
	}
	return p, probs
}

// SourceFields returns the Salesforce fields the plan reads, Id first, for SOQL and Bulk queries.
func (p *Plan) SourceFields() []string { return append([]string(nil), p.fields...) }

// Columns returns the effective columns, key excluded.
func (p *Plan) Columns() []Column {
	out := make([]Column, len(p.columns))
	for i, c := range p.columns {
		out[i] = c.Column
	}
	return out
}

// Maps reports whether a source field feeds any column.
func (p *Plan) Maps(field string) bool { return len(p.bySource[strings.ToLower(field)]) > 0 }

// Key returns the destination primary key of a record: the GUID of its Salesforce Id.
func (p *Plan) Key(id string) (string, error) {
	g, err := sfid.GUID(id)
	if err != nil {
		return "", &ValueError{Column: p.PrimaryID, Source: "Id", Reason: err.Error()}
	}
	return g.String(), nil
}

// Row builds the full row body of a record (every mapped column, the primary key and the owner bind), for
// creates and upserts.
func (p *Plan) Row(rec map[string]any) (map[string]any, error) {
	id, err := p.Key(stringField(rec, "Id"))
	if err != nil {
		return nil, err
	}
	row := make(map[string]any, len(p.columns)+2)
	row[p.PrimaryID] = id
	if p.OwnerBind != "" {
		row["ownerid@odata.bind"] = p.OwnerBind
	}
	for i := range p.columns {
		if err := p.columns[i].put(row, rec); err != nil {
			return nil, err
		}
	}
	return row, nil
}

// AppendRow appends the row body of a record to b as the members of a JSON object, without braces (after a
// comma when b already holds members, see jsonrow.Separate): the owner bind and every mapped column,
// converted as Row converts them, but not the primary key (bulk messages and request URLs carry it apart;
// see Key). It is what the agent writes on loads, without a map per record.
func (p *Plan) AppendRow(b []byte, rec map[string]any) ([]byte, error) {
	if p.ownerMember != nil {
		b = append(jsonrow.Separate(b), p.ownerMember...)
	}
	for i := range p.columns {
		c := &p.columns[i]
		raw := lookupField(rec, c.Source)
		b = append(jsonrow.Separate(b), c.memberJSON...)
		if s, ok := raw.(string); ok && s != "" {
			if out, ok := c.appendString(b, s); ok {
				b = out
				continue
			}
		}
		var err error
		if b, err = c.appendValue(b, raw); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// Positions returns, for each of the plan's columns, the position of its source field in header (a Bulk
// results page's header), or -1 when the header lacks it: what AppendValues reads a row with.
func (p *Plan) Positions(header []string) []int {
	out := make([]int, len(p.columns))
	for i := range p.columns {
		out[i] = FieldPosition(header, p.columns[i].Source)
	}
	return out
}

// FieldPosition is the position of field in header, matched as a record's fields are (exactly, else in any
// case), or -1.
func FieldPosition(header []string, field string) int {
	for j, h := range header {
		if h == field {
			return j
		}
	}
	for j, h := range header {
		if strings.EqualFold(h, field) {
			return j
		}
	}
	return -1
}

// AppendValues is AppendRow for a record given as a Bulk results row: its values by position, pos from
// Positions of the page's header, an empty value standing for null (as a Bulk CSV record holds it). It
// writes the same bytes as AppendRow of that record, without a map and a boxed value per field.
func (p *Plan) AppendValues(b []byte, pos []int, vals []string) ([]byte, error) {
	if p.ownerMember != nil {
		b = append(jsonrow.Separate(b), p.ownerMember...)
	}
	for i := range p.columns {
		c := &p.columns[i]
		b = append(jsonrow.Separate(b), c.memberJSON...)
		var raw any
		if j := pos[i]; j >= 0 && vals[j] != "" {
			if out, ok := c.appendString(b, vals[j]); ok {
				b = out
				continue
			}
			raw = vals[j]
		}
		var err error
		if b, err = c.appendValue(b, raw); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appendString writes the two commonest cases straight into b: a lookup bound from a Salesforce Id, and
// text that fits its column. ok is false for every other value and every failure, which go through
// appendValue, as Row converts them.
func (c *plannedColumn) appendString(b []byte, s string) ([]byte, bool) {
	switch {
	case c.bindProperty != "":
		if g, err := sfid.GUID(s); err == nil {
			b = append(append(append(b, `"/`...), c.bindSet...), '(')
			return append(sfid.AppendGUID(b, g), `)"`...), true
		}
	case c.plainText && (c.maxLength <= 0 || len(s) <= c.maxLength):
		// A string never has more UTF-16 code units than UTF-8 bytes, so it fits.
		return jsonrow.AppendString(b, s), true
	}
	return b, false
}

// appendValue converts raw as Row does and writes it into b.
func (c *plannedColumn) appendValue(b []byte, raw any) ([]byte, error) {
	v, err := c.value(raw)
	if err != nil {
		return nil, err
	}
	return jsonrow.AppendValue(b, c.member, v)
}

// Patch builds the body of an update that writes only the columns fed by the changed fields (nil values
// clear the column). It returns nil when no changed field is mapped.
func (p *Plan) Patch(rec map[string]any, changed []string) (map[string]any, error) {
	var row map[string]any
	for _, f := range changed {
		for _, i := range p.bySource[strings.ToLower(f)] {
			if row == nil {
				row = map[string]any{}
			}
			if err := p.columns[i].put(row, rec); err != nil {
				return nil, err
			}
		}
	}
	return row, nil
}

// put sets the column's member of row to the record's value, converted.
func (c *plannedColumn) put(row, rec map[string]any) error {
	v, err := c.value(lookupField(rec, c.Source))
	if err != nil {
		return err
	}
	row[c.member] = v
	return nil
}

// value converts one source value into the column's JSON value: nil, a string, a bool, an int64 or a
// float64. A value the column cannot take is a *ValueError.
func (c *plannedColumn) value(v any) (any, error) {
	out, err := c.convert(v)
	if err != nil {
		return nil, &ValueError{Column: c.Destination, Source: c.Source, Reason: err.Error()}
	}
	return out, nil
}

// convert is value by destination type; its errors are the reasons.
func (c *plannedColumn) convert(v any) (any, error) {
	if c.bindProperty != "" {
		return c.bind(v)
	}
	if v == nil {
		return nil, nil
	}
	switch c.DestinationType {
	case "String", "Memo":
		return c.textValue(v)
	case "Boolean":
		b, err := asBool(v)
		if err != nil {
			return nil, err
		}
		return b, nil
	case "Integer", "BigInt":
		return c.integer(v)
	case "Decimal", "Double", "Money":
		f, err := asFloat(v)
		if err != nil {
			return nil, err
		}
		return f, nil
	case "DateTime":
		t, dateOnly, err := asTime(v, c.SourceType)
		if err != nil {
			return nil, err
		}
		if c.dateOnly || dateOnly {
			return t.UTC().Format("2006-01-02"), nil
		}
		return t.UTC().Format(time.RFC3339), nil
	case "Uniqueidentifier":
		s, _ := asString(v)
		g, err := sfid.GUID(s)
		if err != nil {
			return nil, err
		}
		return g.String(), nil
	}
	return nil, fmt.Errorf("writing %s columns is not supported", c.DestinationType)
}

// bind is a lookup's value: the bind path of the row the record Id is synced to, "/<set>(<guid>)".
func (c *plannedColumn) bind(v any) (any, error) {
	s, ok := asString(v)
	if !ok {
		return nil, fmt.Errorf("expected a record Id, got %T", v)
	}
	if s == "" {
		return nil, nil
	}
	g, err := sfid.GUID(s)
	if err != nil {
		return nil, err
	}
	return "/" + c.bindSet + "(" + g.String() + ")", nil
}

// textValue is a String or Memo column's value: text no longer than the column takes, cut when the column
// truncates. Dataverse measures text in UTF-16 code units (.NET strings), so a character outside the Basic
// Multilingual Plane, such as most emoji, takes two of a column's MaxLength.
func (c *plannedColumn) textValue(v any) (any, error) {
	s, err := c.text(v)
	if err != nil {
		return nil, err
	}
	if s == "" {
		return nil, nil
	}
	if n := utf16Len(s); c.maxLength > 0 && n > c.maxLength {
		if !c.Truncate {
			return nil, fmt.Errorf("value of %d characters (UTF-16 code units) is longer than the column's maximum of %d", n, c.maxLength)
		}
		s = truncateUTF16(s, c.maxLength)
	}
	return s, nil
}

// integer is an Integer or BigInt column's value: a whole number within the column's range.
func (c *plannedColumn) integer(v any) (any, error) {
	f, err := asFloat(v)
	if err != nil {
		return nil, err
	}
	if f != math.Trunc(f) {
		return nil, fmt.Errorf("%v is not a whole number", f)
	}
	n := int64(f)
	if c.DestinationType == "Integer" && (n > math.MaxInt32 || n < math.MinInt32) {
		return nil, fmt.Errorf("%d does not fit a 32-bit Integer column", n)
	}
	if (c.min != 0 || c.max != 0) && (n < c.min || n > c.max) {
		return nil, fmt.Errorf("%d is outside the column's range %d to %d", n, c.min, c.max)
	}
	return n, nil
}

// text renders a source value as text for String and Memo columns: dates as YYYY-MM-DD, datetimes as
// RFC 3339 UTC, the rest as given.
func (c *plannedColumn) text(v any) (string, error) {
	if c.SourceType == "date" || c.SourceType == "datetime" {
		t, dateOnly, err := asTime(v, c.SourceType)
		if err != nil {
			return "", err
		}
		if dateOnly {
			return t.UTC().Format("2006-01-02"), nil
		}
		return t.UTC().Format(time.RFC3339), nil
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case json.Number:
		return x.String(), nil
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int:
		return strconv.Itoa(x), nil
	}
	return "", fmt.Errorf("cannot render %T as text", v)
}

// utf16Len is the length of s in UTF-16 code units, as Dataverse counts it.
func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += max(1, utf16.RuneLen(r))
	}
	return n
}

// truncateUTF16 cuts s to at most n UTF-16 code units, never inside a character (a surrogate pair).
func truncateUTF16(s string, n int) string {
	used := 0
	for pos, r := range s {
		used += max(1, utf16.RuneLen(r))
		if used > n {
			return s[:pos]
		}
	}
	return s
}

func lookupField(rec map[string]any, name string) any {
	if v, ok := rec[name]; ok {
		return v
	}
	for k, v := range rec {
		if strings.EqualFold(k, name) {
			return v
		}
	}
	return nil
}

func stringField(rec map[string]any, name string) string {
	s, _ := asString(lookupField(rec, name))
	return s
}

func asString(v any) (string, bool) {
	switch x := v.(type) {
	case nil:
		return "", true
	case string:
		return x, true
	}
	return "", false
}

func asBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		b, err := strconv.ParseBool(x)
		if err != nil {
			return false, fmt.Errorf("%q is not a boolean", x)
		}
		return b, nil
	}
	return false, fmt.Errorf("expected a boolean, got %T", v)
}

func asFloat(v any) (float64, error) {
	switch x := v.(type) {
	case float64:
		return x, nil
	case float32:
		return float64(x), nil
	case int:
		return float64(x), nil
	case int32:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case json.Number:
		return x.Float64()
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", x)
		}
		return f, nil
	}
	return 0, fmt.Errorf("expected a number, got %T", v)
}

// asTime parses a date or datetime in any of the forms the Salesforce APIs use; dateOnly says the value
// is a calendar date.
func asTime(v any, sourceType string) (time.Time, bool, error) {
	dateOnly := sourceType == "date"
	switch x := v.(type) {
	case time.Time:
		return x, dateOnly, nil
	case string:
		if len(x) == len("2006-01-02") { // a date (most date values): no datetime layout can match it
			if t, err := time.Parse("2006-01-02", x); err == nil {
				return t, true, nil
			}
		}
		for _, layout := range []string{"2006-01-02T15:04:05.000-0700", "2006-01-02T15:04:05.000Z", time.RFC3339Nano, "2006-01-02T15:04:05Z0700"} {
			if t, err := time.Parse(layout, x); err == nil {
				return t, dateOnly, nil
			}
		}
		if t, err := time.Parse("2006-01-02", x); err == nil {
			return t, true, nil
		}
		return time.Time{}, false, fmt.Errorf("%q is not a date or datetime", x)
	}
	return time.Time{}, false, fmt.Errorf("expected a date or datetime, got %T", v)
}
