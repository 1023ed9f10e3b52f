package salesforce

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

func adminOK(t *testing.T, o *testOrg, method, path, body string) map[string]any {
	t.Helper()
	resp, b := o.adminDo(method, path, body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	var out map[string]any
	mustJSON(t, b, &out)
	return out
}

// Admin requests are decoded strictly and errors are {"error": "..."} with 400.
func TestAdminRequestsAreDecodedStrictly(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/generate", `{"object":"Contact","count":1,"colour":"red"}`},
		{"POST", "/generate", `{"object":"Contact","count":1} {}`},
		{"POST", "/generate", `{"object":"Lead","count":1}`},
		{"POST", "/generate", `{"object":"Contact","count":0}`},
		{"POST", "/transaction", `{"operations":[{"op":"merge","object":"Contact","id":"x"}]}`},
		{"POST", "/transaction", `{"operations":[{"op":"create","object":"Contact","fields":{"LastName":null}}]}`},
		{"PUT", "/settings", `{"token_lifetime":"soon"}`},
		{"PUT", "/faults", `{"error_rate":2}`},
		{"POST", "/fields", `{"object":"Contact","field":{"name":"NoSuffix","type":"string"}}`},
		{"POST", "/gaps", `{"object":"Contact","change_type":"GAP_UPDATE","fields":{"Title":"x"}}`},
	} {
		resp, b := o.adminDo(tc.method, tc.path, tc.body)
		var e map[string]string
		if err := json.Unmarshal(b, &e); err != nil || resp.StatusCode != http.StatusBadRequest || e["error"] == "" || len(e) != 1 {
			t.Errorf("%s %s %s: %d %s, want 400 {\"error\": ...}", tc.method, tc.path, tc.body, resp.StatusCode, b)
		}
	}
	if resp, b := o.adminDo("GET", "/nope", ""); resp.StatusCode != http.StatusNotFound || !strings.Contains(string(b), `"error"`) {
		t.Errorf("unknown endpoint: %d %s", resp.StatusCode, b)
	}
	if o.e.log.Len() != 0 {
		t.Errorf("rejected admin requests appended %d events", o.e.log.Len())
	}
}

