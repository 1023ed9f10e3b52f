package salesforce

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/schema"
)

// The SOQL subset a sync needs (spec 2.3 and 4.2): field lists with relationship-free and parent
// (Account.Name) fields, COUNT() and COUNT(field), FIELDS(ALL|STANDARD|CUSTOM), WHERE with comparisons,
// [NOT] IN, [NOT] LIKE, AND/OR/NOT and parentheses, date and datetime literals and the common date
// keywords, ORDER BY with ASC/DESC and NULLS FIRST/LAST, LIMIT and OFFSET. Anything else is rejected with
// the error a real org gives for a malformed query.

// fieldRef is a resolved field of a query: a field of the queried object, or of a parent reached through
// one lookup (Account.Name).
type fieldRef struct {
	rel      int // index into query.rels, or -1 for the queried object's own fields
	meta     *objMeta
	pos      int
	field    schema.Field
	name     string // output name: "LastName", "Account.Name"
	compound bool   // an address compound field (MailingAddress), rendered from its components
}

// relationship is one parent lookup used by a query.
type relationship struct {
	name   string // relationshipName, e.g. "Account"
	fkPos  int    // position of the lookup field (AccountId) on the queried object
	target *objMeta
}

type orderItem struct {
	ref        fieldRef
	desc       bool
	nullsFirst bool
}

// query is a parsed, resolved SOQL statement.
type query struct {
	text    string
	meta    *objMeta
	fields  []fieldRef // SELECT list (empty for COUNT())
	rels    []relationship
	count   bool // SELECT COUNT()
	aggr    *aggregate
	where   expr
	orderBy []orderItem
	limit   int // -1: none
	offset  int
	// bulkUnsupported names the first feature Bulk API 2.0 rejects (spec 4.2), empty when none.
	bulkUnsupported string
}

// aggregate is SELECT COUNT(field) [alias]: one AggregateResult row.
type aggregate struct {
	ref   fieldRef
	alias string
}

type parser struct {
	q     string
	toks  []token
	i     int
	store *store
	query *query
	now   time.Time
}

// parseSOQL parses and resolves a query against the store's current schema.
func parseSOQL(s *store, q string, now time.Time) (*query, *apiError) {
	toks, err := lexSOQL(q)
	if err != nil {
		return nil, err
	}
	p := &parser{q: q, toks: toks, store: s, query: &query{text: q, limit: -1}, now: now}
	return p.parse()
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) errAt(t token, code, format string, args ...any) *apiError {
	return soqlError(p.q, t.pos, code, format, args...)
}

func (p *parser) unexpected(t token) *apiError {
	if t.kind == tEOF {
		return p.errAt(t, "MALFORMED_QUERY", "unexpected token: <EOF>")
	}
	text := t.text
	if t.kind == tString {
		text = "'" + t.text + "'"
	}
	return p.errAt(t, "MALFORMED_QUERY", "unexpected token: %s", text)
}

func (p *parser) expectWord(w string) *apiError {
	if t := p.next(); !t.is(w) {
		return p.unexpected(t)
	}
	return nil
}

func (p *parser) expectPunct(s string) *apiError {
	if t := p.next(); !t.isPunct(s) {
		return p.unexpected(t)
	}
	return nil
}

// selectItem is a SELECT entry before the FROM object is known.
type selectItem struct {
	tok        token
	countEmpty bool   // COUNT()
	countOf    *token // COUNT(field)
	alias      string
	fieldsFn   string // FIELDS(ALL|STANDARD|CUSTOM)
}

