package dataverse

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/jsonrow"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
)

// The admin API lets tests and the demo look at and change the environment behind the Web API's back:
// rows as stored, out-of-band edits and deletes (as a person would make them), custom columns, team
// privileges, bulk-message availability, limits, faults, 429 storms, counters and reset. Every operation is
// also a Go method for in-process tests. docs/sandbox-dataverse.md documents the HTTP form.

// ErrNotFound is returned by the admin methods for a missing table or row.
var ErrNotFound = errors.New("not found")

func (e *Emulator) adminTable(name string) (*table, error) {
	t := e.byLogical[name]
	if t == nil {
		t = e.bySet[name]
	}
	if t == nil {
		return nil, fmt.Errorf("table %q: %w", name, ErrNotFound)
	}
	return t, nil
}

// appendStored renders a row as stored: every non-null readable column by logical name, lookups as GUIDs
// (their EntityName column says which table), datetimes in UTC.
func (e *Emulator) appendStored(b []byte, v *rowView) []byte {
	b = append(b, '{')
	first := true
	for _, c := range v.t.cols {
		if !c.ValidRead {
			continue
		}
		val := v.get(c)
		if val.isNull() {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = jsonrow.AppendString(b, c.Logical)
		b = append(b, ':')
		b = appendValue(b, val)
	}
	return append(b, '}')
}

func (e *Emulator) storedMap(v *rowView) map[string]any {
	out := map[string]any{}
	for _, c := range v.t.cols {
		if !c.ValidRead {
			continue
		}
		if val := v.get(c); !val.isNull() {
			out[c.Logical] = plain(val)
		}
	}
	return out
}

// Row returns one row as stored (logical names; null columns omitted).
func (e *Emulator) Row(table, id string) (map[string]any, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	t, err := e.adminTable(table)
	if err != nil {
		return nil, err
	}
	g, ok := parseGUID(id)
	if !ok {
		return nil, fmt.Errorf("row id %q is not a GUID", id)
	}
	slot, ok := t.lookup(g)
	if !ok {
		return nil, fmt.Errorf("%s row %s: %w", t.Logical, id, ErrNotFound)
	}
	var v rowView
	v.e = e
	v.load(t, slot)
	return e.storedMap(&v), nil
}

// Count returns the number of rows in a table.
func (e *Emulator) Count(table string) (int, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	t, err := e.adminTable(table)
	if err != nil {
		return 0, err
	}
	return t.count(), nil
}

// sortedSlots returns the live slots of t in primary-key order. Callers hold the lock.
func sortedSlots(t *table) []uint32 {
	slots := make([]uint32, 0, t.count())
	for i := range t.rows {
		if t.rows[i].live {
			slots = append(slots, uint32(i))
		}
	}
	sort.Slice(slots, func(a, b int) bool { return compareBytes(t.rows[slots[a]].id, t.rows[slots[b]].id) < 0 })
	return slots
}

// Rows returns up to limit rows as stored, in primary-key order, starting after the row id after ("" from the
// start). limit <= 0 means every row.
func (e *Emulator) Rows(table, after string, limit int) ([]map[string]any, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	t, err := e.adminTable(table)
	if err != nil {
		return nil, err
	}
	var from [16]byte
	if after != "" {
		g, ok := parseGUID(after)
		if !ok {
			return nil, fmt.Errorf("after %q is not a GUID", after)
		}
		from = g
	}
	out := []map[string]any{}
	var v rowView
	v.e = e
	for _, slot := range sortedSlots(t) {
		if after != "" && compareBytes(t.rows[slot].id, from) <= 0 {
			continue
		}
		if limit > 0 && len(out) >= limit {
			break
		}
		v.load(t, slot)
		out = append(out, e.storedMap(&v))
	}
	return out, nil
}

// ExportNDJSON writes every row of a table as stored, one JSON object per line, in primary-key order, for
// whole-dataset comparisons. The read lock is held while writing.
func (e *Emulator) ExportNDJSON(table string, w io.Writer) error {
	e.mu.RLock()
	defer e.mu.RUnlock()
	t, err := e.adminTable(table)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	var v rowView
	v.e = e
	var b []byte
	for _, slot := range sortedSlots(t) {
		v.load(t, slot)
		b = e.appendStored(b[:0], &v)
		b = append(b, '\n')
		if _, err := bw.Write(b); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// adminValues converts admin-API values (logical names; lookups as a GUID string when the column has one
// target, or {"table": "...", "id": "..."}) into changes, validating like the Web API.
func (e *Emulator) adminValues(t *table, values map[string]any) ([]change, error) {
	names := make([]string, 0, len(values))
	for k := range values {
		names = append(names, k)
	}
	sort.Strings(names)
	var changes []change
	for _, name := range names {
		raw := values[name]
		c := t.byLogical[name]
		if c == nil || c.src != srcBlob {
			return nil, fmt.Errorf("%s has no writable column %q", t.Logical, name)
		}
		if isLookup(c) {
			v, err := e.adminLookup(c, raw)
			if err != nil {
				return nil, err
			}
			changes = append(changes, change{col: c, val: v})
			continue
		}
		v, aerr := convertIn(t, c, jsonNumbers(raw), &e.set)
		if aerr != nil {
			return nil, errors.New(aerr.message)
		}
		changes = append(changes, change{col: c, val: v})
	}
	return changes, nil
}

// jsonNumbers turns float64/int values from Go callers into json.Number, as payload parsing yields.
func jsonNumbers(v any) any {
	switch x := v.(type) {
	case float64:
		return json.Number(strconv.FormatFloat(x, 'f', -1, 64))
	case int:
		return json.Number(strconv.Itoa(x))
	case int64:
		return json.Number(strconv.FormatInt(x, 10))
	}
	return v
}

func (e *Emulator) adminLookup(c *column, raw any) (value, error) {
	if raw == nil {
		return value{}, nil
	}
	target, idText := "", ""
	switch x := raw.(type) {
	case string:
		if len(c.Targets) != 1 {
			return value{}, fmt.Errorf("column %s targets %v: give {\"table\": ..., \"id\": ...}", c.Logical, c.Targets)
		}
		target, idText = c.Targets[0], x
	case map[string]any:
		target, _ = x["table"].(string)
		idText, _ = x["id"].(string)
	default:
		return value{}, fmt.Errorf("column %s: a lookup is a GUID string or {\"table\": ..., \"id\": ...}", c.Logical)
	}
	ok := false
	for _, tt := range c.Targets {
		ok = ok || tt == target
	}
	if !ok {
		return value{}, fmt.Errorf("column %s targets %v, not %q", c.Logical, c.Targets, target)
	}
	id, valid := parseGUID(idText)
	if !valid {
		return value{}, fmt.Errorf("column %s: %q is not a GUID", c.Logical, idText)
	}
	tt := e.byLogical[target]
	if _, exists := tt.lookup(id); !exists {
		return value{}, fmt.Errorf("%s row %s: %w", target, idText, ErrNotFound)
	}
	return guidRef(tt, id), nil
}

// EditRow changes a row out of band, as a person editing it in Dataverse would: modifiedby becomes the
// person user, modifiedon moves to now and the version (ETag) changes.
func (e *Emulator) EditRow(table, id string, values map[string]any) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, err := e.adminTable(table)
	if err != nil {
		return err
	}
	g, ok := parseGUID(id)
	if !ok {
		return fmt.Errorf("row id %q is not a GUID", id)
	}
	slot, ok := t.lookup(g)
	if !ok {
		return fmt.Errorf("%s row %s: %w", t.Logical, id, ErrNotFound)
	}
	changes, err := e.adminValues(t, values)
	if err != nil {
		return err
	}
	vals := make([]value, t.nslots)
	old := t.rows[slot]
	t.decode(t.arena.get(old.ref), vals)
	stateSet, statusSet := false, false
	for _, ch := range changes {
		vals[ch.col.slot] = ch.val
		stateSet = stateSet || ch.col.Logical == "statecode"
		statusSet = statusSet || ch.col.Logical == "statuscode"
	}
	// A person deactivating a row in the UI sets state and status together, as the Web API keeps them.
	if aerr := e.fixState(t, g, vals, false, stateSet, statusSet); aerr != nil {
		return errors.New(aerr.message)
	}
	tx := &txn{e: e}
	r := old
	r.modified, r.version, r.modifiedBy = e.clock.Now().Unix(), e.nextVersion(), userPerson
	r.ref = t.arena.put(t.encode(nil, vals))
	tx.replace(t, slot, r)
	tx.commit()
	return nil
}

// CreateRow inserts a row out of band, created by the person user; id may be empty to generate one.
func (e *Emulator) CreateRow(table, id string, values map[string]any) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, err := e.adminTable(table)
	if err != nil {
		return "", err
	}
	if t.system {
		return "", fmt.Errorf("%s is maintained by the emulator", t.Logical)
	}
	g := e.newID()
	if id != "" {
		var ok bool
		if g, ok = parseGUID(id); !ok {
			return "", fmt.Errorf("row id %q is not a GUID", id)
		}
	}
	if _, exists := t.lookup(g); exists {
		return "", fmt.Errorf("%s row %s already exists", t.Logical, guidString(g))
	}
	changes, err := e.adminValues(t, values)
	if err != nil {
		return "", err
	}
	vals := make([]value, t.nslots)
	for _, ch := range changes {
		vals[ch.col.slot] = ch.val
	}
	if oc := t.col("ownerid"); oc != nil && vals[oc.slot].isNull() {
		vals[oc.slot] = e.userValue(userPerson)
	}
	if sc := t.col("statecode"); sc != nil && vals[sc.slot].isNull() {
		vals[sc.slot] = value{kind: vInt}
	}
	if uc := t.col("statuscode"); uc != nil && vals[uc.slot].isNull() {
		vals[uc.slot] = value{kind: vInt, i: 1}
	}
	now := e.clock.Now().Unix()
	tx := &txn{e: e}
	tx.insert(t, row{id: g, created: now, modified: now, version: e.nextVersion(), ref: t.arena.put(t.encode(nil, vals)),
		createdBy: userPerson, modifiedBy: userPerson})
	tx.commit()
	return guidString(g), nil
}

// DeleteRow deletes a row out of band.
func (e *Emulator) DeleteRow(table, id string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, err := e.adminTable(table)
	if err != nil {
		return err
	}
	if t.system {
		return fmt.Errorf("%s is maintained by the emulator", t.Logical)
	}
	g, ok := parseGUID(id)
	if !ok {
		return fmt.Errorf("row id %q is not a GUID", id)
	}
	slot, ok := t.lookup(g)
	if !ok {
		return fmt.Errorf("%s row %s: %w", t.Logical, id, ErrNotFound)
	}
	tx := &txn{e: e}
	tx.remove(t, slot)
	tx.commit()
	return nil
}

// AddColumn adds a custom column to contact or account; metadata, writes and reads know it at once.
func (e *Emulator) AddColumn(table string, spec CustomColumn) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	t, err := e.adminTable(table)
	if err != nil {
		return err
	}
	c, err := customColumn(t, spec)
	if err != nil {
		return err
	}
	(&tableBuilder{t: t}).add(c)
	t.slotCols = append(t.slotCols, c)
	return nil
}

