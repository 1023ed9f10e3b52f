package dataverse

import (
	"container/heap"
	"encoding/base64"
	"encoding/binary"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/jsonrow"
)

// Reads (spec 5): $select, $filter, $orderby, $top, $count, server-driven paging with Prefer:
// odata.maxpagesize and an opaque $skiptoken in @odata.nextLink, @odata.etag on every row, ETag and 304 on
// single rows. Rows are returned in $orderby order with the primary key as the final tie-breaker (the
// primary key alone when there is no $orderby), so paging is stable; each page is a fresh scan that keeps
// the rows after the cursor of the previous page.

// maxPage is the largest page Dataverse returns (spec 5.2).
const maxPage = 5000

type queryParams struct{ vals url.Values }

func (q queryParams) get(k string) string {
	if v := q.vals[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func (q queryParams) has(k string) bool { _, ok := q.vals[k]; return ok }

var knownOptions = map[string]bool{"$select": true, "$filter": true, "$orderby": true, "$top": true, "$count": true,
	"$skiptoken": true, "$expand": true, "$deltatoken": true}

// parseQuery parses and checks the query string: unknown system query options fail; $skip is not supported
// by Dataverse (spec 5.1).
func parseQuery(raw string) (queryParams, *apiError) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return queryParams{}, errBadRequest("The query string could not be parsed: %v", err)
	}
	for k := range vals {
		if strings.HasPrefix(k, "$") && !knownOptions[k] {
			if k == "$skip" {
				return queryParams{}, errBadRequest("The query parameter $skip is not supported.")
			}
			return queryParams{}, errBadRequest("The query parameter '%s' is not supported.", k)
		}
	}
	return queryParams{vals: vals}, nil
}

// parseSelect resolves $select against a table's Web API properties (nil = every property).
func parseSelect(t *table, s string) ([]*column, *apiError) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []*column
	seen := map[*column]bool{}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		c := t.byProp[name]
		if c == nil {
			return nil, errNoProperty(name, t.Logical)
		}
		if !seen[c] {
			seen[c] = true
			out = append(out, c)
		}
	}
	return out, nil
}

func selectContext(sel []*column) string {
	if len(sel) == 0 {
		return ""
	}
	names := make([]string, len(sel))
	for i, c := range sel {
		names[i] = c.prop
	}
	return "(" + strings.Join(names, ",") + ")"
}

type orderKey struct {
	get  accessor
	desc bool
}

func parseOrderBy(env tableEnv, s string) ([]orderKey, *apiError) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var keys []orderKey
	for _, item := range strings.Split(s, ",") {
		f := strings.Fields(item)
		if len(f) == 0 || len(f) > 2 {
			return nil, errBadRequest("Syntax error in '$orderby=%s'.", s)
		}
		k := orderKey{}
		if len(f) == 2 {
			switch strings.ToLower(f[1]) {
			case "asc":
			case "desc":
				k.desc = true
			default:
				return nil, errBadRequest("Syntax error in '$orderby=%s': '%s' must be asc or desc.", s, f[1])
			}
		}
		get, _, aerr := env.resolve(f[0])
		if aerr != nil {
			return nil, aerr
		}
		k.get = get
		keys = append(keys, k)
	}
	return keys, nil
}

// candidate is a row kept for the current page.
type candidate struct {
	slot uint32
	keys []value
	id   [16]byte
}

// compareRows orders by the keys (nulls first ascending, as SQL Server does), then by primary key.
func compareRows(order []orderKey, a, b *candidate) int {
	for i, k := range order {
		c := compareKey(a.keys[i], b.keys[i])
		if k.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
	}
	return compareBytes(a.id, b.id)
}

func compareKey(a, b value) int {
	switch {
	case a.isNull() && b.isNull():
		return 0
	case a.isNull():
		return -1
	case b.isNull():
		return 1
	}
	c, _ := compareValues(a, b)
	return c
}

// pageHeap is a max-heap of the best rows so far, so the worst can be evicted.
type pageHeap struct {
	order []orderKey
	rows  []*candidate
}

