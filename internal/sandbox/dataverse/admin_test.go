package dataverse

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
)

// The admin API reads and counts rows as stored, exports a table as NDJSON, edits and
// deletes rows out of band as a person would (different modifiedby, modifiedon moves), and resets.
func TestAdminRowsOutOfBandEditsAndExport(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	env.mustStatus(env.call(http.MethodPatch, "accounts("+guidA+")", map[string]any{"name": "Acme"}), http.StatusNoContent)
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidB+")", map[string]any{"lastname": "Before", "parentcustomerid_account@odata.bind": "/accounts(" + guidA + ")"}), http.StatusNoContent)
	r := env.mustStatus(env.call(http.MethodGet, "contacts("+guidB+")", nil), http.StatusOK)
	etagBefore, modifiedBefore := r.header.Get("ETag"), r.json(t)["modifiedon"]

	var count map[string]int
	if status := env.adminCall(http.MethodGet, "/tables/contact/count", nil, &count); status != http.StatusOK || count["count"] != 1 {
		t.Fatalf("count: %d %v", status, count)
	}
	var row map[string]any
	env.adminCall(http.MethodGet, "/tables/contacts/rows/"+guidB, nil, &row)
	if row["lastname"] != "Before" || row["parentcustomerid"] != guidA || row["parentcustomeridtype"] != "account" || row["modifiedby"] != env.emu.ApplicationUserID() {
		t.Fatalf("row as stored: %v", row)
	}

	env.clock.Advance(2 * time.Minute)
	if status := env.adminCall(http.MethodPatch, "/tables/contact/rows/"+guidB, map[string]any{"lastname": "Edited by hand", "parentcustomerid": map[string]any{"table": "contact", "id": guidB}}, &row); status != http.StatusOK {
		t.Fatalf("out-of-band edit: %d %v", status, row)
	}
	r = env.mustStatus(env.call(http.MethodGet, "contacts("+guidB+")?$select=lastname,modifiedon,_modifiedby_value,_parentcustomerid_value", nil), http.StatusOK)
	m := r.json(t)
	if m["lastname"] != "Edited by hand" || m["_modifiedby_value"] != env.emu.PersonUserID() || m["modifiedon"] == modifiedBefore ||
		r.header.Get("ETag") == etagBefore || m["_parentcustomerid_value"] != guidB {
		t.Fatalf("after the out-of-band edit: %s (ETag %s)", r.raw, r.header.Get("ETag"))
	}
	if status := env.adminCall(http.MethodPatch, "/tables/contact/rows/"+guidB, map[string]any{"lastname": strings.Repeat("x", 51)}, &row); status != http.StatusBadRequest {
		t.Errorf("out-of-band edit over MaxLength: %d", status)
	}
	if status := env.adminCall(http.MethodPatch, "/tables/contact/rows/"+guidC, map[string]any{"lastname": "x"}, &row); status != http.StatusNotFound {
		t.Errorf("edit of a missing row: %d", status)
	}
	var created map[string]string
	if status := env.adminCall(http.MethodPost, "/tables/contact/rows", map[string]any{"id": guidC, "values": map[string]any{"lastname": "Hand made"}}, &created); status != http.StatusCreated || created["id"] != guidC {
		t.Fatalf("out-of-band create: %d %v", status, created)
	}

	resp, err := env.client.Get(env.admin.URL + "/tables/contact/export")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Errorf("export Content-Type %q", resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	var ids []string
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		ids = append(ids, line["contactid"].(string))
	}
	if len(ids) != 2 || ids[0] != guidB || ids[1] != guidC {
		t.Fatalf("export ids %v (want primary-key order)", ids)
	}
	var rows struct{ Rows []map[string]any }
	env.adminCall(http.MethodGet, "/tables/contact/rows?limit=1&after="+guidB, nil, &rows)
	if len(rows.Rows) != 1 || rows.Rows[0]["contactid"] != guidC {
		t.Errorf("rows after %s: %v", guidB, rows.Rows)
	}

	if status := env.adminCall(http.MethodDelete, "/tables/contact/rows/"+guidB, nil, nil); status != http.StatusNoContent {
		t.Fatalf("out-of-band delete: %d", status)
	}
	env.mustStatus(env.call(http.MethodGet, "contacts("+guidB+")", nil), http.StatusNotFound)
	var notFound map[string]any
	if status := env.adminCall(http.MethodGet, "/tables/nosuch/count", nil, &notFound); status != http.StatusNotFound || notFound["error"] == nil {
		t.Errorf("unknown table: %d", status)
	}

	var reset map[string]string
	if status := env.adminCall(http.MethodPost, "/reset", nil, &reset); status != http.StatusOK {
		t.Fatalf("reset: %d", status)
	}
	if n, _ := env.emu.Count("contact"); n != 0 {
		t.Errorf("rows after reset: %d", n)
	}
	if c := env.emu.Counters(); c["read"] != 0 || c["single_write"] != 0 {
		t.Errorf("counters after reset: %v", c)
	}
	env.mustStatus(env.call(http.MethodGet, "WhoAmI", nil), http.StatusOK) // tokens survive a reset
}

