package dataverse

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/jsonrow"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
)

func guidString(g [16]byte) string { return uuid.UUID(g).String() }

func appendGUID(b []byte, g [16]byte) []byte { return sfid.AppendGUID(b, g) }

// parseGUID accepts the 36-character form, optionally in braces (as Dataverse does).
func parseGUID(s string) ([16]byte, bool) {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	if len(s) != 36 {
		return [16]byte{}, false
	}
	u, err := uuid.Parse(s)
	if err != nil {
		return [16]byte{}, false
	}
	return u, true
}

// dotnetLen is the length .NET reports for s (UTF-16 code units): MaxLength counts those.
func dotnetLen(s string) int {
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n += utf16.RuneLen(r)
		if utf16.RuneLen(r) < 0 {
			n += 2 // invalid runes are replaced; count them as one unit
		}
	}
	return n
}

const (
	timeLayout = "2006-01-02T15:04:05Z"
	dateLayout = "2006-01-02"
)

// minDate is the earliest DateTime Dataverse stores (SQL datetime).
var minDate = time.Date(1753, 1, 1, 0, 0, 0, 0, time.UTC)

func parseDateTime(s string, dateOnly bool) (int64, bool) {
	if len(s) == len(dateLayout) {
		t, err := time.Parse(dateLayout, s)
		if err != nil {
			return 0, false
		}
		return t.Unix(), true
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, false
	}
	t = t.UTC()
	if dateOnly {
		t = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	}
	return t.Unix(), true
}

// settings are the switches for facts the spec marks unverified (kept configurable).
type settings struct {
	enforceRequired  bool // ApplicationRequired columns must be present on create
	rejectReadOnly   bool // writing a column not valid for the operation fails (otherwise it is ignored)
	validateEmail    bool
	requireOwnerRead bool // a bound owner must hold read on the table
}

// convertIn converts a JSON payload value for column c of table t, validating it as Dataverse does:
// JSON type (0x80048d19), MaxLength counted in UTF-16 units with the limit itself accepted (0x80044331),
// numeric ranges, option values, date range and e-mail format.
func convertIn(t *table, c *column, raw any, st *settings) (value, *apiError) {
	if raw == nil {
		return value{}, nil
	}
	typeErr := func() *apiError {
		lit := ""
		switch x := raw.(type) {
		case string:
			lit = x
		case json.Number:
			lit = x.String()
		case bool:
			lit = strconv.FormatBool(x)
		default:
			return errPayload(t.Set, "Cannot convert a value to target type '"+edmType(c)+"' because of conflict between input format string/number and parameter 'IEEE754Compatible' false/true.")
		}
		return errPayload(t.Set, "Cannot convert the literal '"+lit+"' to the expected type '"+edmType(c)+"'.")
	}
	switch c.Type {
	case atString, atMemo:
		s, ok := raw.(string)
		if !ok {
			return value{}, typeErr()
		}
		if c.MaxLength > 0 && dotnetLen(s) > c.MaxLength {
			return value{}, errMaxLength(c.Logical, t.Logical, c.MaxLength)
		}
		if c.email && st.validateEmail && s != "" && !plausibleEmail(s) {
			return value{}, newError(400, codeValidation, "A validation error occurred.  The value '%s' of '%s' on record of type '%s' is not a valid e-mail address.", s, c.Logical, t.Logical)
		}
		return value{kind: vString, s: s}, nil
	case atVirtual:
		s, ok := raw.(string)
		if !ok {
			return value{}, typeErr()
		}
		if _, err := base64.StdEncoding.DecodeString(s); err != nil {
			return value{}, typeErr()
		}
		return value{kind: vString, s: s}, nil
	case atBoolean:
		b, ok := raw.(bool)
		if !ok {
			return value{}, typeErr()
		}
		if b {
			return value{kind: vBool, i: 1}, nil
		}
		return value{kind: vBool}, nil
	case atInteger, atPicklist, atState, atStatus, atBigInt:
		n, ok := raw.(json.Number)
		if !ok {
			return value{}, typeErr()
		}
		i, err := strconv.ParseInt(n.String(), 10, 64)
		if err != nil {
			f, ferr := n.Float64()
			if ferr != nil || f != math.Trunc(f) || math.Abs(f) > 1<<62 {
				return value{}, typeErr()
			}
			i = int64(f)
		}
		if c.Type != atBigInt && (i < math.MinInt32 || i > math.MaxInt32) {
			return value{}, typeErr()
		}
		if c.HasRange && (float64(i) < c.MinValue || float64(i) > c.MaxValue) {
			return value{}, errOutOfRange(c.Logical, t.Logical, i)
		}
		if len(c.Options) > 0 {
			found := false
			for _, o := range c.Options {
				found = found || o.Value == i
			}
			if !found {
				return value{}, errOutOfRange(c.Logical, t.Logical, i)
			}
		}
		return value{kind: vInt, i: i}, nil
	case atDouble, atDecimal, atMoney:
		n, ok := raw.(json.Number)
		if !ok {
			return value{}, typeErr()
		}
		f, err := n.Float64()
		if err != nil {
			return value{}, typeErr()
		}
		if c.HasRange && (f < c.MinValue || f > c.MaxValue) {
			return value{}, errOutOfRange(c.Logical, t.Logical, n.String())
		}
		return value{kind: vFloat, f: f}, nil
	case atDateTime:
		s, ok := raw.(string)
		if !ok {
			return value{}, typeErr()
		}
		secs, ok := parseDateTime(s, c.DateOnly)
		if !ok {
			return value{}, typeErr()
		}
		if secs < minDate.Unix() {
			return value{}, newError(400, codeValidation, "The date-time format for %s is invalid, or value is outside the supported range.", s)
		}
		if c.DateOnly {
			return value{kind: vDate, i: secs}, nil
		}
		return value{kind: vTime, i: secs}, nil
	case atUniqueidentifier:
		s, ok := raw.(string)
		if !ok {
			return value{}, typeErr()
		}
		g, ok := parseGUID(s)
		if !ok {
			return value{}, typeErr()
		}
		return value{kind: vGUID, g: g}, nil
	}
	return value{}, typeErr()
}

