package salesforce

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/clock"
)

// REST query and queryAll (spec 2.3): pages of up to 2,000 records (Sforce-Query-Options: batchSize=N,
// 200–2000), the rest reachable through nextRecordsUrl /services/data/vXX.X/query/<locator>-<offset>.
// A locator holds the query's snapshot and expires after being idle for the locator TTL (15 minutes).

const (
	defaultBatchSize = 2000
	minBatchSize     = 200
	maxCursors       = 100 // open locators kept; the least recently used is dropped beyond this
)

type cursor struct {
	id       string
	rs       *resultSet
	batch    int
	lastUsed time.Time
}

type cursorStore struct {
	mu      sync.Mutex
	clock   *clock.Clock
	cursors map[string]*cursor
}

func newCursorStore(c *clock.Clock) *cursorStore {
	return &cursorStore{clock: c, cursors: map[string]*cursor{}}
}

func (cs *cursorStore) add(c *cursor, ttl time.Duration) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.purgeLocked(ttl)
	if len(cs.cursors) >= maxCursors {
		var oldest *cursor
		for _, x := range cs.cursors {
			if oldest == nil || x.lastUsed.Before(oldest.lastUsed) {
				oldest = x
			}
		}
		delete(cs.cursors, oldest.id)
	}
	c.lastUsed = cs.clock.Now()
	cs.cursors[c.id] = c
}

func (cs *cursorStore) get(id string, ttl time.Duration) (*cursor, bool) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	cs.purgeLocked(ttl)
	c, ok := cs.cursors[id]
	if ok {
		c.lastUsed = cs.clock.Now()
	}
	return c, ok
}

func (cs *cursorStore) purgeLocked(ttl time.Duration) {
	now := cs.clock.Now()
	for id, c := range cs.cursors {
		if now.Sub(c.lastUsed) > ttl {
			delete(cs.cursors, id)
		}
	}
}

func (cs *cursorStore) reset() {
	cs.mu.Lock()
	cs.cursors = map[string]*cursor{}
	cs.mu.Unlock()
}

// batchSize reads Sforce-Query-Options: batchSize=N, clamped to 200–2000.
func batchSize(r *http.Request) int {
	for _, part := range strings.Split(r.Header.Get("Sforce-Query-Options"), ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "batchSize") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil {
			continue
		}
		return min(max(n, minBatchSize), defaultBatchSize)
	}
	return defaultBatchSize
}

func (e *Emulator) handleQuery(c *call, all bool) {
	text := c.r.URL.Query().Get("q")
	if strings.TrimSpace(text) == "" {
		writeAPIError(c.w, errorf(http.StatusBadRequest, "MALFORMED_QUERY", "A query string has to be specified"))
		return
	}
	q, err := parseSOQL(e.store, text, e.clock.Now())
	if err != nil {
		writeAPIError(c.w, err)
		return
	}
	rs := e.store.execute(q, all)
	var buf bytes.Buffer
	switch {
	case q.count:
		buf.WriteString(`{"totalSize":` + strconv.Itoa(len(rs.recs)) + `,"done":true,"records":[]}`)
	case q.aggr != nil:
		n := 0
		for i := range rs.recs {
			if rs.value(q.aggr.ref, i) != nil {
				n++
			}
		}
		buf.WriteString(`{"totalSize":1,"done":true,"records":[{"attributes":{"type":"AggregateResult"},`)
		writeJSONString(&buf, q.aggr.alias)
		buf.WriteString(":" + strconv.Itoa(n) + "}]}")
	default:
		cur := &cursor{id: e.ids.New(prefixLocator), rs: rs, batch: batchSize(c.r)}
		if len(rs.recs) > cur.batch {
			e.cursors.add(cur, e.currentSettings().QueryLocatorTTL)
		}
		writeQueryPage(&buf, cur, 0, c.base())
	}
	writeJSONBytes(c.w, http.StatusOK, buf.Bytes())
}

// handleQueryMore serves a nextRecordsUrl: /query/<locator>-<offset> (or /queryAll/...).
func (e *Emulator) handleQueryMore(c *call, locator string) {
	i := strings.LastIndexByte(locator, '-')
	var offset int
	var err error
	if i > 0 {
		offset, err = strconv.Atoi(locator[i+1:])
	}
	if i <= 0 || err != nil || offset < 0 {
		writeAPIError(c.w, errorf(http.StatusBadRequest, "INVALID_QUERY_LOCATOR", "invalid query locator"))
		return
	}
	id, ok := normalizeID(locator[:i], prefixLocator)
	cur, found := e.cursors.get(id, e.currentSettings().QueryLocatorTTL)
	if !ok || !found || offset > len(cur.rs.recs) {
		writeAPIError(c.w, errorf(http.StatusBadRequest, "INVALID_QUERY_LOCATOR", "invalid query locator"))
		return
	}
	var buf bytes.Buffer
	writeQueryPage(&buf, cur, offset, c.base())
	writeJSONBytes(c.w, http.StatusOK, buf.Bytes())
}