// Limits returns the service-protection limits in force.
func (e *Emulator) Limits() Limits { return e.prot.currentLimits() }

// SetLimits replaces the limits (zero fields take the defaults); usage counted so far is kept.
func (e *Emulator) SetLimits(l Limits) {
	e.prot.setLimits(l)
	e.log.Info("dataverse limits changed", "requests", l.Requests, "concurrency", l.Concurrency)
}

// SetStorm starts a 429 storm (see Storm); a zero Storm ends one.
func (e *Emulator) SetStorm(s Storm) error { return e.prot.setStorm(s) }

// Behaviour returns the switches for unverified behaviour.
func (e *Emulator) Behaviour() Behaviour {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.behaviour
}

// SetBehaviour replaces the switches for unverified behaviour (until Reset).
func (e *Emulator) SetBehaviour(b Behaviour) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.behaviour = b
	e.set = b.settings()
}

type teamView struct {
	ID         string   `json:"id"`
	Name       string   `json:"name"`
	Privileges []string `json:"privileges"`
}

func (e *Emulator) teamViews() []teamView {
	e.mu.RLock()
	ids := make([][16]byte, 0, len(e.teams))
	for id := range e.teams {
		ids = append(ids, id)
	}
	e.mu.RUnlock()
	sort.Slice(ids, func(a, b int) bool { return compareBytes(ids[a], ids[b]) < 0 })
	var out []teamView
	for _, id := range ids {
		privs, _ := e.TeamPrivileges(guidString(id))
		e.mu.RLock()
		name := e.teams[id].name
		e.mu.RUnlock()
		out = append(out, teamView{ID: guidString(id), Name: name, Privileges: privs})
	}
	return out
}

