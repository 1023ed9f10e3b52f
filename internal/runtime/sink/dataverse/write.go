package dataverse

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
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

// bulkBody builds {"Targets":[...]} with "@odata.type" first in every target, without copying the rows.
func bulkBody(table string, rows []Row) ([]byte, error) {
	b := make([]byte, 0, len(rows)*400)
	b = append(b, `{"Targets":[`...)
	typ := `{"@odata.type":"Microsoft.Dynamics.CRM.` + table + `"`
	var err error
	for i, r := range rows {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, typ...)
		if len(r) > 0 {
			b = append(b, ',')
			if b, err = appendRow(b, r); err != nil {
				return nil, fmt.Errorf("encoding row %d: %w", i, err)
			}
		}
		b = append(b, '}')
	}
	return append(b, `]}`...), nil
}

// Bulk sends UpsertMultiple or UpdateMultiple of rows of one table: one request, one transaction (any
// failing row fails them all, and the error says which message failed, not which row).
func (c *Client) Bulk(ctx context.Context, message, table, entitySet string, rows []Row) error {
	if len(rows) == 0 {
		return nil
	}
	body, err := bulkBody(table, rows)
	if err != nil {
		return err
	}
	_, err = c.do(ctx, request{kind: "bulk", method: http.MethodPost, path: "/" + entitySet + "/Microsoft.Dynamics.CRM." + message,
		body: body, idempotent: true})
	if err == nil {
		c.Stats.add("bulk_rows", int64(len(rows)))
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
	body, err := json.Marshal(row)
	if err != nil {
		return err
	}
	h := http.Header{}
	if condition != "" {
		h.Set(condition, "*")
	}
	_, err = c.do(ctx, request{kind: "write", method: http.MethodPatch, path: "/" + entitySet + "(" + id + ")", body: body, header: h, idempotent: true})
	return err
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
