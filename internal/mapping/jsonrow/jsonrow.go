// Package jsonrow appends Dataverse row bodies as JSON, faster than encoding/json: no reflection, no key
// sorting, no HTML escaping, and no intermediate map when a caller writes members one by one. The agent
// encodes each record once, as the members of a JSON object without braces ("col":value,...), and the
// Dataverse client frames those members into request bodies.
package jsonrow

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"
)

// AppendMembers appends a row as a JSON object's members (without braces), for the value types rows hold:
// nil, string, bool, integers, float64 and json.Number; other types fall back to encoding/json. Members
// come in map order.
func AppendMembers(b []byte, row map[string]any) ([]byte, error) {
	var err error
	for k, v := range row {
		if b, err = AppendMember(b, k, v); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// AppendMember appends one member, "key":value, after Separate.
func AppendMember(b []byte, key string, v any) ([]byte, error) {
	b = Separate(b)
	b = AppendString(b, key)
	b = append(b, ':')
	return AppendValue(b, key, v)
}

// Separate appends the comma that separates a member from the one before it: unless b is empty or ends with
// the object's opening brace.
func Separate(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] != '{' {
		return append(b, ',')
	}
	return b
}

// AppendValue appends v as a JSON value; key only names the member in errors.
func AppendValue(b []byte, key string, v any) ([]byte, error) {
	switch x := v.(type) {
	case nil:
		b = append(b, "null"...)
	case string:
		b = AppendString(b, x)
	case bool:
		b = strconv.AppendBool(b, x)
	case int:
		b = strconv.AppendInt(b, int64(x), 10)
	case int32:
		b = strconv.AppendInt(b, int64(x), 10)
	case int64:
		b = strconv.AppendInt(b, x, 10)
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("column %s: %v is not a JSON number", key, x)
		}
		b = strconv.AppendFloat(b, x, 'g', -1, 64)
	case json.Number:
		b = append(b, x...)
	default:
		enc, err := json.Marshal(x)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", key, err)
		}
		b = append(b, enc...)
	}
	return b, nil
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a JSON string: quotes, backslashes and control characters escaped, invalid
// UTF-8 replaced by U+FFFD, as encoding/json does (without its HTML escaping, which JSON does not need).
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
