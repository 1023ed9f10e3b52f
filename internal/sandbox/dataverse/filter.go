package dataverse

import (
	"regexp"
	"strconv"
	"strings"
)

// The $filter subset of spec 5.1: eq ne gt ge lt le, and or not, parentheses, contains/startswith/endswith,
// string literals in single quotes (quotes doubled inside), unquoted numbers, GUIDs, datetimes and dates,
// true/false/null, and enum literals such as Microsoft.Dynamics.CRM.OwnershipTypes'UserOwned'. Property paths
// may cross one single-valued navigation property (sdkmessageid/name). String comparisons ignore case, as
// Dataverse's SQL collation does.

// accessor reads one operand from a record (a *rowView for tables, a metadata object for EntityDefinitions).
type accessor func(rec any) value

// filterEnv resolves property paths when a filter is compiled.
type filterEnv interface {
	// resolve returns an accessor and the Edm type name of the property (empty when it is only known at
	// evaluation time).
	resolve(path string) (accessor, string, *apiError)
	typeName() string
}

type fnode struct {
	op          string // and or not eq ne gt ge lt le contains startswith endswith
	left, right *fnode
	get         accessor // property operand
	edm         string
	lit         value // literal operand
	isLit       bool
}

type ftoken struct {
	kind string // word, str, enum, ( ) ,
	text string
}

