package dataverse

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/jsonrow"
)

// Row is a row body: column → JSON value, binds as "<nav>@odata.bind".
type Row = map[string]any

// Bulk messages.
const (
	UpsertMultiple = "UpsertMultiple"
	UpdateMultiple = "UpdateMultiple"
	CreateMultiple = "CreateMultiple"
)

// SupportsBulk reports whether the environment supports a bulk message on a table, probing sdkmessagefilters
// once per message and table and remembering the answer. On standard tables UpsertMultiple can run as
// CreateMultiple + UpdateMultiple with no filter row of its own, so for UpsertMultiple both of those count too.
func (c *Client) SupportsBulk(ctx context.Context, message, table string) (bool, error) {
	key := message + "/" + table
	c.bulkMu.Lock()
	v, ok := c.bulkSupp[key]
	c.bulkMu.Unlock()
	if ok {
		return v, nil
	}
	has := func(msg string) (bool, error) {
		var page struct {
			Value []json.RawMessage `json:"value"`
		}
		filter := fmt.Sprintf("sdkmessageid/name eq '%s' and primaryobjecttypecode eq '%s'", msg, table)
		err := c.getJSON(ctx, "metadata", "/sdkmessagefilters?$select=sdkmessagefilterid&$filter="+url.QueryEscape(filter), &page)
		return len(page.Value) > 0, err
	}
	supported, err := has(message)
	if err == nil && !supported && message == UpsertMultiple {
		var create, update bool
		if create, err = has(CreateMultiple); err == nil && create {
			update, err = has(UpdateMultiple)
			supported = update
		}
	}
	if err != nil {
		return false, err
	}
	c.bulkMu.Lock()
	c.bulkSupp[key] = supported
	c.bulkMu.Unlock()
	return supported, nil
}

// Target is one row of a bulk message, already encoded: Members are the members of its JSON object
// without braces ("col":value,...), as jsonrow writes them; Key, when set, is added as the primary key.
type Target struct {
	Key     string
	Members []byte
}

// BulkBody builds the body BulkTargets sends, {"Targets":[...]} with "@odata.type" first in every target,
// copying each target's members once into a buffer sized exactly.
func BulkBody(table, keyColumn string, targets []Target) []byte {
	typ := `{"@odata.type":"Microsoft.Dynamics.CRM.` + table + `"`
	keyMember := `,"` + keyColumn + `":"`
	size := len(`{"Targets":[]}`) + len(targets) - 1 // the separators
	for _, t := range targets {
		size += len(typ) + 1 // and '}'
		if len(t.Members) > 0 {
			size += 1 + len(t.Members)
		}
		if t.Key != "" {
			size += len(keyMember) + len(t.Key) + 1
		}
	}
	b := make([]byte, 0, size)
	b = append(b, `{"Targets":[`...)
	for i, t := range targets {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, typ...)
		if t.Key != "" {
			// Keys are GUIDs: nothing to escape.
			b = append(b, keyMember...)
			b = append(b, t.Key...)
			b = append(b, '"')
		}
		if len(t.Members) > 0 {
			b = append(b, ',')
			b = append(b, t.Members...)
		}
		b = append(b, '}')
	}
	return append(b, `]}`...)
}

// bulkBody is BulkBody as BulkTargets sends it: read from the targets' members as the request goes out (once
// per attempt), so no copy of the whole body (about 700 KB per 1,000 rows) is built, zeroed and collected
// per request.
type bulkBody struct {
	typ, keyMember string
	targets        []Target
	size           int64
}

func newBulkBody(table, keyColumn string, targets []Target) *bulkBody {
	b := &bulkBody{typ: `{"@odata.type":"Microsoft.Dynamics.CRM.` + table + `"`, keyMember: `,"` + keyColumn + `":"`, targets: targets}
	b.size = int64(len(`{"Targets":[]}`) + len(targets) - 1) // the separators
	for _, t := range targets {
		b.size += int64(len(b.typ) + 1) // and '}'
		if len(t.Members) > 0 {
			b.size += int64(1 + len(t.Members))
		}
		if t.Key != "" {
			b.size += int64(len(b.keyMember) + len(t.Key) + 1)
		}
	}
	return b
}

// reader reads the body from its start.
func (b *bulkBody) reader() io.Reader { return &bulkReader{b: b, i: -1} }

// bulkReader reads a bulkBody piece by piece: the opening, then each target's pieces (piece), then the
// closing.
type bulkReader struct {
	b       *bulkBody
	i, part int // the target (-1: the opening; len(targets): the closing) and its piece
	off     int // bytes of the current piece already read
}

// piece is the current piece (text s or bytes m), skipping empty ones; ok is false at the end.
func (r *bulkReader) piece() (s string, m []byte, ok bool) {
	for ; ; r.next() {
		switch {
		case r.i < 0:
			return `{"Targets":[`, nil, true
		case r.i == len(r.b.targets):
			return "]}", nil, true
		case r.i > len(r.b.targets):
			return "", nil, false
		}
		t := &r.b.targets[r.i]
		switch {
		case r.part == 0 && r.i > 0:
			return ",", nil, true
		case r.part == 1:
			return r.b.typ, nil, true
		case r.part == 2 && t.Key != "":
			return r.b.keyMember, nil, true
		case r.part == 3 && t.Key != "":
			return t.Key, nil, true // keys are GUIDs: nothing to escape
		case r.part == 4 && t.Key != "":
			return `"`, nil, true
		case r.part == 5 && len(t.Members) > 0:
			return ",", nil, true
		case r.part == 6 && len(t.Members) > 0:
			return "", t.Members, true
		case r.part == 7:
			return "}", nil, true
		}
	}
}

