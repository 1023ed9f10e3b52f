package salesforce

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// Session returns the current session, requesting a token when there is none. It is the credentials
// check of preflight and the source of the Pub/Sub auth metadata.
func (c *Client) Session(ctx context.Context) (*Session, error) { return c.tokens.Session(ctx) }

// InvalidateSession drops a session that the API reported expired.
func (c *Client) InvalidateSession(accessToken string) { c.tokens.Invalidate(accessToken) }

// TokenFetches returns how many token requests the client made.
func (c *Client) TokenFetches() int { return c.tokens.Fetches() }

// FieldDescribe is the part of a describe field the sync uses.
type FieldDescribe struct {
	Name              string   `json:"name"`
	Type              string   `json:"type"`
	Length            int      `json:"length"`
	Nillable          bool     `json:"nillable"`
	Createable        bool     `json:"createable"`
	Updateable        bool     `json:"updateable"`
	Calculated        bool     `json:"calculated"`
	ReferenceTo       []string `json:"referenceTo"`
	RelationshipName  string   `json:"relationshipName"`
	CompoundFieldName string   `json:"compoundFieldName"`
}

// Describe is an sObject describe.
type Describe struct {
	Name      string          `json:"name"`
	Label     string          `json:"label"`
	KeyPrefix string          `json:"keyPrefix"`
	Queryable bool            `json:"queryable"`
	Fields    []FieldDescribe `json:"fields"`
}

// Field returns the named field (case-insensitive).
func (d *Describe) Field(name string) (FieldDescribe, bool) {
	for _, f := range d.Fields {
		if strings.EqualFold(f.Name, name) {
			return f, true
		}
	}
	return FieldDescribe{}, false
}

// SourceSchema converts the describe for mapping validation.
func (d *Describe) SourceSchema() *mapping.SourceSchema {
	s := &mapping.SourceSchema{Object: d.Name}
	for _, f := range d.Fields {
		s.Fields = append(s.Fields, mapping.SourceField{Name: f.Name, Type: f.Type, Length: f.Length, Nillable: f.Nillable,
			ReferenceTo: f.ReferenceTo, CompoundFieldName: f.CompoundFieldName})
	}
	return s
}

// Describe returns the describe of an sObject.
func (c *Client) Describe(ctx context.Context, object string) (*Describe, error) {
	var d Describe
	if err := c.getJSON(ctx, "rest.describe", c.dataPath("/sobjects/"+url.PathEscape(object)+"/describe"), nil, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Limit is one entry of /limits.
type Limit struct {
	Max       int64 `json:"Max"`
	Remaining int64 `json:"Remaining"`
}

// Limits returns the org's limits keyed by name (DailyApiRequests, DailyDeliveredPlatformEvents, ...).
func (c *Client) Limits(ctx context.Context) (map[string]Limit, error) {
	var raw map[string]json.RawMessage
	if err := c.getJSON(ctx, "rest.limits", c.dataPath("/limits"), nil, &raw); err != nil {
		return nil, err
	}
	out := make(map[string]Limit, len(raw))
	for k, v := range raw {
		var l Limit
		if json.Unmarshal(v, &l) == nil {
			out[k] = l
		}
	}
	return out, nil
}

// Record is one queried row: field name → value as JSON gives it (string, bool, json.Number, nil, or a
// nested map for parent relationships). The "attributes" entry is removed.
type Record map[string]any

// ID returns the record's Id.
func (r Record) ID() string { s, _ := r["Id"].(string); return s }

type queryPage struct {
	TotalSize      int               `json:"totalSize"`
	Done           bool              `json:"done"`
	NextRecordsURL string            `json:"nextRecordsUrl"`
	Records        []json.RawMessage `json:"records"`
}

// Query runs a SOQL query (queryAll when all is true, which includes soft-deleted rows), following
// nextRecordsUrl until done, and calls fn for each record in order. It returns totalSize.
func (c *Client) Query(ctx context.Context, soql string, all bool, fn func(Record) error) (int, error) {
	endpoint := "/query"
	if all {
		endpoint = "/queryAll"
	}
	path, query := c.dataPath(endpoint), url.Values{"q": {soql}}
	kind := "rest.query"
	total := 0
	for {
		resp, err := c.call(ctx, request{kind: kind, method: http.MethodGet, path: path, query: query, idempotent: true,
			header: http.Header{"Sforce-Query-Options": {"batchSize=2000"}}})
		if err != nil {
			return total, err
		}
		var page queryPage
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil {
			return total, fmt.Errorf("salesforce query: decoding a page: %w", err)
		}
		total = page.TotalSize
		for _, raw := range page.Records {
			rec, err := decodeRecord(raw)
			if err != nil {
				return total, err
			}
			if err := fn(rec); err != nil {
				return total, err
			}
		}
		if page.Done || page.NextRecordsURL == "" {
			return total, nil
		}
		path, query, kind = page.NextRecordsURL, nil, "rest.query_more"
	}
}

// Count runs a SELECT COUNT() query.
func (c *Client) Count(ctx context.Context, soql string) (int, error) {
	return c.Query(ctx, soql, false, func(Record) error { return nil })
}

func decodeRecord(raw json.RawMessage) (Record, error) {
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.UseNumber()
	var rec Record
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("salesforce query: decoding a record: %w", err)
	}
	delete(rec, "attributes")
	return rec, nil
}

// Retrieve reads records by Id with queryAll (deleted ones included, IsDeleted tells), in chunks that keep
// the SOQL under Salesforce's length limit. Ids not found are simply absent from the result (hard-deleted).
func (c *Client) Retrieve(ctx context.Context, object string, fields []string, ids []string, fn func(Record) error) error {
	fl := withFields(fields, "Id", "IsDeleted", "SystemModstamp")
	const chunk = 300
	for i := 0; i < len(ids); i += chunk {
		part := ids[i:min(i+chunk, len(ids))]
		quoted := make([]string, len(part))
		for j, id := range part {
			if !isIDLiteral(id) {
				return fmt.Errorf("salesforce retrieve: %q is not a record Id", id)
			}
			quoted[j] = "'" + id + "'"
		}
		soql := fmt.Sprintf("SELECT %s FROM %s WHERE Id IN (%s)", strings.Join(fl, ", "), object, strings.Join(quoted, ","))
		if _, err := c.Query(ctx, soql, true, fn); err != nil {
			return err
		}
	}
	return nil
}

func withFields(fields []string, extra ...string) []string {
	out := append([]string(nil), fields...)
	for _, e := range extra {
		found := false
		for _, f := range out {
			if strings.EqualFold(f, e) {
				found = true
			}
		}
		if !found {
			out = append(out, e)
		}
	}
	return out
}

func isIDLiteral(s string) bool {
	if len(s) != 15 && len(s) != 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if (ch < '0' || ch > '9') && (ch < 'a' || ch > 'z') && (ch < 'A' || ch > 'Z') {
			return false
		}
	}
	return true
}