func (p *parser) parse() (*query, *apiError) {
	q := p.query
	if err := p.expectWord("SELECT"); err != nil {
		return nil, err
	}
	var items []selectItem
	for {
		t := p.next()
		switch {
		case t.kind != tIdent:
			if t.isPunct("(") && p.peek().is("SELECT") {
				return nil, p.errAt(t, "MALFORMED_QUERY", "parent-to-child subqueries are not supported by the crmsync sandbox")
			}
			return nil, p.unexpected(t)
		case t.is("TYPEOF"):
			return nil, p.errAt(t, "MALFORMED_QUERY", "TYPEOF is not supported by the crmsync sandbox")
		case p.peek().isPunct("("):
			p.next()
			switch {
			case t.is("COUNT") && p.peek().isPunct(")"):
				p.next()
				items = append(items, selectItem{tok: t, countEmpty: true})
			case t.is("COUNT"):
				f := p.next()
				if f.kind != tIdent {
					return nil, p.unexpected(f)
				}
				if err := p.expectPunct(")"); err != nil {
					return nil, err
				}
				it := selectItem{tok: t, countOf: &f}
				if a := p.peek(); a.kind == tIdent && !a.is("FROM") {
					it.alias = p.next().text
				}
				items = append(items, it)
			case t.is("FIELDS"):
				kind := p.next()
				if !kind.is("ALL") && !kind.is("STANDARD") && !kind.is("CUSTOM") {
					return nil, p.unexpected(kind)
				}
				if err := p.expectPunct(")"); err != nil {
					return nil, err
				}
				items = append(items, selectItem{tok: t, fieldsFn: strings.ToUpper(kind.text)})
			default:
				return nil, p.errAt(t, "MALFORMED_QUERY", "aggregate function %s is not supported by the crmsync sandbox", strings.ToUpper(t.text))
			}
		default:
			items = append(items, selectItem{tok: t})
		}
		if !p.peek().isPunct(",") {
			break
		}
		p.next()
	}
	if err := p.expectWord("FROM"); err != nil {
		return nil, err
	}
	objTok := p.next()
	if objTok.kind != tIdent {
		return nil, p.unexpected(objTok)
	}
	m, ok := p.store.meta(objTok.text)
	if !ok {
		return nil, p.errAt(objTok, "INVALID_TYPE", "sObject type '%s' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.", objTok.text)
	}
	q.meta = m
	if err := p.resolveSelect(items); err != nil {
		return nil, err
	}
	if p.peek().is("USING") || p.peek().is("WITH") || p.peek().is("GROUP") || p.peek().is("HAVING") || p.peek().is("FOR") {
		t := p.peek()
		return nil, p.errAt(t, "MALFORMED_QUERY", "%s is not supported by the crmsync sandbox", strings.ToUpper(t.text))
	}
	if p.peek().is("WHERE") {
		p.next()
		e, err := p.parseCondition()
		if err != nil {
			return nil, err
		}
		q.where = e
	}
	if p.peek().is("GROUP") {
		return nil, p.errAt(p.peek(), "MALFORMED_QUERY", "GROUP BY is not supported by the crmsync sandbox")
	}
	if p.peek().is("ORDER") {
		p.next()
		if err := p.expectWord("BY"); err != nil {
			return nil, err
		}
		for {
			t := p.next()
			if t.kind != tIdent {
				return nil, p.unexpected(t)
			}
			ref, err := p.resolveField(t)
			if err != nil {
				return nil, err
			}
			item := orderItem{ref: ref}
			switch {
			case p.peek().is("ASC"):
				p.next()
			case p.peek().is("DESC"):
				p.next()
				item.desc = true
			}
			item.nullsFirst = !item.desc
			if p.peek().is("NULLS") {
				p.next()
				switch t := p.next(); {
				case t.is("FIRST"):
					item.nullsFirst = true
				case t.is("LAST"):
					item.nullsFirst = false
				default:
					return nil, p.unexpected(t)
				}
			}
			q.orderBy = append(q.orderBy, item)
			if !p.peek().isPunct(",") {
				break
			}
			p.next()
		}
	}
	if p.peek().is("LIMIT") {
		p.next()
		t := p.next()
		n, err := strconv.Atoi(t.text)
		if t.kind != tNumber || err != nil || n < 0 {
			return nil, p.unexpected(t)
		}
		q.limit = n
	}
	if p.peek().is("OFFSET") {
		p.next()
		t := p.next()
		n, err := strconv.Atoi(t.text)
		if t.kind != tNumber || err != nil || n < 0 {
			return nil, p.unexpected(t)
		}
		if n > 2000 {
			return nil, p.errAt(t, "NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000")
		}
		q.offset = n
		p.markBulk("OFFSET clause")
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.unexpected(t)
	}
	for _, it := range items {
		if it.fieldsFn == "ALL" || it.fieldsFn == "CUSTOM" {
			if q.limit < 0 || q.limit > 200 {
				return nil, p.errAt(it.tok, "MALFORMED_QUERY", "The SOQL FIELDS function must have a LIMIT of at most 200")
			}
		}
	}
	return q, nil
}