// next moves to the following piece.
func (r *bulkReader) next() {
	r.off = 0
	if r.part++; r.i < 0 || r.i >= len(r.b.targets) || r.part > 7 {
		r.i, r.part = r.i+1, 0
	}
}

func (r *bulkReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		s, m, ok := r.piece()
		if !ok {
			if n == 0 {
				return 0, io.EOF
			}
			break
		}
		var c, size int
		if m != nil {
			c, size = copy(p[n:], m[r.off:]), len(m)
		} else {
			c, size = copy(p[n:], s[r.off:]), len(s)
		}
		n, r.off = n+c, r.off+c
		if r.off == size {
			r.next()
		}
	}
	return n, nil
}

// Bulk sends UpsertMultiple or UpdateMultiple of rows of one table: one request, one transaction (any
// failing row fails them all, and the error says which message failed, not which row). Each row carries its
// own primary key.
func (c *Client) Bulk(ctx context.Context, message, table, entitySet string, rows []Row) error {
	targets := make([]Target, len(rows))
	for i, r := range rows {
		m, err := jsonrow.AppendMembers(nil, r)
		if err != nil {
			return fmt.Errorf("encoding row %d: %w", i, err)
		}
		targets[i].Members = m
	}
	return c.BulkTargets(ctx, message, table, entitySet, "", targets)
}

// BulkTargets is Bulk for rows already encoded, keyed by keyColumn (the table's primary key column) where a
// target has a Key.
func (c *Client) BulkTargets(ctx context.Context, message, table, entitySet, keyColumn string, targets []Target) error {
	if len(targets) == 0 {
		return nil
	}
	_, err := c.do(ctx, request{kind: "bulk", method: http.MethodPost, path: "/" + entitySet + "/Microsoft.Dynamics.CRM." + message,
		bulk: newBulkBody(table, keyColumn, targets), idempotent: true})
	if err == nil {
		c.Stats.add("bulk_rows", int64(len(targets)))
	}
	return err
}

// Conditions of a single-row PATCH.
const (
	Upsert     = ""              // create or update
	UpdateOnly = "If-Match"      // fail with 404 when the row is missing
	CreateOnly = "If-None-Match" // fail with 412 when the row exists
)

// Patch writes one row by primary key with upsert semantics (or update-only / create-only).
func (c *Client) Patch(ctx context.Context, entitySet, id string, row Row, condition string) error {
	m, err := jsonrow.AppendMembers(nil, row)
	if err != nil {
		return err
	}
	return c.PatchMembers(ctx, entitySet, id, m, condition)
}

// PatchMembers is Patch for a row already encoded as JSON object members without braces.
func (c *Client) PatchMembers(ctx context.Context, entitySet, id string, members []byte, condition string) error {
	body := object(members)
	h := http.Header{}
	if condition != "" {
		h.Set(condition, "*")
	}
	_, err := c.do(ctx, request{kind: "write", method: http.MethodPatch, path: "/" + entitySet + "(" + id + ")", body: body, header: h, idempotent: true})
	return err
}

// object wraps members in braces.
func object(members []byte) []byte {
	b := make([]byte, 0, len(members)+2)
	b = append(b, '{')
	b = append(b, members...)
	return append(b, '}')
}

// Delete deletes one row by primary key. A missing row is a *APIError with status 404.
func (c *Client) Delete(ctx context.Context, entitySet, id string) error {
	_, err := c.do(ctx, request{kind: "write", method: http.MethodDelete, path: "/" + entitySet + "(" + id + ")", idempotent: true})
	return err
}

// Get reads one row by primary key with $select.
func (c *Client) Get(ctx context.Context, entitySet, id, selectCols string) (Row, error) {
	p := "/" + entitySet + "(" + id + ")"
	if selectCols != "" {
		p += "?$select=" + selectCols
	}
	var row Row
	if err := c.getJSON(ctx, "read", p, &row); err != nil {
		return nil, err
	}
	return row, nil
}

// Query reads every row of a collection query (relative path with its query options), page by page with
// odata.maxpagesize, calling fn per row.
func (c *Client) Query(ctx context.Context, path string, pageSize int, fn func(Row) error) error {
	h := http.Header{"Prefer": {fmt.Sprintf("odata.maxpagesize=%d", pageSize)}, "If-None-Match": {"null"}}
	for path != "" {
		a, err := c.do(ctx, request{kind: "read", method: http.MethodGet, path: path, header: h, idempotent: true})
		if err != nil {
			return err
		}
		body := a.Body
		var page struct {
			Value    []Row  `json:"value"`
			NextLink string `json:"@odata.nextLink"`
		}
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&page); err != nil {
			return fmt.Errorf("dataverse GET %s: decoding a page: %w", path, err)
		}
		for _, r := range page.Value {
			if err := fn(r); err != nil {
				return err
			}
		}
		path = page.NextLink
	}
	return nil
}
