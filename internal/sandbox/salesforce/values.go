package salesforce

import (
	"encoding/json"
	"net/http"
	"net/mail"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/schema"
)

// Wire formats of dates and datetimes (spec 2.1 and 4.5). Salesforce keeps datetimes to the second, which
// is why every value the emulator stores is truncated to the second and printed with ".000".
const (
	restDateTime = "2006-01-02T15:04:05.000-0700"
	csvDateTime  = "2006-01-02T15:04:05.000Z"
	dateLayout   = "2006-01-02"
)

// dateTimeLayouts are the datetime spellings accepted on input (JSON bodies, updated/deleted parameters).
var dateTimeLayouts = []string{
	"2006-01-02T15:04:05.000-0700",
	"2006-01-02T15:04:05-0700",
	"2006-01-02T15:04:05.999999999Z07:00",
	"2006-01-02T15:04:05Z07:00",
	"2006-01-02T15:04:05.999999999",
	"2006-01-02T15:04:05",
}

func parseDateTime(s string) (time.Time, bool) {
	for _, l := range dateTimeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC().Truncate(time.Second), true
		}
	}
	return time.Time{}, false
}

func parseDate(s string) (time.Time, bool) {
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		if dt, ok := parseDateTime(s); ok {
			return time.Date(dt.Year(), dt.Month(), dt.Day(), 0, 0, 0, 0, time.UTC), true
		}
		return time.Time{}, false
	}
	return t, true
}

// fromJSON converts a value decoded from a request body (with UseNumber) into the field's Go type,
// applying the checks Salesforce applies on insert and update: type, length, format and range. It does
// not check references (the store does, under its lock).
func fromJSON(obj *schema.Object, f schema.Field, raw any) (any, *apiError) {
	if raw == nil {
		if f.Type == "boolean" {
			return false, nil // checkboxes are never null: null clears them
		}
		return nil, nil
	}
	parseErr := func() *apiError {
		return errorf(http.StatusBadRequest, "JSON_PARSER_ERROR",
			"Cannot deserialize instance of %s from %s value %s or request may be missing a required field",
			f.Type, jsonTokenName(raw), jsonText(raw))
	}
	switch {
	case f.Type == "id" || f.Type == "reference":
		s, ok := raw.(string)
		if !ok {
			return nil, parseErr()
		}
		if s == "" {
			return nil, nil
		}
		id, valid := normalizeID(s, "")
		if !valid {
			return nil, errorf(http.StatusBadRequest, "MALFORMED_ID", "%s: id value of incorrect type: %s", f.Label, s).withFields(f.Name)
		}
		return id, nil
	case schema.IsText(f.Type):
		var s string
		switch v := raw.(type) {
		case string:
			s = v
		case json.Number:
			s = v.String()
		case bool:
			s = strconv.FormatBool(v)
		default:
			return nil, parseErr()
		}
		if s == "" {
			return nil, nil // Salesforce stores empty strings as null
		}
		if n := utf8.RuneCountInString(s); n > f.Length {
			return nil, errorf(http.StatusBadRequest, "STRING_TOO_LONG",
				"%s: data value too large: %s (max length=%d)", f.Label, abbreviate(s, 40), f.Length).withFields(f.Name)
		}
		if f.Type == "email" {
			if a, err := mail.ParseAddress(s); err != nil || a.Address != s || !strings.Contains(s[strings.LastIndexByte(s, '@'):], ".") {
				return nil, errorf(http.StatusBadRequest, "INVALID_EMAIL_ADDRESS", "%s: invalid email address: %s", f.Label, s).withFields(f.Name)
			}
		}
		return s, nil
	case f.Type == "boolean":
		switch v := raw.(type) {
		case bool:
			return v, nil
		case string:
			if b, err := strconv.ParseBool(v); err == nil {
				return b, nil
			}
		}
		return nil, parseErr()
	case f.Type == "int":
		var n int64
		var err error
		switch v := raw.(type) {
		case json.Number:
			n, err = strconv.ParseInt(v.String(), 10, 64)
			if err != nil { // 12.0 is an acceptable integer
				var fl float64
				if fl, err = v.Float64(); err == nil && fl == float64(int64(fl)) {
					n = int64(fl)
				} else if err == nil {
					err = strconv.ErrSyntax
				}
			}
		case string:
			n, err = strconv.ParseInt(v, 10, 64)
		default:
			return nil, parseErr()
		}
		if err != nil {
			return nil, parseErr()
		}
		if digits := f.Digits; digits > 0 && digits < 19 && absInt(n) >= pow10(digits) {
			return nil, errorf(http.StatusBadRequest, "NUMBER_OUTSIDE_VALID_RANGE",
				"%s: value outside of valid range on numeric field: %d", f.Label, n).withFields(f.Name)
		}
		return n, nil
	case f.Type == "double" || f.Type == "currency" || f.Type == "percent":
		var s string
		switch v := raw.(type) {
		case json.Number:
			s = v.String()
		case string:
			s = v
		default:
			return nil, parseErr()
		}
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, parseErr()
		}
		return x, nil
	case f.Type == "date":
		s, ok := raw.(string)
		if !ok {
			return nil, parseErr()
		}
		if s == "" {
			return nil, nil
		}
		t, ok := parseDate(s)
		if !ok {
			return nil, parseErr()
		}
		return t, nil
	case f.Type == "datetime":
		s, ok := raw.(string)
		if !ok {
			return nil, parseErr()
		}
		if s == "" {
			return nil, nil
		}
		t, ok := parseDateTime(s)
		if !ok {
			if d, okDate := parseDate(s); okDate && len(s) == len(dateLayout) {
				return d, nil
			}
			return nil, parseErr()
		}
		return t, nil
	}
	return nil, errorf(http.StatusBadRequest, "INVALID_FIELD_FOR_INSERT_UPDATE",
		"Unable to create/update fields: %s. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", f.Name).withFields(f.Name)
}

