package salesforce

import (
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"
)

// expr is a WHERE condition evaluated against one record.
type expr interface {
	eval(c *evalCtx, r *record) bool
}

type evalCtx struct {
	s *store // read-locked by the caller
	q *query
}

// value returns the value of ref for a row of the queried object (following the parent lookup if any).
func (c *evalCtx) value(ref fieldRef, r *record) any {
	if ref.rel < 0 {
		return r.get(ref.pos)
	}
	p := c.parent(ref.rel, r)
	if p == nil {
		return nil
	}
	return p.get(ref.pos)
}

func (c *evalCtx) parent(rel int, r *record) *record {
	rl := c.q.rels[rel]
	id, _ := r.get(rl.fkPos).(string)
	if id == "" {
		return nil
	}
	return c.s.lookupLocked(rl.target.obj.Name, id)
}

type andExpr []expr

func (a andExpr) eval(c *evalCtx, r *record) bool {
	for _, e := range a {
		if !e.eval(c, r) {
			return false
		}
	}
	return true
}

type orExpr []expr

func (o orExpr) eval(c *evalCtx, r *record) bool {
	for _, e := range o {
		if e.eval(c, r) {
			return true
		}
	}
	return false
}

type notExpr struct{ e expr }

func (n notExpr) eval(c *evalCtx, r *record) bool { return !n.e.eval(c, r) }

type cmpExpr struct {
	ref        fieldRef
	op         string // = != < <= > >=
	val        literal
	ignoreYear bool // Contact.Birthdate filters ignore the year (spec 8.1)
}

func (e cmpExpr) eval(c *evalCtx, r *record) bool {
	v := c.value(e.ref, r)
	if e.val.null {
		return (v == nil) == (e.op == "=")
	}
	if v == nil {
		return e.op == "!="
	}
	if e.val.isRange {
		t, _ := v.(time.Time)
		start, end := e.val.start, e.val.end
		if e.ignoreYear {
			t, start, end = sameYear(t), sameYear(start), sameYear(end)
		}
		switch e.op {
		case "=":
			return !t.Before(start) && t.Before(end)
		case "!=":
			return t.Before(start) || !t.Before(end)
		case "<":
			return t.Before(start)
		case "<=":
			return t.Before(end)
		case ">":
			return !t.Before(end)
		default:
			return !t.Before(start)
		}
	}
	lit := e.val.v
	if e.ignoreYear {
		if t, ok := v.(time.Time); ok {
			v, lit = sameYear(t), sameYear(lit.(time.Time))
		}
	}
	return opHolds(e.op, compareField(e.ref, v, lit))
}

func opHolds(op string, cmp int) bool {
	switch op {
	case "=":
		return cmp == 0
	case "!=":
		return cmp != 0
	case "<":
		return cmp < 0
	case "<=":
		return cmp <= 0
	case ">":
		return cmp > 0
	}
	return cmp >= 0
}

// sameYear moves a date to a fixed leap year, for filters that ignore the year.
func sameYear(t time.Time) time.Time {
	return time.Date(2000, t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, time.UTC)
}

// compareField orders two non-nil values of a field: Ids case-sensitively, the rest per compareValues.
func compareField(ref fieldRef, a, b any) int {
	if ref.field.Type == "id" || ref.field.Type == "reference" {
		x, _ := a.(string)
		y, _ := b.(string)
		return strings.Compare(x, y)
	}
	return compareValues(a, b)
}

type inExpr struct {
	ref        fieldRef
	vals       []literal
	not        bool
	ignoreYear bool
}

func (e inExpr) eval(c *evalCtx, r *record) bool {
	v := c.value(e.ref, r)
	found := false
	for _, l := range e.vals {
		if l.null {
			if v == nil {
				found = true
				break
			}
			continue
		}
		if v == nil {
			continue
		}
		if (cmpExpr{ref: e.ref, op: "=", val: l, ignoreYear: e.ignoreYear}).eval(c, r) {
			found = true
			break
		}
	}
	return found != e.not
}

type likeExpr struct {
	ref fieldRef
	re  *regexp.Regexp
}

func (e likeExpr) eval(c *evalCtx, r *record) bool {
	s, ok := c.value(e.ref, r).(string)
	return ok && e.re.MatchString(s)
}