func (p *parser) markBulk(feature string) {
	if p.query.bulkUnsupported == "" {
		p.query.bulkUnsupported = feature
	}
}

func (p *parser) resolveSelect(items []selectItem) *apiError {
	q := p.query
	seen := map[string]bool{}
	for _, it := range items {
		switch {
		case it.countEmpty:
			if len(items) > 1 {
				return p.errAt(it.tok, "MALFORMED_QUERY", "COUNT() cannot be used with other fields")
			}
			q.count = true
			p.markBulk("aggregate COUNT() queries")
		case it.countOf != nil:
			if len(items) > 1 {
				return p.errAt(it.tok, "MALFORMED_QUERY", "Field must be grouped or aggregated: %s", items[1].tok.text)
			}
			ref, err := p.resolveField(*it.countOf)
			if err != nil {
				return err
			}
			alias := it.alias
			if alias == "" {
				alias = "expr0"
			}
			q.aggr = &aggregate{ref: ref, alias: alias}
			p.markBulk("aggregate functions")
		case it.fieldsFn != "":
			p.markBulk("the FIELDS() function")
			for pos, f := range q.meta.obj.Fields {
				if it.fieldsFn == "CUSTOM" && !f.Custom || it.fieldsFn == "STANDARD" && f.Custom {
					continue
				}
				ref := fieldRef{rel: -1, meta: q.meta, pos: pos, field: f, name: f.Name, compound: f.Type == "address"}
				if !seen[strings.ToLower(ref.name)] {
					seen[strings.ToLower(ref.name)] = true
					q.fields = append(q.fields, ref)
				}
			}
		default:
			ref, err := p.resolveField(it.tok)
			if err != nil {
				return err
			}
			key := strings.ToLower(ref.name)
			if seen[key] {
				return p.errAt(it.tok, "MALFORMED_QUERY", "duplicate field selected: %s", ref.name)
			}
			seen[key] = true
			if ref.compound {
				p.markBulk("compound address field " + ref.name)
			}
			q.fields = append(q.fields, ref)
		}
	}
	return nil
}

// resolveField resolves a field path token: Field, or Relationship.Field for a parent lookup.
func (p *parser) resolveField(t token) (fieldRef, *apiError) {
	q := p.query
	path := t.text
	if i := strings.IndexByte(path, '.'); i >= 0 {
		relName, rest := path[:i], path[i+1:]
		// The object's own name may prefix a field (SELECT Contact.LastName FROM Contact).
		if strings.EqualFold(relName, q.meta.obj.Name) && !strings.Contains(rest, ".") {
			return p.resolveField(token{kind: tIdent, text: rest, pos: t.pos + i + 1})
		}
		var fk schema.Field
		fkPos := -1
		for pos, f := range q.meta.obj.Fields {
			if f.Type == "reference" && strings.EqualFold(f.RelationshipName, relName) {
				fk, fkPos = f, pos
			}
		}
		var target *objMeta
		if fkPos >= 0 {
			target, _ = p.store.meta(fk.ReferenceTo[0])
		}
		if target == nil || strings.Contains(rest, ".") {
			return fieldRef{}, p.errAt(t, "INVALID_FIELD", "Didn't understand relationship '%s' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.", relName)
		}
		pos, ok := target.field(rest)
		if !ok {
			return fieldRef{}, p.errAt(t, "INVALID_FIELD", "No such column '%s' on entity '%s'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", rest, target.obj.Name)
		}
		rel := -1
		for k, r := range q.rels {
			if r.fkPos == fkPos {
				rel = k
			}
		}
		if rel < 0 {
			q.rels = append(q.rels, relationship{name: fk.RelationshipName, fkPos: fkPos, target: target})
			rel = len(q.rels) - 1
		}
		f := target.obj.Fields[pos]
		return fieldRef{rel: rel, meta: target, pos: pos, field: f, name: fk.RelationshipName + "." + f.Name, compound: f.Type == "address"}, nil
	}
	pos, ok := q.meta.field(path)
	if !ok {
		return fieldRef{}, p.errAt(t, "INVALID_FIELD", "No such column '%s' on entity '%s'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.", path, q.meta.obj.Name)
	}
	f := q.meta.obj.Fields[pos]
	return fieldRef{rel: -1, meta: q.meta, pos: pos, field: f, name: f.Name, compound: f.Type == "address"}, nil
}

// Conditions. SOQL requires parentheses when AND and OR are mixed at one level.