func plausibleEmail(s string) bool {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 || strings.ContainsAny(s, " \t\r\n,;<>") {
		return false
	}
	domain := s[at+1:]
	return strings.Contains(domain, ".") && !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
}

// appendValue renders v as the Web API does (spec 3.3): strings, numbers, booleans, UTC datetimes,
// "YYYY-MM-DD" dates, lowercase GUIDs, null.
func appendValue(b []byte, v value) []byte {
	switch v.kind {
	case vString:
		return jsonrow.AppendString(b, v.s)
	case vInt:
		return strconv.AppendInt(b, v.i, 10)
	case vBool:
		if v.i != 0 {
			return append(b, "true"...)
		}
		return append(b, "false"...)
	case vFloat:
		return appendFloat(b, v.f)
	case vTime:
		b = append(b, '"')
		b = time.Unix(v.i, 0).UTC().AppendFormat(b, timeLayout)
		return append(b, '"')
	case vDate:
		b = append(b, '"')
		b = time.Unix(v.i, 0).UTC().AppendFormat(b, dateLayout)
		return append(b, '"')
	case vGUID:
		b = append(b, '"')
		b = appendGUID(b, v.g)
		return append(b, '"')
	}
	return append(b, "null"...)
}

func appendFloat(b []byte, f float64) []byte {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.AppendFloat(b, f, 'f', -1, 64)
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64)
}

// plain converts v to a Go value for the admin API (strings, numbers, booleans, RFC 3339 times, GUID strings).
func plain(v value) any {
	switch v.kind {
	case vString:
		return v.s
	case vInt:
		return v.i
	case vBool:
		return v.i != 0
	case vFloat:
		return v.f
	case vTime:
		return time.Unix(v.i, 0).UTC().Format(timeLayout)
	case vDate:
		return time.Unix(v.i, 0).UTC().Format(dateLayout)
	case vGUID:
		return guidString(v.g)
	}
	return nil
}