// compileLike turns a LIKE pattern (% any run, _ one character, \% and \_ literal) into a
// case-insensitive anchored regular expression.
func compileLike(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("(?is)^")
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; {
		case c == '\\' && i+1 < len(pattern) && (pattern[i+1] == '%' || pattern[i+1] == '_'):
			b.WriteString(regexp.QuoteMeta(pattern[i+1 : i+2]))
			i++
		case c == '%':
			b.WriteString(".*")
		case c == '_':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(pattern[i : i+1]))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// resultSet is a query's rows as a snapshot: pointers to immutable records, and for each parent
// relationship the parent record of every row as it was when the query ran.
type resultSet struct {
	q       *query
	recs    []*record
	parents [][]*record // [rel][row]
}

// value returns the value of ref for row i of the snapshot.
func (rs *resultSet) value(ref fieldRef, i int) any {
	if ref.rel < 0 {
		return rs.recs[i].get(ref.pos)
	}
	p := rs.parents[ref.rel][i]
	if p == nil {
		return nil
	}
	return p.get(ref.pos)
}

// execute runs a query: it returns the matching rows (after ORDER BY, OFFSET and LIMIT) as a snapshot and
// the count COUNT() reports. Deleted rows are included only with all (queryAll).
func (s *store) execute(q *query, all bool) *resultSet {
	s.mu.RLock()
	defer s.mu.RUnlock()
	c := &evalCtx{s: s, q: q}
	t := s.tables[q.meta.obj.Name]
	m := q.meta

	// Scan order follows the Id index; ORDER BY Id needs no sort, and with a LIMIT the scan stops early.
	idOrder, desc := true, false
	if len(q.orderBy) > 1 || len(q.orderBy) == 1 && !isIDRef(q.orderBy[0].ref) {
		idOrder = false
	} else if len(q.orderBy) == 1 {
		desc = q.orderBy[0].desc
	}
	stopAt := -1
	if idOrder && q.limit >= 0 && q.aggr == nil {
		stopAt = q.offset + q.limit
	}

	var recs []*record
	visit := func(r *record) bool {
		if !all && r.deleted(m) {
			return true
		}
		if q.where != nil && !q.where.eval(c, r) {
			return true
		}
		recs = append(recs, r)
		return stopAt < 0 || len(recs) < stopAt
	}

	if ids, ok := idCandidates(q.where); ok {
		slices.Sort(ids)
		ids = slices.Compact(ids)
		if desc {
			slices.Reverse(ids)
		}
		for _, id := range ids {
			if r := t.get(id); r != nil && !visit(r) {
				break
			}
		}
	} else {
		lo := 0
		if bound, ok := idLowerBound(q.where); ok {
			lo = t.firstIndex(bound)
		}
		if desc {
			for i := len(t.rows) - 1; i >= lo; i-- {
				if !visit(t.rows[i]) {
					break
				}
			}
		} else {
			for i := lo; i < len(t.rows); i++ {
				if !visit(t.rows[i]) {
					break
				}
			}
		}
	}

	if !idOrder {
		sortRecords(c, q.orderBy, recs)
	}
	if q.aggr == nil {
		if q.offset > 0 {
			recs = recs[min(q.offset, len(recs)):]
		}
		if q.limit >= 0 && len(recs) > q.limit {
			recs = recs[:q.limit]
		}
	}
	rs := &resultSet{q: q, recs: recs, parents: make([][]*record, len(q.rels))}
	for k := range q.rels {
		rs.parents[k] = make([]*record, len(recs))
		for i, r := range recs {
			rs.parents[k][i] = c.parent(k, r)
		}
	}
	return rs
}

// sortRecords sorts rows by ORDER BY items (nulls first ascending and last descending unless NULLS says
// otherwise), then by Id so the order is total.
func sortRecords(c *evalCtx, items []orderItem, recs []*record) {
	keys := make([][]any, len(items))
	for k, it := range items {
		keys[k] = make([]any, len(recs))
		for i, r := range recs {
			keys[k][i] = c.value(it.ref, r)
		}
	}
	idx := make([]int, len(recs))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool {
		ia, ib := idx[a], idx[b]
		for k, it := range items {
			va, vb := keys[k][ia], keys[k][ib]
			var cmp int
			switch {
			case va == nil && vb == nil:
				cmp = 0
			case va == nil:
				if it.nullsFirst {
					return true
				}
				return false
			case vb == nil:
				if it.nullsFirst {
					return false
				}
				return true
			default:
				cmp = compareField(it.ref, va, vb)
				if it.desc {
					cmp = -cmp
				}
			}
			if cmp != 0 {
				return cmp < 0
			}
		}
		return recs[ia].id() < recs[ib].id()
	})
	sorted := make([]*record, len(recs))
	for i, j := range idx {
		sorted[i] = recs[j]
	}
	copy(recs, sorted)
}

func isIDRef(ref fieldRef) bool { return ref.rel < 0 && ref.field.Type == "id" }

// idCandidates returns the Ids a condition restricts the query to (Id = x, Id IN (...), alone or in a
// top-level AND), so those rows are looked up instead of scanned.
func idCandidates(e expr) ([]string, bool) {
	switch x := e.(type) {
	case cmpExpr:
		if isIDRef(x.ref) && x.op == "=" && !x.val.null {
			id, _ := x.val.v.(string)
			return []string{id}, true
		}
	case inExpr:
		if isIDRef(x.ref) && !x.not {
			var ids []string
			for _, l := range x.vals {
				if id, ok := l.v.(string); ok {
					ids = append(ids, id)
				}
			}
			return ids, true
		}
	case andExpr:
		for _, sub := range x {
			if ids, ok := idCandidates(sub); ok {
				return ids, true
			}
		}
	}
	return nil, false
}

// idLowerBound returns the lowest Id a condition admits (Id > x or Id >= x, alone or in a top-level AND),
// for keyset paging scans that start at the bound instead of the beginning.
func idLowerBound(e expr) (string, bool) {
	switch x := e.(type) {
	case cmpExpr:
		if isIDRef(x.ref) && (x.op == ">" || x.op == ">=") && !x.val.null {
			id, ok := x.val.v.(string)
			return id, ok
		}
	case andExpr:
		best, found := "", false
		for _, sub := range x {
			if b, ok := idLowerBound(sub); ok && (!found || b > best) {
				best, found = b, true
			}
		}
		return best, found
	}
	return "", false
}