func jsonTokenName(v any) string {
	switch v.(type) {
	case string:
		return "VALUE_STRING"
	case json.Number:
		return "VALUE_NUMBER_INT"
	case bool:
		return "VALUE_TRUE"
	case map[string]any:
		return "START_OBJECT"
	case []any:
		return "START_ARRAY"
	}
	return "VALUE_NULL"
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func abbreviate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n]) + "..."
}

func absInt(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

func pow10(n int) int64 {
	p := int64(1)
	for ; n > 0; n-- {
		p *= 10
	}
	return p
}

// jsonValue returns the REST JSON encoding of a stored value (spec 2.1): datetimes as
// "2024-05-01T12:34:56.000+0000", dates as "2024-05-01", numbers without exponents.
func jsonValue(f schema.Field, v any) any {
	switch x := v.(type) {
	case time.Time:
		if f.Type == "date" {
			return x.Format(dateLayout)
		}
		return x.UTC().Format(restDateTime)
	case float64:
		return json.Number(strconv.FormatFloat(x, 'f', -1, 64))
	}
	return v
}

// csvValue returns the Bulk API 2.0 CSV text of a stored value (spec 4.5); null is empty.
func csvValue(f schema.Field, v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case time.Time:
		if f.Type == "date" {
			return x.Format(dateLayout)
		}
		return x.UTC().Format(csvDateTime)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// compareValues orders two non-nil values of one field: text case-insensitively (as SOQL does), Ids by
// their case-sensitive form, numbers and times naturally, false before true.
func compareValues(a, b any) int {
	switch x := a.(type) {
	case string:
		y, ok := b.(string)
		if !ok {
			return 0
		}
		return compareFold(x, y)
	case int64:
		switch y := b.(type) {
		case int64:
			return cmpOrdered(x, y)
		case float64:
			return cmpOrdered(float64(x), y)
		}
	case float64:
		switch y := b.(type) {
		case float64:
			return cmpOrdered(x, y)
		case int64:
			return cmpOrdered(x, float64(y))
		}
	case bool:
		if y, ok := b.(bool); ok {
			switch {
			case x == y:
				return 0
			case !x:
				return -1
			}
			return 1
		}
	case time.Time:
		if y, ok := b.(time.Time); ok {
			return x.Compare(y)
		}
	}
	return 0
}

func cmpOrdered[T int64 | float64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareFold compares ASCII case-insensitively, then bytewise, without allocating.
func compareFold(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		ca, cb := lowerASCII(a[i]), lowerASCII(b[i])
		if ca != cb {
			if ca < cb {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

func lowerASCII(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