func (h *pageHeap) Len() int           { return len(h.rows) }
func (h *pageHeap) Less(i, j int) bool { return compareRows(h.order, h.rows[i], h.rows[j]) > 0 }
func (h *pageHeap) Swap(i, j int)      { h.rows[i], h.rows[j] = h.rows[j], h.rows[i] }
func (h *pageHeap) Push(x any)         { h.rows = append(h.rows, x.(*candidate)) }
func (h *pageHeap) Pop() any {
	x := h.rows[len(h.rows)-1]
	h.rows = h.rows[:len(h.rows)-1]
	return x
}

// cursor is the position after the last row of a page, plus how many rows were returned so far (for $top).
type cursor struct {
	keys     []value
	id       [16]byte
	returned int
	page     int
}

func encodeCursor(c cursor) string {
	var b []byte
	b = binary.AppendVarint(b, int64(c.returned))
	b = binary.AppendVarint(b, int64(len(c.keys)))
	for _, k := range c.keys {
		b = append(b, byte(k.kind), k.tbl)
		switch k.kind {
		case vString:
			b = binary.AppendVarint(b, int64(len(k.s)))
			b = append(b, k.s...)
		case vInt, vBool, vTime, vDate:
			b = binary.AppendVarint(b, k.i)
		case vFloat:
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(k.f))
		case vGUID:
			b = append(b, k.g[:]...)
		}
	}
	b = append(b, c.id[:]...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, bool) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, false
	}
	bad := false
	vi := func() int {
		x, n := binary.Varint(b)
		if n <= 0 || x < 0 || x > 1<<40 {
			bad = true
			return 0
		}
		b = b[n:]
		return int(x)
	}
	c.returned = vi()
	n := vi()
	if bad || n > 16 {
		return c, false
	}
	for i := 0; i < n; i++ {
		if len(b) < 2 {
			return c, false
		}
		k := value{kind: vkind(b[0]), tbl: b[1]}
		b = b[2:]
		switch k.kind {
		case vString:
			l := vi()
			if bad || len(b) < l {
				return c, false
			}
			k.s = string(b[:l])
			b = b[l:]
		case vInt, vBool, vTime, vDate:
			x, m := binary.Varint(b)
			if m <= 0 {
				return c, false
			}
			k.i, b = x, b[m:]
		case vFloat:
			if len(b) < 8 {
				return c, false
			}
			k.f, b = math.Float64frombits(binary.LittleEndian.Uint64(b)), b[8:]
		case vGUID:
			if len(b) < 16 {
				return c, false
			}
			copy(k.g[:], b)
			b = b[16:]
		case vNull:
		default:
			return c, false
		}
		c.keys = append(c.keys, k)
	}
	if len(b) != 16 {
		return c, false
	}
	copy(c.id[:], b)
	return c, true
}

// skipTokenFor wraps a cursor in the shape of Dataverse's paging cookie (spec 5.2), URL-encoded once more
// inside, as the real one is.
func skipTokenFor(c cursor) string {
	inner := url.QueryEscape(`<cookie page="` + strconv.Itoa(c.page) + `"><crmsync>` + encodeCursor(c) + `</crmsync></cookie>`)
	return `<cookie pagenumber="` + strconv.Itoa(c.page+1) + `" pagingcookie="` + url.QueryEscape(inner) + `" istracking="False" />`
}

func cursorFromSkipToken(tok string) (cursor, bool) {
	_, rest, ok := strings.Cut(tok, `pagingcookie="`)
	if !ok {
		return cursor{}, false
	}
	enc, _, ok := strings.Cut(rest, `"`)
	if !ok {
		return cursor{}, false
	}
	inner, err := url.QueryUnescape(enc)
	if err != nil {
		return cursor{}, false
	}
	if inner, err = url.QueryUnescape(inner); err != nil {
		return cursor{}, false
	}
	_, after, ok := strings.Cut(inner, "<crmsync>")
	body, _, ok2 := strings.Cut(after, "</crmsync>")
	if !ok || !ok2 {
		return cursor{}, false
	}
	c, ok := decodeCursor(body)
	if !ok {
		return c, false
	}
	_, pageText, _ := strings.Cut(inner, `page="`)
	pageText, _, _ = strings.Cut(pageText, `"`)
	c.page, _ = strconv.Atoi(pageText)
	c.page++
	return c, true
}

