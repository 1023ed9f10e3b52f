package dataverse

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Entity payloads are flat JSON objects whose members must be seen in payload order (the first bad member is
// the one Dataverse reports). encoding/json offers order only through Decoder.Token, which costs ~150
// allocations per row; bulk loads send a million rows. This scanner reads an object's members in order with
// one allocation per string value, and hands nested objects and arrays (deep inserts, Targets items of the
// wrong shape) to encoding/json. Values come out as encoding/json's UseNumber decoding would give them:
// string, json.Number, bool, nil, map[string]any, []any.

type scanError struct {
	off int
	msg string
}

func (e *scanError) Error() string { return fmt.Sprintf("%s at position %d", e.msg, e.off) }

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// scanObject reads the object starting at b[i] (after optional whitespace), appending its members to
// fields. It returns the index just past the closing brace.
func scanObject(b []byte, i int, fields []field) ([]field, int, error) {
	i = skipSpace(b, i)
	if i >= len(b) {
		return nil, i, &scanError{i, "unexpected end of input; an object was expected"}
	}
	if b[i] != '{' {
		return nil, i, &scanError{i, fmt.Sprintf("invalid character %q; a 'StartObject' node was expected", b[i])}
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return fields, i + 1, nil
	}
	for {
		if i >= len(b) {
			return nil, i, &scanError{i, "unexpected end of input inside an object"}
		}
		if b[i] != '"' {
			return nil, i, &scanError{i, fmt.Sprintf("invalid character %q; a property name was expected", b[i])}
		}
		name, next, err := scanString(b, i)
		if err != nil {
			return nil, next, err
		}
		i = skipSpace(b, next)
		if i >= len(b) || b[i] != ':' {
			return nil, i, &scanError{i, "':' expected after a property name"}
		}
		val, next, err := scanValue(b, skipSpace(b, i+1))
		if err != nil {
			return nil, next, err
		}
		fields = append(fields, field{name: name, val: val})
		i = skipSpace(b, next)
		if i >= len(b) {
			return nil, i, &scanError{i, "unexpected end of input; ',' or '}' expected"}
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return fields, i + 1, nil
		default:
			return nil, i, &scanError{i, fmt.Sprintf("invalid character %q; ',' or '}' expected", b[i])}
		}
	}
}

// scanValue reads one value at b[i].
func scanValue(b []byte, i int) (any, int, error) {
	if i >= len(b) {
		return nil, i, &scanError{i, "unexpected end of input; a value was expected"}
	}
	switch c := b[i]; {
	case c == '"':
		return scanString(b, i)
	case c == 't':
		return scanLiteral(b, i, "true", true)
	case c == 'f':
		return scanLiteral(b, i, "false", false)
	case c == 'n':
		return scanLiteral(b, i, "null", nil)
	case c == '-' || (c >= '0' && c <= '9'):
		return scanNumber(b, i)
	case c == '{' || c == '[':
		end, err := skipComposite(b, i)
		if err != nil {
			return nil, end, err
		}
		dec := json.NewDecoder(bytes.NewReader(b[i:end]))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, i, &scanError{i, err.Error()}
		}
		return v, end, nil
	default:
		return nil, i, &scanError{i, fmt.Sprintf("invalid character %q looking for the beginning of a value", c)}
	}
}

func scanLiteral(b []byte, i int, lit string, v any) (any, int, error) {
	if !bytes.HasPrefix(b[i:], []byte(lit)) {
		return nil, i, &scanError{i, "invalid literal; true, false or null expected"}
	}
	return v, i + len(lit), nil
}

// scanNumber checks the JSON number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func scanNumber(b []byte, i int) (any, int, error) {
	start := i
	digits := func() bool {
		s := i
		for i < len(b) && b[i] >= '0' && b[i] <= '9' {
			i++
		}
		return i > s
	}
	if b[i] == '-' {
		i++
	}
	if i < len(b) && b[i] == '0' {
		i++
	} else if !digits() {
		return nil, i, &scanError{i, "invalid number"}
	}
	if i < len(b) && b[i] == '.' {
		i++
		if !digits() {
			return nil, i, &scanError{i, "invalid number: digits expected after '.'"}
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if !digits() {
			return nil, i, &scanError{i, "invalid number: exponent digits expected"}
		}
	}
	return json.Number(b[start:i]), i, nil
}

// scanString reads the string literal at b[i] (b[i] == '"').
func scanString(b []byte, i int) (string, int, error) {
	start := i + 1
	j := start
	for j < len(b) {
		c := b[j]
		switch {
		case c == '"':
			s := b[start:j]
			if !utf8.Valid(s) {
				return strings.ToValidUTF8(string(s), "\uFFFD"), j + 1, nil
			}
			return string(s), j + 1, nil
		case c == '\\':
			return unescapeString(b, start, j)
		case c < 0x20:
			return "", j, &scanError{j, "invalid control character in a string"}
		}
		j++
	}
	return "", j, &scanError{j, "unexpected end of input inside a string"}
}

// unescapeString decodes a string with escapes; esc is the index of the first backslash.
func unescapeString(b []byte, start, esc int) (string, int, error) {
	out := make([]byte, 0, esc-start+16)
	out = append(out, b[start:esc]...)
	j := esc
	for j < len(b) {
		c := b[j]
		switch {
		case c == '"':
			if !utf8.Valid(out) {
				return strings.ToValidUTF8(string(out), "\uFFFD"), j + 1, nil
			}
			return string(out), j + 1, nil
		case c < 0x20:
			return "", j, &scanError{j, "invalid control character in a string"}
		case c != '\\':
			out = append(out, c)
			j++
			continue
		}
		if j+1 >= len(b) {
			break
		}
		switch e := b[j+1]; e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(b, j+2)
			if !ok {
				return "", j, &scanError{j, "invalid \\u escape"}
			}
			j += 6
			if utf16.IsSurrogate(r) {
				if r2, ok := hex4(b, j+2); ok && j+1 < len(b) && b[j] == '\\' && b[j+1] == 'u' {
					if dec := utf16.DecodeRune(r, r2); dec != utf8.RuneError {
						out = utf8.AppendRune(out, dec)
						j += 6
						continue
					}
				}
				r = utf8.RuneError
			}
			out = utf8.AppendRune(out, r)
			continue
		default:
			return "", j, &scanError{j, fmt.Sprintf("invalid escape '\\%c'", e)}
		}
		j += 2
	}
	return "", j, &scanError{j, "unexpected end of input inside a string"}
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// skipComposite returns the index past the object or array at b[i], skipping strings correctly. The
// contents are validated later by encoding/json.
func skipComposite(b []byte, i int) (int, error) {
	depth := 0
	for j := i; j < len(b); j++ {
		switch b[j] {
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return j + 1, nil
			}
		case '"':
			_, next, err := scanString(b, j)
			if err != nil {
				return next, err
			}
			j = next - 1
		}
	}
	return len(b), &scanError{len(b), "unexpected end of input; not all object and array scopes were closed"}
}