func (p *parser) parseCondition() (expr, *apiError) {
	first, err := p.parseTerm()
	if err != nil {
		return nil, err
	}
	terms := []expr{first}
	conj := ""
	for p.peek().is("AND") || p.peek().is("OR") {
		t := p.next()
		word := strings.ToUpper(t.text)
		if conj != "" && conj != word {
			return nil, p.unexpected(t)
		}
		conj = word
		e, err := p.parseTerm()
		if err != nil {
			return nil, err
		}
		terms = append(terms, e)
	}
	switch conj {
	case "AND":
		return andExpr(terms), nil
	case "OR":
		return orExpr(terms), nil
	}
	return first, nil
}

func (p *parser) parseTerm() (expr, *apiError) {
	t := p.peek()
	switch {
	case t.is("NOT"):
		p.next()
		e, err := p.parseTerm()
		if err != nil {
			return nil, err
		}
		return notExpr{e}, nil
	case t.isPunct("("):
		p.next()
		e, err := p.parseCondition()
		if err != nil {
			return nil, err
		}
		if err := p.expectPunct(")"); err != nil {
			return nil, err
		}
		return e, nil
	}
	return p.parsePredicate()
}

func (p *parser) parsePredicate() (expr, *apiError) {
	ft := p.next()
	if ft.kind != tIdent {
		return nil, p.unexpected(ft)
	}
	ref, err := p.resolveField(ft)
	if err != nil {
		return nil, err
	}
	if ref.compound {
		return nil, p.errAt(ft, "INVALID_FIELD", "field '%s' can not be filtered in a query call", ref.field.Name)
	}
	ignoreYear := ref.meta.obj.Name == "Contact" && ref.field.Name == "Birthdate"
	op := p.next()
	switch {
	case op.is("IN") || op.is("NOT") && p.peek().is("IN"):
		not := op.is("NOT")
		if not {
			p.next()
		}
		if err := p.expectPunct("("); err != nil {
			return nil, err
		}
		var vals []literal
		for {
			lt := p.next()
			if lt.isPunct("(") && p.peek().is("SELECT") {
				return nil, p.errAt(lt, "MALFORMED_QUERY", "semi-join subqueries are not supported by the crmsync sandbox")
			}
			v, err := p.literal(ref, lt, "IN")
			if err != nil {
				return nil, err
			}
			vals = append(vals, v)
			if !p.peek().isPunct(",") {
				break
			}
			p.next()
		}
		if err := p.expectPunct(")"); err != nil {
			return nil, err
		}
		return inExpr{ref: ref, vals: vals, not: not, ignoreYear: ignoreYear}, nil
	case op.is("LIKE"):
		lt := p.next()
		if lt.kind != tString {
			return nil, p.unexpected(lt)
		}
		if !schema.IsText(ref.field.Type) && ref.field.Type != "id" && ref.field.Type != "reference" {
			return nil, p.errAt(op, "INVALID_FIELD", "invalid operator on %s field: LIKE", soqlTypeName(ref.field.Type))
		}
		return likeExpr{ref: ref, re: compileLike(lt.text)}, nil
	case op.is("INCLUDES") || op.is("EXCLUDES"):
		return nil, p.errAt(op, "MALFORMED_QUERY", "%s is not supported by the crmsync sandbox", strings.ToUpper(op.text))
	case op.kind == tPunct && comparisonOps[op.text]:
		o := op.text
		if o == "<>" {
			o = "!="
		}
		lt := p.next()
		v, err := p.literal(ref, lt, o)
		if err != nil {
			return nil, err
		}
		if v.null && o != "=" && o != "!=" {
			return nil, p.errAt(lt, "MALFORMED_QUERY", "invalid operator on null: %s", o)
		}
		return cmpExpr{ref: ref, op: o, val: v, ignoreYear: ignoreYear}, nil
	}
	return nil, p.unexpected(op)
}

var comparisonOps = map[string]bool{"=": true, "!=": true, "<>": true, "<": true, "<=": true, ">": true, ">=": true}

// literal is a typed filter value: null, a value of the field's Go type, or (for date keywords such as
// TODAY) a half-open time range.
type literal struct {
	null       bool
	v          any
	isRange    bool
	start, end time.Time
}