// Limits and faults are set through the admin API; injected failures use the Web API's
// error shape; counters are kept by kind.
func TestAdminLimitsFaultsAndCounters(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	var l Limits
	if status := env.adminCall(http.MethodPut, "/limits", map[string]any{"requests": 100, "concurrency": 4, "dop_hint": 2, "window": "30s", "costs": map[string]any{"write": "1ms"}}, &l); status != http.StatusOK {
		t.Fatalf("PUT /limits: %d", status)
	}
	if l.Requests != 100 || l.Concurrency != 4 || l.DOPHint != 2 || time.Duration(l.Window) != 30*time.Second || time.Duration(l.Costs.Write) != time.Millisecond ||
		time.Duration(l.ExecutionTime) != 20*time.Minute {
		t.Fatalf("limits = %+v", l)
	}
	if got := env.call(http.MethodGet, "WhoAmI", nil).header.Get("x-ms-dop-hint"); got != "2" {
		t.Errorf("dop hint %q", got)
	}

	var fs struct {
		Config faults.Config
		Counts faults.Counts
	}
	if status := env.adminCall(http.MethodPut, "/faults", faults.Config{ErrorRate: 1, ErrorStatus: 503, RetryAfter: 2 * time.Second, Limit: 1}, &fs); status != http.StatusOK {
		t.Fatalf("PUT /faults: %d", status)
	}
	r := env.call(http.MethodGet, "WhoAmI", nil)
	if r.status != http.StatusServiceUnavailable || r.errorCode(t) == "" || r.header.Get("Retry-After") != "2" {
		t.Fatalf("injected 503: %d %v %s", r.status, r.header, r.raw)
	}
	env.mustStatus(env.call(http.MethodGet, "WhoAmI", nil), http.StatusOK) // Limit 1: the fault is spent
	env.adminCall(http.MethodGet, "/faults", nil, &fs)
	if fs.Counts.Errors != 1 {
		t.Errorf("fault counts = %+v", fs.Counts)
	}
	if status := env.adminCall(http.MethodPut, "/faults", map[string]any{"error_rate": 2}, &fs); status != http.StatusBadRequest {
		t.Errorf("error_rate 2 accepted: %d", status)
	}
	// Connection resets reach the client as transport errors (a POST, which net/http does not replay).
	env.emu.Faults().Set(faults.Config{ResetRate: 1, Limit: 1})
	req, _ := http.NewRequest(http.MethodPost, env.api.URL+"/api/data/v9.2/contacts", strings.NewReader(`{"lastname":"reset"}`))
	req.Header.Set("Authorization", "Bearer "+env.token)
	if resp, err := env.client.Do(req); err == nil {
		resp.Body.Close()
		t.Error("a reset fault answered normally")
	}
	env.emu.Faults().Reset()
	if n, _ := env.emu.Count("contact"); n != 0 {
		t.Errorf("the reset request was applied")
	}

	env.mustStatus(env.call(http.MethodGet, "contacts", nil), http.StatusOK)
	env.mustStatus(env.call(http.MethodGet, "EntityDefinitions(LogicalName='contact')", nil), http.StatusOK)
	env.mustStatus(env.call(http.MethodPost, "contacts", map[string]any{"lastname": "c"}), http.StatusNoContent)
	var counters map[string]int64
	env.adminCall(http.MethodGet, "/counters", nil, &counters)
	// The injected 503 never reached the handler, so it is not a WhoAmI.
	for k, want := range map[string]int64{"token": 1, "whoami": 2, "read": 1, "metadata": 1, "single_write": 1} {
		if counters[k] != want {
			t.Errorf("counter %s = %d, want %d (all: %v)", k, counters[k], want, counters)
		}
	}
	var teams struct{ Teams []teamView }
	env.adminCall(http.MethodGet, "/teams", nil, &teams)
	if len(teams.Teams) != 2 {
		t.Errorf("teams: %+v", teams)
	}
	var cols struct{ Columns []ColumnInfo }
	env.adminCall(http.MethodGet, "/tables/account/columns", nil, &cols)
	if len(cols.Columns) < 20 {
		t.Errorf("columns: %d", len(cols.Columns))
	}
}

// An out-of-band deactivation keeps statecode and statuscode consistent, so later API writes still work.
func TestOutOfBandStateChangeKeepsStatusConsistent(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidA+")", map[string]any{"lastname": "L"}), http.StatusNoContent)
	if err := env.emu.EditRow("contact", guidA, map[string]any{"statecode": 1}); err != nil {
		t.Fatal(err)
	}
	row, _ := env.emu.Row("contact", guidA)
	if row["statecode"] != int64(1) || row["statuscode"] != int64(2) {
		t.Fatalf("after deactivation: %v", row)
	}
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidA+")", map[string]any{"firstname": "Still writable"}), http.StatusNoContent)
	if err := env.emu.EditRow("contact", guidA, map[string]any{"statecode": 0, "statuscode": 2}); err == nil {
		t.Error("an inconsistent state and status were accepted")
	}
	if err := env.emu.EditRow("contact", guidA, map[string]any{"nosuchcolumn": 1}); err == nil {
		t.Error("an unknown column was accepted")
	}
}