func (e *Emulator) adminMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		counts := map[string]int{}
		for _, name := range []string{"contact", "account"} {
			counts[name], _ = e.Count(name)
		}
		adminJSON(w, http.StatusOK, map[string]any{
			"environment_url": e.cfg.EnvironmentURL, "authority_url": e.cfg.AuthorityURL, "tenant_id": e.cfg.TenantID,
			"client_id": e.cfg.ClientID, "organization_id": e.cfg.OrganizationID, "business_unit_id": e.BusinessUnitID(),
			"application_user_id": e.ApplicationUserID(), "person_user_id": e.PersonUserID(),
			"team_id": e.TeamID(), "team_without_privileges_id": e.TeamWithoutPrivilegesID(), "rows": counts,
			"application_users": e.applicationUserIDs(),
		})
	})
	mux.HandleFunc("GET /tables/{table}/count", func(w http.ResponseWriter, r *http.Request) {
		n, err := e.Count(r.PathValue("table"))
		if err != nil {
			adminError(w, err)
			return
		}
		adminJSON(w, http.StatusOK, map[string]int{"count": n})
	})
	mux.HandleFunc("GET /tables/{table}/rows", func(w http.ResponseWriter, r *http.Request) {
		limit := 1000
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				adminError(w, fmt.Errorf("limit %q must be a non-negative integer (0 = all)", s))
				return
			}
			limit = n
		}
		rows, err := e.Rows(r.PathValue("table"), r.URL.Query().Get("after"), limit)
		if err != nil {
			adminError(w, err)
			return
		}
		adminJSON(w, http.StatusOK, map[string]any{"rows": rows})
	})
	mux.HandleFunc("GET /tables/{table}/rows/{id}", func(w http.ResponseWriter, r *http.Request) {
		row, err := e.Row(r.PathValue("table"), r.PathValue("id"))
		if err != nil {
			adminError(w, err)
			return
		}
		adminJSON(w, http.StatusOK, row)
	})
	mux.HandleFunc("POST /tables/{table}/rows", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			ID     string         `json:"id"`
			Values map[string]any `json:"values"`
		}
		if !decodeAdmin(w, r, &req) {
			return
		}
		id, err := e.CreateRow(r.PathValue("table"), req.ID, req.Values)
		if err != nil {
			adminError(w, err)
			return
		}
		adminJSON(w, http.StatusCreated, map[string]string{"id": id})
	})
	mux.HandleFunc("PATCH /tables/{table}/rows/{id}", func(w http.ResponseWriter, r *http.Request) {
		var values map[string]any
		if !decodeAdmin(w, r, &values) {
			return
		}
		if err := e.EditRow(r.PathValue("table"), r.PathValue("id"), values); err != nil {
			adminError(w, err)
			return
		}
		row, err := e.Row(r.PathValue("table"), r.PathValue("id"))
		if err != nil {
			adminError(w, err)
			return
		}
		adminJSON(w, http.StatusOK, row)
	})
	mux.HandleFunc("DELETE /tables/{table}/rows/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := e.DeleteRow(r.PathValue("table"), r.PathValue("id")); err != nil {
			adminError(w, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /tables/{table}/export", func(w http.ResponseWriter, r *http.Request) {
		if _, err := e.Count(r.PathValue("table")); err != nil {
			adminError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/x-ndjson")
		if err := e.ExportNDJSON(r.PathValue("table"), w); err != nil {
			e.log.Warn("dataverse export interrupted", "table", r.PathValue("table"), "error", err)
		}
	})
	mux.HandleFunc("GET /tables/{table}/columns", func(w http.ResponseWriter, r *http.Request) {
		cols, err := e.Columns(r.PathValue("table"))
		if err != nil {
			adminError(w, err)
			return
		}
		adminJSON(w, http.StatusOK, map[string]any{"columns": cols})
	})
	mux.HandleFunc("POST /tables/{table}/columns", func(w http.ResponseWriter, r *http.Request) {
		var spec CustomColumn
		if !decodeAdmin(w, r, &spec) {
			return
		}
		if err := e.AddColumn(r.PathValue("table"), spec); err != nil {
			adminError(w, err)
			return
		}
		adminJSON(w, http.StatusCreated, spec)
	})
	mux.HandleFunc("GET /teams", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusOK, map[string]any{"teams": e.teamViews()})
	})
	mux.HandleFunc("POST /teams/{id}/privileges", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Grant  []string `json:"grant"`
			Revoke []string `json:"revoke"`
			Depth  string   `json:"depth"`
		}
		if !decodeAdmin(w, r, &req) {
			return
		}
		id := r.PathValue("id")
		if len(req.Grant) > 0 {
			if err := e.GrantTeamPrivileges(id, req.Depth, req.Grant...); err != nil {
				adminError(w, err)
				return
			}
		}
		if len(req.Revoke) > 0 {
			if err := e.RevokeTeamPrivileges(id, req.Revoke...); err != nil {
				adminError(w, err)
				return
			}
		}
		privs, err := e.TeamPrivileges(id)
		if err != nil {
			adminError(w, err)
			return
		}
		adminJSON(w, http.StatusOK, teamView{ID: id, Privileges: privs})
	})
	mux.HandleFunc("GET /bulk-messages", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusOK, e.BulkMessages())
	})
	mux.HandleFunc("PUT /bulk-messages", func(w http.ResponseWriter, r *http.Request) {
		var req map[string]map[string]bool
		if !decodeAdmin(w, r, &req) {
			return
		}
		for tbl, msgs := range req {
			for msg, on := range msgs {
				if err := e.SetBulkMessage(tbl, msg, on); err != nil {
					adminError(w, err)
					return
				}
			}
		}
		adminJSON(w, http.StatusOK, e.BulkMessages())
	})
	mux.HandleFunc("GET /limits", func(w http.ResponseWriter, r *http.Request) { adminJSON(w, http.StatusOK, e.Limits()) })
	mux.HandleFunc("PUT /limits", func(w http.ResponseWriter, r *http.Request) {
		var l Limits
		if !decodeAdmin(w, r, &l) {
			return
		}
		e.SetLimits(l)
		adminJSON(w, http.StatusOK, e.Limits())
	})
	mux.HandleFunc("GET /behaviour", func(w http.ResponseWriter, r *http.Request) { adminJSON(w, http.StatusOK, e.Behaviour()) })
	mux.HandleFunc("PUT /behaviour", func(w http.ResponseWriter, r *http.Request) {
		var b Behaviour
		if !decodeAdmin(w, r, &b) {
			return
		}
		e.SetBehaviour(b)
		adminJSON(w, http.StatusOK, e.Behaviour())
	})
	mux.HandleFunc("GET /faults", func(w http.ResponseWriter, r *http.Request) {
		adminJSON(w, http.StatusOK, map[string]any{"config": e.faults.Config(), "counts": e.faults.Counts()})
	})
	mux.HandleFunc("PUT /faults", func(w http.ResponseWriter, r *http.Request) {
		var cfg faults.Config
		if !decodeAdmin(w, r, &cfg) {
			return
		}
		if cfg.ErrorRate < 0 || cfg.ResetRate < 0 || cfg.TruncateRate < 0 || cfg.ErrorRate+cfg.ResetRate+cfg.TruncateRate > 1 {
			adminError(w, fmt.Errorf("error_rate, reset_rate and truncate_rate must be fractions summing to at most 1"))
			return
		}
		e.faults.Set(cfg)
		adminJSON(w, http.StatusOK, map[string]any{"config": e.faults.Config(), "counts": e.faults.Counts()})
	})
	mux.HandleFunc("PUT /throttle", func(w http.ResponseWriter, r *http.Request) {
		var s Storm
		if !decodeAdmin(w, r, &s) {
			return
		}
		if err := e.SetStorm(s); err != nil {
			adminError(w, err)
			return
		}
		adminJSON(w, http.StatusOK, s)
	})
	mux.HandleFunc("DELETE /throttle", func(w http.ResponseWriter, r *http.Request) {
		_ = e.SetStorm(Storm{})
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /counters", func(w http.ResponseWriter, r *http.Request) { adminJSON(w, http.StatusOK, e.Counters()) })
	mux.HandleFunc("POST /reset", func(w http.ResponseWriter, r *http.Request) {
		if err := e.Reset(); err != nil {
			adminJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
			return
		}
		adminJSON(w, http.StatusOK, map[string]string{"status": "reset"})
	})
	return mux
}

// ColumnInfo summarizes a column for the admin API.
type ColumnInfo struct {
	LogicalName   string   `json:"logical_name"`
	AttributeType string   `json:"attribute_type"`
	MaxLength     int      `json:"max_length,omitempty"`
	RequiredLevel string   `json:"required_level"`
	Targets       []string `json:"targets,omitempty"`
	Custom        bool     `json:"custom,omitempty"`
}

// Columns lists a table's columns.
func (e *Emulator) Columns(table string) ([]ColumnInfo, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	t, err := e.adminTable(table)
	if err != nil {
		return nil, err
	}
	out := make([]ColumnInfo, 0, len(t.cols))
	for _, c := range t.cols {
		out = append(out, ColumnInfo{LogicalName: c.Logical, AttributeType: c.Type, MaxLength: c.MaxLength,
			RequiredLevel: c.Required, Targets: c.Targets, Custom: c.Custom})
	}
	return out, nil
}

func decodeAdmin(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		adminJSON(w, http.StatusBadRequest, map[string]string{"error": "reading the request body: " + err.Error()})
		return false
	}
	return true
}

func adminError(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	if errors.Is(err, ErrNotFound) {
		status = http.StatusNotFound
	}
	adminJSON(w, status, map[string]string{"error": err.Error()})
}

func adminJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