func soqlTypeName(typ string) string {
	switch typ {
	case "datetime":
		return "dateTime"
	case "int":
		return "integer"
	case "double", "currency", "percent":
		return "double"
	case "boolean", "date":
		return typ
	case "id", "reference":
		return "id"
	}
	return "string"
}

// literal parses the value token t for a filter on ref, checking its type the way SOQL does.
func (p *parser) literal(ref fieldRef, t token, op string) (literal, *apiError) {
	f := ref.field
	if t.is("null") {
		return literal{null: true}, nil
	}
	typeErr := func(quoted bool) *apiError {
		how := "should not be enclosed in quotes"
		if quoted {
			how = "should be enclosed in quotes"
		}
		return p.errAt(t, "INVALID_FIELD", "value of filter criterion for field '%s' must be of type %s and %s", f.Name, soqlTypeName(f.Type), how)
	}
	switch f.Type {
	case "id", "reference":
		if t.kind != tString {
			return literal{}, typeErr(true)
		}
		id, ok := normalizeID(t.text, "")
		if !ok {
			if op == "=" || op == "!=" || op == "IN" {
				return literal{}, p.errAt(t, "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: %s", t.text)
			}
			return literal{v: t.text}, nil // range comparisons on partial Ids compare as strings
		}
		return literal{v: id}, nil
	case "boolean":
		if t.kind == tIdent && (strings.EqualFold(t.text, "true") || strings.EqualFold(t.text, "false")) {
			return literal{v: strings.EqualFold(t.text, "true")}, nil
		}
		return literal{}, typeErr(false)
	case "int", "double", "currency", "percent":
		if t.kind != tNumber {
			return literal{}, typeErr(false)
		}
		x, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return literal{}, typeErr(false)
		}
		if f.Type == "int" && x == float64(int64(x)) {
			return literal{v: int64(x)}, nil
		}
		return literal{v: x}, nil
	case "date", "datetime":
		switch t.kind {
		case tDate:
			if f.Type == "datetime" {
				return literal{}, typeErr(false)
			}
			d, _ := time.Parse(dateLayout, t.text)
			return literal{v: d}, nil
		case tDateTime:
			if f.Type == "date" {
				return literal{}, typeErr(false)
			}
			dt, ok := parseDateTime(t.text)
			if !ok {
				return literal{}, p.errAt(t, "MALFORMED_QUERY", "line 1:%d no viable alternative at character '%s'", t.pos, t.text)
			}
			return literal{v: dt}, nil
		case tIdent:
			start, end, err := p.dateKeyword(t)
			if err != nil {
				return literal{}, err
			}
			return literal{isRange: true, start: start, end: end}, nil
		}
		return literal{}, typeErr(false)
	default: // text
		if t.kind != tString {
			return literal{}, typeErr(true)
		}
		return literal{v: t.text}, nil
	}
}

// dateKeyword resolves TODAY, YESTERDAY, TOMORROW, LAST_N_DAYS:n, NEXT_N_DAYS:n and N_DAYS_AGO:n to a
// half-open range of instants (the org's time zone is GMT).
func (p *parser) dateKeyword(t token) (time.Time, time.Time, *apiError) {
	y, mo, d := p.now.UTC().Date()
	today := time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	word := strings.ToUpper(t.text)
	switch word {
	case "TODAY":
		return today, today.Add(day), nil
	case "YESTERDAY":
		return today.Add(-day), today, nil
	case "TOMORROW":
		return today.Add(day), today.Add(2 * day), nil
	case "LAST_N_DAYS", "NEXT_N_DAYS", "N_DAYS_AGO":
		if err := p.expectPunct(":"); err != nil {
			return time.Time{}, time.Time{}, err
		}
		nt := p.next()
		n, err := strconv.Atoi(nt.text)
		if nt.kind != tNumber || err != nil || n < 0 {
			return time.Time{}, time.Time{}, p.unexpected(nt)
		}
		nd := time.Duration(n) * day
		switch word {
		case "LAST_N_DAYS":
			return today.Add(-nd), today.Add(day), nil
		case "NEXT_N_DAYS":
			return today.Add(day), today.Add(day + nd), nil
		default:
			return today.Add(-nd), today.Add(-nd + day), nil
		}
	}
	return time.Time{}, time.Time{}, p.errAt(t, "MALFORMED_QUERY", "unexpected token: %s", t.text)
}

func (q *query) String() string { return fmt.Sprintf("SOQL(%s)", q.text) }