// writeQueryPage writes {"totalSize","done"[,"nextRecordsUrl"],"records"} for the rows of cur from offset.
func writeQueryPage(buf *bytes.Buffer, cur *cursor, offset int, base string) {
	rs := cur.rs
	end := min(offset+cur.batch, len(rs.recs))
	done := end >= len(rs.recs)
	buf.WriteString(`{"totalSize":` + strconv.Itoa(len(rs.recs)) + `,"done":` + strconv.FormatBool(done))
	if !done {
		buf.WriteString(`,"nextRecordsUrl":"` + base + "/query/" + cur.id + "-" + strconv.Itoa(end) + `"`)
	}
	buf.WriteString(`,"records":[`)
	for i := offset; i < end; i++ {
		if i > offset {
			buf.WriteByte(',')
		}
		writeRecordJSON(buf, rs, i, base)
	}
	buf.WriteString("]}")
}

// writeRecordJSON writes row i of rs as a REST record: attributes, then the selected fields in SELECT
// order; the fields of a parent are grouped in a nested object with its own attributes ("Account": null
// when the lookup is empty).
func writeRecordJSON(buf *bytes.Buffer, rs *resultSet, i int, base string) {
	q := rs.q
	rec := rs.recs[i]
	writeAttributes(buf, q.meta.obj.Name, rec.id(), base)
	written := map[int]bool{}
	for _, ref := range q.fields {
		if ref.rel < 0 {
			buf.WriteByte(',')
			writeJSONString(buf, ref.name)
			buf.WriteByte(':')
			writeFieldValue(buf, ref, rec)
			continue
		}
		if written[ref.rel] {
			continue
		}
		written[ref.rel] = true
		rel := q.rels[ref.rel]
		buf.WriteByte(',')
		writeJSONString(buf, rel.name)
		buf.WriteByte(':')
		parent := rs.parents[ref.rel][i]
		if parent == nil {
			buf.WriteString("null")
			continue
		}
		writeAttributes(buf, rel.target.obj.Name, parent.id(), base)
		for _, pf := range q.fields {
			if pf.rel != ref.rel {
				continue
			}
			buf.WriteByte(',')
			writeJSONString(buf, pf.field.Name)
			buf.WriteByte(':')
			writeFieldValue(buf, pf, parent)
		}
		buf.WriteByte('}')
	}
	buf.WriteByte('}')
}

func writeAttributes(buf *bytes.Buffer, object, id, base string) {
	buf.WriteString(`{"attributes":{"type":`)
	writeJSONString(buf, object)
	buf.WriteString(`,"url":`)
	writeJSONString(buf, base+"/sobjects/"+object+"/"+id)
	buf.WriteString("}")
}

// writeFieldValue writes the JSON value of a field of rec; an address compound is an object of its
// components (null when they are all empty).
func writeFieldValue(buf *bytes.Buffer, ref fieldRef, rec *record) {
	if ref.compound {
		comps := ref.meta.obj.CompoundComponents(ref.field.Name)
		vals := map[string]any{}
		nonEmpty := false
		for _, f := range comps {
			pos, _ := ref.meta.field(f.Name)
			v := rec.get(pos)
			vals[lowerFirst(f.CompoundMember)] = v
			nonEmpty = nonEmpty || v != nil
		}
		if !nonEmpty {
			buf.WriteString("null")
			return
		}
		buf.WriteByte('{')
		for k, key := range []string{"city", "country", "countryCode", "geocodeAccuracy", "latitude", "longitude", "postalCode", "state", "stateCode", "street"} {
			if k > 0 {
				buf.WriteByte(',')
			}
			writeJSONString(buf, key)
			buf.WriteByte(':')
			if s, ok := vals[key].(string); ok {
				writeJSONString(buf, s)
			} else {
				buf.WriteString("null")
			}
		}
		buf.WriteByte('}')
		return
	}
	writeJSONScalar(buf, jsonValue(ref.field, rec.get(ref.pos)))
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToLower(s[:1]) + s[1:]
}

func writeJSONScalar(buf *bytes.Buffer, v any) {
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case string:
		writeJSONString(buf, x)
	case bool:
		buf.WriteString(strconv.FormatBool(x))
	case int64:
		buf.WriteString(strconv.FormatInt(x, 10))
	default:
		b, _ := json.Marshal(x)
		buf.Write(b)
	}
}

// writeJSONString writes s as a JSON string without HTML escaping (Salesforce does not escape <, >, &).
func writeJSONString(buf *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	buf.WriteByte('"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				buf.WriteByte('\\')
				buf.WriteByte(c)
			case c == '\n':
				buf.WriteString(`\n`)
			case c == '\r':
				buf.WriteString(`\r`)
			case c == '\t':
				buf.WriteString(`\t`)
			case c < 0x20:
				buf.WriteString(`\u00`)
				buf.WriteByte(hex[c>>4])
				buf.WriteByte(hex[c&0xF])
			default:
				buf.WriteByte(c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf.WriteString(`\ufffd`)
		} else {
			buf.WriteString(s[i : i+size])
		}
		i += size
	}
	buf.WriteByte('"')
}