// rowView is a decoded row: the fixed fields plus one value per blob slot.
type rowView struct {
	e    *Emulator
	t    *table
	r    row
	vals []value
}

// load decodes the row in slot into v, reusing v's value slice.
func (v *rowView) load(t *table, slot uint32) {
	v.t = t
	v.r = t.rows[slot]
	if cap(v.vals) < t.nslots {
		v.vals = make([]value, t.nslots)
	}
	v.vals = v.vals[:t.nslots]
	t.decode(t.arena.get(v.r.ref), v.vals)
}

// get returns column c of the row.
func (v *rowView) get(c *column) value {
	switch c.src {
	case srcBlob:
		return v.vals[c.slot]
	case srcID:
		return guidRef(v.t, v.r.id)
	case srcCreatedOn:
		return value{kind: vTime, i: v.r.created}
	case srcModifiedOn:
		return value{kind: vTime, i: v.r.modified}
	case srcCreatedBy:
		return v.e.userValue(v.r.createdBy)
	case srcModifiedBy:
		return v.e.userValue(v.r.modifiedBy)
	case srcVersion:
		return value{kind: vInt, i: v.r.version}
	case srcDerived:
		return c.derive(v)
	}
	return value{}
}

func lookupTypeOf(v *rowView, lookup *column) value {
	l := v.get(lookup)
	if l.isNull() {
		return value{}
	}
	return value{kind: vString, s: v.e.tables[l.tbl].Logical}
}

// lookupName is the primary name of the row a lookup points to (the FormattedValue of the lookup).
func (v *rowView) lookupName(lookup *column) value {
	l := v.get(lookup)
	if l.isNull() {
		return value{}
	}
	return v.e.primaryName(v.e.tables[l.tbl], l.g)
}

func (v *rowView) ownerIf(owner *column, target string) value {
	l := v.get(owner)
	if l.isNull() || v.e.tables[l.tbl].Logical != target {
		return value{}
	}
	return l
}

func (v *rowView) owningBusinessUnit(owner *column) value {
	if v.get(owner).isNull() {
		return value{}
	}
	return guidRef(v.e.table("businessunit"), v.e.rootBU)
}

func fullName(v *rowView, first, last *column) value {
	f, l := v.get(first), v.get(last)
	switch {
	case f.isNull() && l.isNull():
		return value{}
	case f.isNull():
		return value{kind: vString, s: l.s}
	case l.isNull():
		return value{kind: vString, s: f.s}
	}
	return value{kind: vString, s: f.s + " " + l.s}
}

// formatted renders the OData.Community.Display.V1.FormattedValue annotation of a value.
func (e *Emulator) formatted(c *column, v value) (string, bool) {
	switch v.kind {
	case vNull:
		return "", false
	case vInt:
		for _, o := range c.Options {
			if o.Value == v.i {
				return o.Label, true
			}
		}
		if c.Type == atInteger || c.Type == atBigInt {
			return groupThousands(strconv.FormatInt(v.i, 10)), true
		}
		return strconv.FormatInt(v.i, 10), true
	case vBool:
		if v.i != 0 {
			return "Yes", true
		}
		return "No", true
	case vFloat:
		if c.Type == atMoney {
			return "$" + groupThousands(strconv.FormatFloat(v.f, 'f', 2, 64)), true
		}
		return strconv.FormatFloat(v.f, 'f', -1, 64), true
	case vTime:
		return time.Unix(v.i, 0).UTC().Format("1/2/2006 3:04 PM"), true
	case vDate:
		return time.Unix(v.i, 0).UTC().Format("1/2/2006"), true
	case vGUID:
		if c.Type == atLookup || c.Type == atCustomer || c.Type == atOwner {
			n := e.primaryName(e.tables[v.tbl], v.g)
			return n.s, !n.isNull()
		}
	}
	return "", false
}

func groupThousands(s string) string {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	frac := ""
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s, frac = s[:i], s[i:]
	}
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out) + frac
	}
	return string(out) + frac
}