var (
	reGUID     = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	reDate     = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
	reDateTime = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T`)
	reNumber   = regexp.MustCompile(`^-?\d+(\.\d+)?([eE][+-]?\d+)?[mMdDfFlL]?$`)
)

func tokenizeFilter(s string) ([]ftoken, *apiError) {
	var toks []ftoken
	for i := 0; i < len(s); {
		c := s[i]
		switch c {
		case ' ', '\t':
			i++
		case '(', ')', ',':
			toks = append(toks, ftoken{kind: string(c)})
			i++
		case '\'':
			lit, n, err := readQuoted(s[i:])
			if err != nil {
				return nil, err
			}
			toks = append(toks, ftoken{kind: "str", text: lit})
			i += n
		default:
			j := i
			for j < len(s) && strings.IndexByte(" \t(),'", s[j]) < 0 {
				j++
			}
			if j == i {
				return nil, errBadRequest("Syntax error at position %d in '%s'.", i, s)
			}
			word := s[i:j]
			if j < len(s) && s[j] == '\'' { // enum literal: Namespace.Type'Value'
				lit, n, err := readQuoted(s[j:])
				if err != nil {
					return nil, err
				}
				toks = append(toks, ftoken{kind: "enum", text: lit})
				i = j + n
				continue
			}
			toks = append(toks, ftoken{kind: "word", text: word})
			i = j
		}
	}
	return toks, nil
}

func readQuoted(s string) (string, int, *apiError) {
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		if s[i] == '\'' {
			if i+1 < len(s) && s[i+1] == '\'' {
				b.WriteByte('\'')
				i++
				continue
			}
			return b.String(), i + 1, nil
		}
		b.WriteByte(s[i])
	}
	return "", 0, errBadRequest("Unterminated string literal in '%s'.", s)
}

type filterParser struct {
	toks []ftoken
	pos  int
	env  filterEnv
	src  string
}

func compileFilter(src string, env filterEnv) (*fnode, *apiError) {
	toks, err := tokenizeFilter(src)
	if err != nil {
		return nil, err
	}
	p := &filterParser{toks: toks, env: env, src: src}
	n, err := p.or()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, errBadRequest("Syntax error: unexpected '%s' at token %d in '$filter=%s'.", p.toks[p.pos].text+p.toks[p.pos].kind, p.pos, src)
	}
	return n, nil
}

func (p *filterParser) peekWord(w string) bool {
	return p.pos < len(p.toks) && p.toks[p.pos].kind == "word" && p.toks[p.pos].text == w
}

func (p *filterParser) or() (*fnode, *apiError) {
	l, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.peekWord("or") {
		p.pos++
		r, err := p.and()
		if err != nil {
			return nil, err
		}
		l = &fnode{op: "or", left: l, right: r}
	}
	return l, nil
}

func (p *filterParser) and() (*fnode, *apiError) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.peekWord("and") {
		p.pos++
		r, err := p.unary()
		if err != nil {
			return nil, err
		}
		l = &fnode{op: "and", left: l, right: r}
	}
	return l, nil
}

func (p *filterParser) unary() (*fnode, *apiError) {
	if p.peekWord("not") {
		p.pos++
		n, err := p.unary()
		if err != nil {
			return nil, err
		}
		return &fnode{op: "not", left: n}, nil
	}
	return p.primary()
}

func (p *filterParser) expect(kind string) *apiError {
	if p.pos >= len(p.toks) || p.toks[p.pos].kind != kind {
		return errBadRequest("Syntax error: '%s' expected in '$filter=%s'.", kind, p.src)
	}
	p.pos++
	return nil
}

func (p *filterParser) primary() (*fnode, *apiError) {
	if p.pos >= len(p.toks) {
		return nil, errBadRequest("Syntax error: expression expected at the end of '$filter=%s'.", p.src)
	}
	t := p.toks[p.pos]
	if t.kind == "(" {
		p.pos++
		n, err := p.or()
		if err != nil {
			return nil, err
		}
		return n, p.expect(")")
	}
	if t.kind == "word" && p.pos+1 < len(p.toks) && p.toks[p.pos+1].kind == "(" {
		switch t.text {
		case "contains", "startswith", "endswith":
			p.pos += 2
			prop, err := p.operand()
			if err != nil {
				return nil, err
			}
			if err := p.expect(","); err != nil {
				return nil, err
			}
			arg, err := p.operand()
			if err != nil {
				return nil, err
			}
			if err := p.expect(")"); err != nil {
				return nil, err
			}
			if prop.isLit || !arg.isLit || arg.lit.kind != vString {
				return nil, errBadRequest("%s needs a property and a string literal in '$filter=%s'.", t.text, p.src)
			}
			if prop.edm != "" && prop.edm != "Edm.String" {
				return nil, errBadRequest("No function signature for the function with name '%s' matches the specified arguments. The function signatures considered are: %s(Edm.String Nullable=true, Edm.String Nullable=true).", t.text, t.text)
			}
			return &fnode{op: t.text, left: prop, right: arg}, nil
		}
		return nil, errBadRequest("An unknown function with name '%s' was found. This may also be a function import or a key lookup on a navigation property, which is not allowed.", t.text)
	}
	l, err := p.operand()
	if err != nil {
		return nil, err
	}
	if p.pos >= len(p.toks) || p.toks[p.pos].kind != "word" {
		return nil, errBadRequest("Syntax error: comparison operator expected in '$filter=%s'.", p.src)
	}
	op := p.toks[p.pos].text
	switch op {
	case "eq", "ne", "gt", "ge", "lt", "le":
	default:
		return nil, errBadRequest("Syntax error: '%s' is not a supported operator in '$filter=%s'.", op, p.src)
	}
	p.pos++
	r, err := p.operand()
	if err != nil {
		return nil, err
	}
	if l.isLit && !r.isLit {
		l, r = r, l
		op = map[string]string{"gt": "lt", "lt": "gt", "ge": "le", "le": "ge", "eq": "eq", "ne": "ne"}[op]
	}
	if !l.isLit && r.isLit && l.edm != "" {
		if err := checkOperandTypes(l.edm, r.lit, op); err != nil {
			return nil, err
		}
	}
	return &fnode{op: op, left: l, right: r}, nil
}

func (p *filterParser) operand() (*fnode, *apiError) {
	if p.pos >= len(p.toks) {
		return nil, errBadRequest("Syntax error: operand expected at the end of '$filter=%s'.", p.src)
	}
	t := p.toks[p.pos]
	p.pos++
	switch t.kind {
	case "str", "enum":
		return &fnode{isLit: true, lit: value{kind: vString, s: t.text}}, nil
	case "word":
		w := t.text
		switch {
		case w == "null":
			return &fnode{isLit: true}, nil
		case w == "true":
			return &fnode{isLit: true, lit: value{kind: vBool, i: 1}}, nil
		case w == "false":
			return &fnode{isLit: true, lit: value{kind: vBool}}, nil
		case reGUID.MatchString(w):
			g, _ := parseGUID(w)
			return &fnode{isLit: true, lit: value{kind: vGUID, g: g}}, nil
		case reDate.MatchString(w):
			secs, ok := parseDateTime(w, true)
			if !ok {
				return nil, errBadRequest("Unrecognized date literal '%s'.", w)
			}
			return &fnode{isLit: true, lit: value{kind: vDate, i: secs}}, nil
		case reDateTime.MatchString(w):
			secs, ok := parseDateTime(w, false)
			if !ok {
				return nil, errBadRequest("Unrecognized 'Edm.DateTimeOffset' literal '%s'.", w)
			}
			return &fnode{isLit: true, lit: value{kind: vTime, i: secs}}, nil
		case reNumber.MatchString(w):
			num := strings.TrimRight(w, "mMdDfFlL")
			if i, err := strconv.ParseInt(num, 10, 64); err == nil {
				return &fnode{isLit: true, lit: value{kind: vInt, i: i}}, nil
			}
			f, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return nil, errBadRequest("Unrecognized number literal '%s'.", w)
			}
			return &fnode{isLit: true, lit: value{kind: vFloat, f: f}}, nil
		}
		get, edm, err := p.env.resolve(w)
		if err != nil {
			return nil, err
		}
		return &fnode{get: get, edm: edm}, nil
	}
	return nil, errBadRequest("Syntax error: unexpected '%s' in '$filter=%s'.", t.kind, p.src)
}

var opNames = map[string]string{"eq": "Equal", "ne": "NotEqual", "gt": "GreaterThan", "ge": "GreaterThanOrEqual", "lt": "LessThan", "le": "LessThanOrEqual"}

// checkOperandTypes rejects comparisons ODataLib rejects, with its message.
func checkOperandTypes(edm string, lit value, op string) *apiError {
	if lit.kind == vNull {
		return nil
	}
	ok := true
	litType := "Edm.String"
	switch lit.kind {
	case vString:
		ok = edm == "Edm.String"
	case vInt:
		litType = "Edm.Int32"
		ok = edm == "Edm.Int32" || edm == "Edm.Int64" || edm == "Edm.Double" || edm == "Edm.Decimal"
	case vFloat:
		litType = "Edm.Double"
		ok = edm == "Edm.Double" || edm == "Edm.Decimal" || edm == "Edm.Int32" || edm == "Edm.Int64"
	case vBool:
		litType = "Edm.Boolean"
		ok = edm == "Edm.Boolean"
	case vGUID:
		litType = "Edm.Guid"
		ok = edm == "Edm.Guid"
	case vTime:
		litType = "Edm.DateTimeOffset"
		ok = edm == "Edm.DateTimeOffset" || edm == "Edm.Date"
	case vDate:
		litType = "Edm.Date"
		ok = edm == "Edm.DateTimeOffset" || edm == "Edm.Date"
	}
	if ok {
		return nil
	}
	return errBadRequest("A binary operator with incompatible types was detected. Found operand types '%s' and '%s' for operator kind '%s'.", edm, litType, opNames[op])
}

// eval reports whether rec matches the filter.
func (n *fnode) eval(rec any) bool {
	switch n.op {
	case "and":
		return n.left.eval(rec) && n.right.eval(rec)
	case "or":
		return n.left.eval(rec) || n.right.eval(rec)
	case "not":
		return !n.left.eval(rec)
	case "contains", "startswith", "endswith":
		v := n.left.get(rec)
		if v.kind != vString {
			return false
		}
		s, sub := strings.ToLower(v.s), strings.ToLower(n.right.lit.s)
		switch n.op {
		case "contains":
			return strings.Contains(s, sub)
		case "startswith":
			return strings.HasPrefix(s, sub)
		}
		return strings.HasSuffix(s, sub)
	}
	l := n.left.operandValue(rec)
	r := n.right.operandValue(rec)
	if l.kind == vNull || r.kind == vNull {
		both := l.kind == vNull && r.kind == vNull
		switch n.op {
		case "eq":
			return both
		case "ne":
			return !both
		}
		return false
	}
	c, ok := compareValues(l, r)
	if !ok {
		return n.op == "ne"
	}
	switch n.op {
	case "eq":
		return c == 0
	case "ne":
		return c != 0
	case "gt":
		return c > 0
	case "ge":
		return c >= 0
	case "lt":
		return c < 0
	}
	return c <= 0
}

func (n *fnode) operandValue(rec any) value {
	if n.isLit {
		return n.lit
	}
	return n.get(rec)
}

// compareValues orders two non-null values of compatible kinds; ok is false when they cannot be compared.
func compareValues(a, b value) (int, bool) {
	num := func(v value) (float64, bool) {
		switch v.kind {
		case vInt:
			return float64(v.i), true
		case vFloat:
			return v.f, true
		}
		return 0, false
	}
	switch {
	case a.kind == vString && b.kind == vString:
		return compareFold(a.s, b.s), true
	case (a.kind == vTime || a.kind == vDate) && (b.kind == vTime || b.kind == vDate):
		return cmp64(a.i, b.i), true
	case a.kind == vGUID && b.kind == vGUID:
		return compareBytes(a.g, b.g), true
	case a.kind == vBool && b.kind == vBool:
		return cmp64(a.i, b.i), true
	case a.kind == vInt && b.kind == vInt:
		return cmp64(a.i, b.i), true
	}
	x, ok1 := num(a)
	y, ok2 := num(b)
	if ok1 && ok2 {
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

func cmp64(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compareBytes(a, b [16]byte) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

// compareFold compares case-insensitively without allocating (ASCII folding; other runes by code point).
func compareFold(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			if x < y {
				return -1
			}
			return 1
		}
	}
	return cmp64(int64(len(a)), int64(len(b)))
}

// tableEnv resolves filter and orderby paths against a table's Web API properties.
type tableEnv struct {
	e *Emulator
	t *table
}

func (env tableEnv) typeName() string { return env.t.Logical }

func (env tableEnv) resolve(path string) (accessor, string, *apiError) {
	t := env.t
	if nav, prop, ok := strings.Cut(path, "/"); ok {
		n := t.navs[nav]
		if n == nil || n.target == "" {
			return nil, "", errNoProperty(nav, t.Logical)
		}
		target := env.e.table(n.target)
		c := target.byProp[prop]
		if c == nil {
			return nil, "", errNoProperty(prop, target.Logical)
		}
		lookup := n.col
		e := env.e
		return func(rec any) value {
			v := rec.(*rowView)
			l := v.get(lookup)
			if l.isNull() || e.tables[l.tbl] != target {
				return value{}
			}
			slot, ok := target.lookup(l.g)
			if !ok {
				return value{}
			}
			var tv rowView
			tv.e = e
			tv.load(target, slot)
			return tv.get(c)
		}, edmType(c), nil
	}
	c := t.byProp[path]
	if c == nil {
		return nil, "", errNoProperty(path, t.Logical)
	}
	return func(rec any) value { return rec.(*rowView).get(c) }, edmType(c), nil
}
