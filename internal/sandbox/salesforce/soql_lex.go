package salesforce

import (
	"fmt"
	"net/http"
	"strings"
)

// The SOQL lexer. Tokens keep their byte offset so errors can point at them the way Salesforce does
// (the query line, a caret, "ERROR at Row:r:Column:c", the message).

type tokKind int

const (
	tEOF tokKind = iota
	tIdent
	tString
	tNumber
	tDate
	tDateTime
	tPunct
)

type token struct {
	kind tokKind
	text string // as written (for strings: the unescaped value)
	pos  int    // byte offset in the query
}

func (t token) is(word string) bool { return t.kind == tIdent && strings.EqualFold(t.text, word) }

func (t token) isPunct(p string) bool { return t.kind == tPunct && t.text == p }

// soqlError builds a query error in Salesforce's format for a token at byte offset pos.
func soqlError(q string, pos int, code, format string, args ...any) *apiError {
	row, start := 1, 0
	for i := 0; i < pos && i < len(q); i++ {
		if q[i] == '\n' {
			row, start = row+1, i+1
		}
	}
	col := pos - start + 1
	end := strings.IndexByte(q[start:], '\n')
	line := q[start:]
	if end >= 0 {
		line = q[start : start+end]
	}
	msg := fmt.Sprintf("\n%s\n%s^\nERROR at Row:%d:Column:%d\n%s", line, strings.Repeat(" ", col-1), row, col, fmt.Sprintf(format, args...))
	return &apiError{Status: http.StatusBadRequest, Code: code, Message: msg}
}

func lexSOQL(q string) ([]token, *apiError) {
	var toks []token
	i := 0
	for i < len(q) {
		c := q[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case isIdentStart(c):
			j := i + 1
			for j < len(q) && (isIdentStart(q[j]) || isDigit(q[j]) || q[j] == '.') {
				j++
			}
			toks = append(toks, token{kind: tIdent, text: q[i:j], pos: i})
			i = j
		case c == '\'':
			var b strings.Builder
			j := i + 1
			closed := false
			for j < len(q) {
				if q[j] == '\\' && j+1 < len(q) {
					switch e := q[j+1]; e {
					case 'n':
						b.WriteByte('\n')
					case 't':
						b.WriteByte('\t')
					case 'r':
						b.WriteByte('\r')
					case 'b':
						b.WriteByte('\b')
					case 'f':
						b.WriteByte('\f')
					case '_', '%':
						b.WriteByte('\\') // kept: LIKE treats \_ and \% as literals
						b.WriteByte(e)
					case '\'', '"', '\\':
						b.WriteByte(e)
					default:
						return nil, soqlError(q, j, "MALFORMED_QUERY", "Invalid string literal '%s'. Illegal character sequence '\\%c' in string literal.", q[i:min(len(q), j+2)], e)
					}
					j += 2
					continue
				}
				if q[j] == '\'' {
					closed = true
					break
				}
				b.WriteByte(q[j])
				j++
			}
			if !closed {
				return nil, soqlError(q, i, "MALFORMED_QUERY", "line 1:%d mismatched character '<EOF>' expecting '''", len(q))
			}
			toks = append(toks, token{kind: tString, text: b.String(), pos: i})
			i = j + 1
		case isDigit(c) || ((c == '-' || c == '+') && i+1 < len(q) && isDigit(q[i+1])):
			if n := dateTimeLen(q[i:]); n > 0 {
				kind := tDateTime
				if n == 10 {
					kind = tDate
				}
				toks = append(toks, token{kind: kind, text: q[i : i+n], pos: i})
				i += n
				continue
			}
			j := i + 1
			for j < len(q) && (isDigit(q[j]) || q[j] == '.') {
				j++
			}
			toks = append(toks, token{kind: tNumber, text: q[i:j], pos: i})
			i = j
		default:
			p := punctAt(q[i:])
			if p == "" {
				return nil, soqlError(q, i, "MALFORMED_QUERY", "line 1:%d no viable alternative at character '%c'", i, c)
			}
			toks = append(toks, token{kind: tPunct, text: p, pos: i})
			i += len(p)
		}
	}
	toks = append(toks, token{kind: tEOF, pos: len(q)})
	return toks, nil
}

func punctAt(s string) string {
	for _, p := range []string{"!=", "<>", "<=", ">=", "=", "<", ">", "(", ")", ",", ":"} {
		if strings.HasPrefix(s, p) {
			return p
		}
	}
	return ""
}

func isIdentStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// dateTimeLen returns the length of a date (YYYY-MM-DD) or datetime literal
// (YYYY-MM-DDThh:mm:ss[.sss](Z|±hh:mm|±hhmm)) at the start of s, or 0.
func dateTimeLen(s string) int {
	digits := func(from, n int) bool {
		if from+n > len(s) {
			return false
		}
		for k := from; k < from+n; k++ {
			if !isDigit(s[k]) {
				return false
			}
		}
		return true
	}
	if !digits(0, 4) || len(s) < 10 || s[4] != '-' || !digits(5, 2) || s[7] != '-' || !digits(8, 2) {
		return 0
	}
	if len(s) == 10 || s[10] != 'T' {
		if len(s) > 10 && (isIdentStart(s[10]) || isDigit(s[10])) {
			return 0
		}
		return 10
	}
	if !digits(11, 2) || len(s) < 19 || s[13] != ':' || !digits(14, 2) || s[16] != ':' || !digits(17, 2) {
		return 0
	}
	n := 19
	if n < len(s) && s[n] == '.' {
		n++
		for n < len(s) && isDigit(s[n]) {
			n++
		}
	}
	switch {
	case n < len(s) && s[n] == 'Z':
		return n + 1
	case n < len(s) && (s[n] == '+' || s[n] == '-'):
		if digits(n+1, 2) && n+3 < len(s) && s[n+3] == ':' && digits(n+4, 2) {
			return n + 6
		}
		if digits(n+1, 4) {
			return n + 5
		}
	}
	return 0 // a datetime literal needs a zone
}