// nextLinkFor is the request URL with its $skiptoken replaced (spec 5.2: the client GETs it as is).
func nextLinkFor(reqURL, token string) string {
	base, rawQuery, _ := strings.Cut(reqURL, "?")
	var kept []string
	for _, p := range strings.Split(rawQuery, "&") {
		if p == "" || strings.HasPrefix(p, "$skiptoken=") || strings.HasPrefix(strings.ToLower(p), "%24skiptoken=") {
			continue
		}
		kept = append(kept, p)
	}
	kept = append(kept, "$skiptoken="+url.QueryEscape(token))
	return base + "?" + strings.Join(kept, "&")
}

// serveQuery answers GET <set> (spec 5.1, 5.2).
func (e *Emulator) serveQuery(c *opCtx, t *table, rawQuery string) response {
	e.tally(c, cRead, 1)
	c.cost += time.Duration(e.prot.currentLimits().Costs.Read)
	q, aerr := parseQuery(rawQuery)
	if aerr != nil {
		return e.fail(c, aerr)
	}
	if q.has("$expand") {
		return e.fail(c, newError(http.StatusNotImplemented, codeUnexpected, "$expand is not emulated by the sandbox."))
	}
	defer e.rlock(c)()
	if aerr := e.checkTablePrivilege(c.actor, t, t.privs.read); aerr != nil {
		return e.fail(c, aerr)
	}
	env := tableEnv{e: e, t: t}
	sel, aerr := parseSelect(t, q.get("$select"))
	if aerr != nil {
		return e.fail(c, aerr)
	}
	var filter *fnode
	if f := q.get("$filter"); f != "" {
		if filter, aerr = compileFilter(f, env); aerr != nil {
			return e.fail(c, aerr)
		}
	}
	order, aerr := parseOrderBy(env, q.get("$orderby"))
	if aerr != nil {
		return e.fail(c, aerr)
	}
	top := -1
	if s := q.get("$top"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return e.fail(c, errBadRequest("Invalid value '%s' for $top query option found. The $top query option requires a non-negative integer value.", s))
		}
		top = n
	}
	if c.prefs.trackChanges && (filter != nil || order != nil || top >= 0 || q.has("$expand")) {
		opt := "$filter"
		switch {
		case order != nil:
			opt = "$orderby"
		case top >= 0:
			opt = "$top"
		}
		return e.fail(c, errBadRequest(`The "%s" query parameter isn't supported when Change Tracking is enabled.`, opt))
	}
	pageSize := maxPage
	applied := 0
	if n := c.prefs.maxPageSize; n > 0 {
		pageSize, applied = min(n, maxPage), min(n, maxPage)
		top = -1 // $top is ignored together with odata.maxpagesize (spec 5.1)
	}
	var cur *cursor
	if tok := q.get("$skiptoken"); tok != "" {
		cc, ok := cursorFromSkipToken(tok)
		if !ok || len(cc.keys) != len(order) {
			return e.fail(c, errBadRequest("The $skiptoken '%s' is not a paging cookie this query issued.", tok))
		}
		cur = &cc
	}
	limit := pageSize
	if top >= 0 {
		done := 0
		if cur != nil {
			done = cur.returned
		}
		limit = min(limit, max(0, top-done))
	}

	h := &pageHeap{order: order}
	var v rowView
	v.e = e
	total := 0
	needRow := filter != nil || len(order) > 0
	cand := &candidate{}
	var after *candidate
	if cur != nil {
		after = &candidate{keys: cur.keys, id: cur.id}
	}
	for slot := range t.rows {
		r := &t.rows[slot]
		if !r.live {
			continue
		}
		if needRow {
			v.load(t, uint32(slot))
			if filter != nil && !filter.eval(&v) {
				continue
			}
		}
		total++
		cand.slot, cand.id = uint32(slot), r.id
		cand.keys = cand.keys[:0]
		for _, k := range order {
			cand.keys = append(cand.keys, k.get(&v))
		}
		if after != nil && compareRows(order, cand, after) <= 0 {
			continue
		}
		if limit == 0 {
			continue
		}
		if h.Len() <= limit {
			// Key strings alias the immutable arena (or are freshly derived), so they are kept as is.
			heap.Push(h, &candidate{slot: cand.slot, id: cand.id, keys: append([]value(nil), cand.keys...)})
			if h.Len() > limit+1 {
				heap.Pop(h)
			}
		} else if compareRows(order, cand, h.rows[0]) < 0 {
			worst := h.rows[0]
			worst.slot, worst.id = cand.slot, cand.id
			worst.keys = append(worst.keys[:0], cand.keys...)
			heap.Fix(h, 0)
		}
	}
	rows := h.rows
	sort.Slice(rows, func(i, j int) bool { return compareRows(order, rows[i], rows[j]) < 0 })
	more := len(rows) > limit
	if more {
		rows = rows[:limit]
	}

	b := make([]byte, 0, 256+len(rows)*512)
	b = append(b, `{"@odata.context":`...)
	b = jsonrow.AppendString(b, e.baseURL()+"$metadata#"+t.Set+selectContext(sel))
	if q.get("$count") == "true" {
		b = append(b, `,"@odata.count":`...)
		b = strconv.AppendInt(b, int64(min(total, maxPage)), 10)
	}
	b = append(b, `,"value":[`...)
	for i, cd := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		v.load(t, cd.slot)
		b = append(b, '{')
		b = e.appendRowMembers(b, c, &v, sel)
		b = append(b, '}')
	}
	b = append(b, ']')
	returned := len(rows)
	if cur != nil {
		returned += cur.returned
	}
	if more && (top < 0 || returned < top) {
		last := rows[len(rows)-1]
		page := 1
		if cur != nil {
			page = cur.page
		}
		next := cursor{keys: last.keys, id: last.id, returned: returned, page: page}
		b = append(b, `,"@odata.nextLink":`...)
		b = jsonrow.AppendString(b, nextLinkFor(c.reqURL, skipTokenFor(next)))
	}
	b = append(b, '}')
	resp := jsonResponse(http.StatusOK, b)
	var applyPrefs []string
	if applied > 0 {
		applyPrefs = append(applyPrefs, "odata.maxpagesize="+strconv.Itoa(applied))
	}
	if c.prefs.anyAnnotations() {
		applyPrefs = append(applyPrefs, `odata.include-annotations="`+strings.Join(c.prefs.annotations, ",")+`"`)
	}
	if len(applyPrefs) > 0 {
		resp.set("Preference-Applied", strings.Join(applyPrefs, ","))
	}
	return resp
}