// The admin API drives every point of the emulator over HTTP: records, fields, events, tokens, settings,
// limits, faults, counters, export and reset.
func TestAdminEndpoints(t *testing.T) {
	o := newTestOrg(t, 20, 4)
	gen := adminOK(t, o, "POST", "/generate", `{"object":"Account","count":3}`)
	accounts := gen["ids"].([]any)[0].([]any)
	if len(accounts) != 3 || len(gen["replay_ids"].([]any)) != 3 {
		t.Fatalf("generate = %v", gen)
	}
	tx := adminOK(t, o, "POST", "/transaction", `{"operations":[
		{"op":"create","object":"Contact","records":[{"LastName":"One"},{"LastName":"Two","AccountId":"`+accounts[0].(string)+`"}]},
		{"op":"update","object":"Account","ids":["`+accounts[1].(string)+`","`+accounts[2].(string)+`"],"fields":{"Phone":"+47 1"}},
		{"op":"delete","object":"Account","id":"`+accounts[2].(string)+`"}]}`)
	ids := tx["ids"].([]any)
	// Two creates, one merged update of the two accounts (the same change), one delete.
	if len(ids[0].([]any)) != 2 || len(ids[1].([]any)) != 2 || len(tx["replay_ids"].([]any)) != 4 {
		t.Errorf("transaction = %v", tx)
	}
	if res := adminOK(t, o, "POST", "/mutate", `{"object":"Contact","count":5,"omit_ids":true}`); res["count"] != 5.0 {
		t.Errorf("mutate = %v", res)
	}
	ev := adminOK(t, o, "GET", "/events?limit=2", "")
	if events := ev["events"].([]any); len(events) != 2 || events[0].(map[string]any)["change_type"] != "CREATE" {
		t.Errorf("events = %v", ev)
	}

	adminOK(t, o, "POST", "/fields", `{"object":"Contact","field":{"name":"Region__c","type":"string","length":40}}`)
	resp, body := o.do(http.MethodPatch, "/services/data/v62.0/sobjects/Contact/"+ids[0].([]any)[0].(string), `{"Region__c":"EMEA"}`)
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("writing the custom field: %d %s", resp.StatusCode, body)
	}
	if p := o.query("SELECT Id, Region__c FROM Contact WHERE Region__c = 'EMEA'", false); p.TotalSize != 1 {
		t.Errorf("custom field query = %+v", p)
	}
	rec := adminOK(t, o, "GET", "/records/Account/"+accounts[2].(string), "")
	if rec["IsDeleted"] != true || rec["Phone"] != "+47 1" {
		t.Errorf("admin record read of a deleted account = %v", rec)
	}

	counted := o.e.LimitUsage().APIRequests.Used
	resp, body = o.adminDo("GET", "/export", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export: %d", resp.StatusCode)
	}
	lines, deleted := 0, 0
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r map[string]any
		mustJSON(t, sc.Bytes(), &r)
		if r["IsDeleted"] == true {
			deleted++
		}
		lines++
	}
	if lines != 20+4+3+2 || deleted != 1 {
		t.Errorf("export has %d records (%d deleted), want 29 (1 deleted)", lines, deleted)
	}
	if o.e.LimitUsage().APIRequests.Used != counted {
		t.Error("admin reads counted as API usage")
	}

	refresh := adminOK(t, o, "POST", "/refresh-tokens", "")
	if tok, _ := refresh["refresh_token"].(string); tok == "" || refresh["client_id"] != o.e.cfg.ClientID {
		t.Errorf("refresh token = %v", refresh)
	}
	adminOK(t, o, "POST", "/tokens/expire", "")
	if resp, _ := o.do(http.MethodGet, "/services/data/v62.0/limits", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after /tokens/expire: %d", resp.StatusCode)
	}
	o.tok = ""

	set := adminOK(t, o, "PUT", "/settings", `{"token_lifetime":"30m","retention":"1h","bulk_delay":"0s","overflow_threshold":50}`)
	if set["token_lifetime"] != "30m0s" || set["retention"] != "1h0m0s" || set["keepalive_interval"] != "4m30s" || set["idle_timeout"] != "1m0s" {
		t.Errorf("settings = %v", set)
	}
	if o.e.log.Retention() != time.Hour {
		t.Errorf("retention setting did not reach the event log: %v", o.e.log.Retention())
	}
	lim := adminOK(t, o, "PUT", "/limits", `{"api_requests_max":5000}`)
	if lim["api_requests"].(map[string]any)["max"] != 5000.0 {
		t.Errorf("limits = %v", lim)
	}

	adminOK(t, o, "PUT", "/faults", `{"error_rate":1,"error_status":503,"path_prefix":"/services/data/"}`)
	resp, body = o.do(http.MethodGet, "/services/data/v62.0/limits", nil)
	if e := restErr(t, body); resp.StatusCode != http.StatusServiceUnavailable || e.ErrorCode != "SERVER_UNAVAILABLE" {
		t.Errorf("injected fault: %d %s", resp.StatusCode, body)
	}
	if f := adminOK(t, o, "GET", "/faults", ""); f["counts"].(map[string]any)["errors"] != 1.0 {
		t.Errorf("fault counts = %v", f)
	}
	adminOK(t, o, "PUT", "/faults", `{}`)

	counters := adminOK(t, o, "GET", "/counters", "")
	if counters["oauth.token"] == nil || counters["rest.sobject_update"] != 1.0 || counters["rest.query"] == nil {
		t.Errorf("counters = %v", counters)
	}

	adminOK(t, o, "POST", "/reset", "")
	if live, all := o.e.store.count("Contact"); live != 20 || all != 20 {
		t.Errorf("after reset: %d/%d contacts, want the 20 seeded", live, all)
	}
	if live, _ := o.e.store.count("Account"); live != 4 || o.e.log.Len() != 0 || len(o.e.Counters()) != 0 {
		t.Errorf("after reset: %d accounts, %d events, counters %v", live, o.e.log.Len(), o.e.Counters())
	}
	if _, ok := o.e.store.meta("Contact"); !ok {
		t.Fatal("Contact vanished")
	}
	if m, _ := o.e.store.meta("Contact"); func() bool { _, ok := m.field("Region__c"); return ok }() {
		t.Error("the custom field survived the reset")
	}
	if s := o.e.Settings(); s.TokenLifetime != 2*time.Hour || s.APIRequestsMax != 1_000_000 || s.OverflowThreshold != 100_000 {
		t.Errorf("settings after reset = %+v", s)
	}
	if resp, _ := o.do(http.MethodGet, "/services/data/v62.0/limits", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a session from before the reset: %d, want 401", resp.StatusCode)
	}
	o.tok = ""
	if resp, _ := o.do(http.MethodGet, "/services/data/v62.0/limits", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("a new session after reset: %d", resp.StatusCode)
	}
	status := adminOK(t, o, "GET", "/", "")
	if status["org_id"] != o.e.cfg.OrgID {
		t.Errorf("status = %v", status)
	}
}

// The seeded org is realistic: required fields set, a third of the contacts without an account, and no
// change events (the data predates the retention window).
func TestSeedDataIsRealisticAndPredatesTheEventLog(t *testing.T) {
	o := newTestOrg(t, 900, 30)
	if o.e.log.Len() != 0 {
		t.Errorf("seeding appended %d events", o.e.log.Len())
	}
	noAccount := o.query("SELECT COUNT() FROM Contact WHERE AccountId = null", false).TotalSize
	if noAccount < 200 || noAccount > 400 {
		t.Errorf("%d of 900 contacts have no account, want about a third", noAccount)
	}
	if n := o.query("SELECT COUNT() FROM Contact WHERE LastName = null", false).TotalSize; n != 0 {
		t.Errorf("%d contacts without LastName", n)
	}
	recent := o.clock.Now().Add(-72 * time.Hour).UTC().Format(time.RFC3339)
	if n := o.query("SELECT COUNT() FROM Contact WHERE SystemModstamp > "+recent, false).TotalSize; n != 0 {
		t.Errorf("%d seeded contacts were modified within the retention window", n)
	}
	p := o.query("SELECT Id, Name, FirstName, LastName, Account.Name FROM Contact WHERE FirstName != null LIMIT 1", false)
	r := p.Records[0]
	if r["Name"] != r["FirstName"].(string)+" "+r["LastName"].(string) {
		t.Errorf("Name %v is not FirstName LastName", r["Name"])
	}
}