// serveRetrieve answers GET <set>(<id>) (spec 5.1): the row, an ETag header, 304 on a matching
// If-None-Match.
func (e *Emulator) serveRetrieve(c *opCtx, t *table, id [16]byte, rawQuery string, hdr http.Header) response {
	e.tally(c, cRead, 1)
	c.cost += time.Duration(e.prot.currentLimits().Costs.Read)
	q, aerr := parseQuery(rawQuery)
	if aerr != nil {
		return e.fail(c, aerr)
	}
	if q.has("$expand") {
		return e.fail(c, newError(http.StatusNotImplemented, codeUnexpected, "$expand is not emulated by the sandbox."))
	}
	defer e.rlock(c)()
	sel, aerr := parseSelect(t, q.get("$select"))
	if aerr != nil {
		return e.fail(c, aerr)
	}
	slot, ok := t.lookup(id)
	if !ok {
		return e.fail(c, errNotFound(t.Logical, id))
	}
	if aerr := e.checkRowPrivilege(c.actor, t, slot, t.privs.read); aerr != nil {
		return e.fail(c, aerr)
	}
	var v rowView
	v.e = e
	v.load(t, slot)
	tag := etag(v.r.version)
	if inm := hdr.Get("If-None-Match"); inm == tag && !c.prefs.anyAnnotations() {
		resp := response{status: http.StatusNotModified}
		resp.set("ETag", tag)
		return resp
	}
	b := []byte(`{"@odata.context":`)
	b = jsonrow.AppendString(b, e.baseURL()+"$metadata#"+t.Set+selectContext(sel)+"/$entity")
	b = append(b, ',')
	b = e.appendRowMembers(b, c, &v, sel)
	b = append(b, '}')
	resp := jsonResponse(http.StatusOK, b)
	resp.set("ETag", tag)
	return resp
}

// serveCount answers GET <set>/$count: the number of rows as text, at most 5000 (spec 5.1).
func (e *Emulator) serveCount(c *opCtx, t *table) response {
	e.tally(c, cRead, 1)
	c.cost += time.Duration(e.prot.currentLimits().Costs.Read)
	defer e.rlock(c)()
	resp := response{status: http.StatusOK, body: []byte(strconv.Itoa(min(t.count(), maxPage)))}
	resp.set("Content-Type", "text/plain")
	return resp
}

// appendRowMembers appends "@odata.etag", the selected properties (every property when sel is nil) and the
// primary key, with annotations when requested (spec 2.2, 4.6).
func (e *Emulator) appendRowMembers(b []byte, c *opCtx, v *rowView, sel []*column) []byte {
	t := v.t
	b = append(b, `"@odata.etag":`...)
	b = jsonrow.AppendString(b, etag(v.r.version))
	cols := sel
	if cols == nil {
		cols = t.cols
	}
	pk := t.byLogical[t.PrimaryID]
	wroteKey := false
	for _, col := range cols {
		if col.prop == "" || !col.ValidRead {
			continue
		}
		if col == pk {
			wroteKey = true
		}
		b = e.appendProperty(b, c, v, col)
	}
	if !wroteKey {
		b = e.appendProperty(b, c, v, pk)
	}
	return b
}

func (e *Emulator) appendProperty(b []byte, c *opCtx, v *rowView, col *column) []byte {
	val := v.get(col)
	if c.prefs.anyAnnotations() && !val.isNull() {
		if s, ok := e.formatted(col, val); ok && c.prefs.wantAnnotation("OData.Community.Display.V1.FormattedValue") {
			b = append(b, ',')
			b = jsonrow.AppendString(b, col.prop+"@OData.Community.Display.V1.FormattedValue")
			b = append(b, ':')
			b = jsonrow.AppendString(b, s)
		}
		if isLookup(col) {
			target := e.tables[val.tbl]
			if c.prefs.wantAnnotation("Microsoft.Dynamics.CRM.associatednavigationproperty") {
				b = append(b, ',')
				b = jsonrow.AppendString(b, col.prop+"@Microsoft.Dynamics.CRM.associatednavigationproperty")
				b = append(b, ':')
				b = jsonrow.AppendString(b, navNameFor(v.t, col, target))
			}
			if c.prefs.wantAnnotation("Microsoft.Dynamics.CRM.lookuplogicalname") {
				b = append(b, ',')
				b = jsonrow.AppendString(b, col.prop+"@Microsoft.Dynamics.CRM.lookuplogicalname")
				b = append(b, ':')
				b = jsonrow.AppendString(b, target.Logical)
			}
		}
	}
	b = append(b, ',')
	b = jsonrow.AppendString(b, col.prop)
	b = append(b, ':')
	return appendValue(b, val)
}

func isLookup(c *column) bool {
	return c.Type == atLookup || c.Type == atCustomer || c.Type == atOwner
}

// navNameFor is the navigation property a lookup value came through (e.g. parentcustomerid_account).
func navNameFor(t *table, col *column, target *table) string {
	for _, n := range t.navOrder {
		if n.col == col && (n.target == "" || n.target == target.Logical) {
			return n.name
		}
	}
	return col.Logical
}
