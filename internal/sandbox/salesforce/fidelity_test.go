package salesforce

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// The JWT bearer grant accepts the assertions widely used clients send and a real org
// accepts: exp 300 s ahead (salesforce-pubsub-api-client, go-salesforce, simple-salesforce in #491), exp in
// milliseconds (the Salesforce CLI's sfdx-core signs Date.now() + 300), exp as a JSON string
// (simple-salesforce, go-salesforce), aud https://login.salesforce.com sent to the org's My Domain
// (go-salesforce hard-codes it). An expired assertion, a bad signature and wrong iss/sub/aud stay refused.
func TestJWTBearerAcceptsWhatRealClientsSend(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	now := time.Now() // assertions are checked against real time
	ok := map[string]func(jwt.MapClaims){
		"exp now+300s":            func(c jwt.MapClaims) { c["exp"] = now.Add(300 * time.Second).Unix() },
		"exp now+1h":              func(c jwt.MapClaims) { c["exp"] = now.Add(time.Hour).Unix() },
		"exp in milliseconds":     func(c jwt.MapClaims) { c["exp"] = now.UnixMilli() + 300 },
		"exp as a string":         func(c jwt.MapClaims) { c["exp"] = strconv.FormatInt(now.Add(300*time.Second).Unix(), 10) },
		"exp a fractional number": func(c jwt.MapClaims) { c["exp"] = float64(now.Add(time.Minute).UnixMilli()) / 1000 },
		"aud login.salesforce.com": func(c jwt.MapClaims) {
			c["aud"] = "https://login.salesforce.com"
		},
	}
	for name, change := range ok {
		for _, host := range []string{o.login.URL, o.instance.URL} {
			resp, body := o.form(host, url.Values{"grant_type": {jwtBearerGrant}, "assertion": {o.assertion(change)}})
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s on %s: %d %s, want 200", name, host, resp.StatusCode, body)
			}
		}
	}
	refused := []struct {
		name   string
		change func(jwt.MapClaims)
		desc   string
	}{
		{"expired", func(c jwt.MapClaims) { c["exp"] = now.Add(-5 * time.Minute).Unix() }, "expired authorization code"},
		{"expired, as a string", func(c jwt.MapClaims) { c["exp"] = strconv.FormatInt(now.Add(-5*time.Minute).Unix(), 10) }, "expired authorization code"},
		{"exp not a number", func(c jwt.MapClaims) { c["exp"] = "tomorrow" }, "invalid assertion"},
		{"no exp", func(c jwt.MapClaims) { delete(c, "exp") }, "invalid assertion"},
		{"aud of another site", func(c jwt.MapClaims) { c["aud"] = "https://evil.example.com" }, "Audience validation failed"},
		{"aud test.salesforce.com on a production org", func(c jwt.MapClaims) { c["aud"] = "https://test.salesforce.com" }, "Audience validation failed"},
		{"other user", func(c jwt.MapClaims) { c["sub"] = "someone@else.example" }, "user hasn't approved this consumer"},
	}
	for _, tc := range refused {
		resp, body := o.form(o.login.URL, url.Values{"grant_type": {jwtBearerGrant}, "assertion": {o.assertion(tc.change)}})
		var e oauthErrorBody
		mustJSON(t, body, &e)
		if resp.StatusCode != http.StatusBadRequest || e.Error != "invalid_grant" || e.Description != tc.desc {
			t.Errorf("%s: %d %s, want 400 invalid_grant / %s", tc.name, resp.StatusCode, body, tc.desc)
		}
	}
}

// A ceiling on exp can still be configured, for tests of a stricter org.
func TestJWTBearerMaxAheadIsConfigurable(t *testing.T) {
	o := newTestOrg(t, 0, 0, func(c *Config) { c.JWTMaxAhead = 3 * time.Minute })
	far := o.assertion(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(time.Hour).Unix() })
	resp, body := o.form(o.login.URL, url.Values{"grant_type": {jwtBearerGrant}, "assertion": {far}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("exp an hour ahead with a 3-minute ceiling: %d %s, want 400", resp.StatusCode, body)
	}
}

// "List Available REST Resources" includes identity, the identity URL of the session's
// user (jsforce's identity() on a connection built from a bare token reads it).
func TestResourcesListIncludesIdentity(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	resp, body := o.do(http.MethodGet, "/services/data/v62.0/", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("resources: %d %s", resp.StatusCode, body)
	}
	var res map[string]string
	mustJSON(t, body, &res)
	want := o.login.URL + "/id/" + o.e.cfg.OrgID + "/" + o.e.UserID()
	if res["identity"] != want {
		t.Fatalf("identity = %q, want %q (in %s)", res["identity"], want, body)
	}
	for _, k := range []string{"sobjects", "query", "queryAll", "limits", "composite"} {
		if res[k] != "/services/data/v62.0/"+k {
			t.Errorf("%s = %q", k, res[k])
		}
	}
	req, _ := http.NewRequest(http.MethodGet, res["identity"], nil)
	req.Header.Set("Authorization", "Bearer "+o.token())
	if resp, body := o.send(req); resp.StatusCode != http.StatusOK {
		t.Errorf("GET identity: %d %s", resp.StatusCode, body)
	}
}

// A current org serves the API versions up to the current release (v68.0, Winter '27,
// by default), lists them from 31.0 (21.0-30.0 were retired in Summer '25 and answer 410 GONE), and the
// ceiling stays configurable.
func TestCurrentAPIVersionsAreServed(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	for _, v := range []string{"63.0", "65.0", "68.0"} {
		if resp, body := o.do(http.MethodGet, "/services/data/v"+v+"/limits", nil); resp.StatusCode != http.StatusOK {
			t.Errorf("v%s/limits: %d %s, want 200", v, resp.StatusCode, body)
		}
	}
	if resp, _ := o.do(http.MethodGet, "/services/data/v69.0/limits", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("v69.0 (newer than the org): %d, want 404", resp.StatusCode)
	}
	if resp, body := o.do(http.MethodGet, "/services/data/v30.0/limits", nil); resp.StatusCode != http.StatusGone {
		t.Errorf("v30.0 (retired): %d %s, want 410", resp.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodGet, o.instance.URL+"/services/data/", nil)
	_, body := o.send(req)
	var versions []map[string]string
	mustJSON(t, body, &versions)
	first, last := versions[0], versions[len(versions)-1]
	if first["version"] != "31.0" || last["version"] != "68.0" || last["label"] != "Winter '27" || last["url"] != "/services/data/v68.0" {
		t.Errorf("versions run from %v to %v, want 31.0 to 68.0 (Winter '27)", first, last)
	}

	capped := newTestOrg(t, 0, 0, func(c *Config) { c.APIVersion = "64.0" })
	if resp, _ := capped.do(http.MethodGet, "/services/data/v65.0/limits", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("v65.0 on an org capped at 64.0: %d, want 404", resp.StatusCode)
	}
}

// sObject Collections create, update, upsert, delete and retrieve up to 200 records per
// request with per-record results in the real shape; allOrNone rolls everything back when one record fails.
func TestSObjectCollections(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	base := "/services/data/v" + DefaultAPIVersion + "/composite/sobjects"
	type result struct {
		ID      *string          `json:"id"`
		Success bool             `json:"success"`
		Errors  []map[string]any `json:"errors"`
		Created *bool            `json:"created"`
	}
	results := func(resp *http.Response, body []byte) []result {
		t.Helper()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
		var rs []result
		mustJSON(t, body, &rs)
		return rs
	}
	acct := func(name string) map[string]any {
		return map[string]any{"attributes": map[string]any{"type": "Account"}, "Name": name}
	}
	// Partial success: the invalid record's error, the others saved, in request order.
	rs := results(o.do(http.MethodPost, base, map[string]any{"allOrNone": false, "records": []any{
		acct("One"), map[string]any{"attributes": map[string]any{"type": "Account"}, "Phone": "1"},
		map[string]any{"attributes": map[string]any{"type": "Contact"}, "LastName": "Lee"}}}))
	if len(rs) != 3 || !rs[0].Success || rs[1].Success || !rs[2].Success || rs[1].ID != nil ||
		rs[1].Errors[0]["statusCode"] != "REQUIRED_FIELD_MISSING" || rs[0].ID == nil || len(*rs[0].ID) != 18 {
		t.Fatalf("create with one invalid record: %+v", rs)
	}
	acctID, contactID := *rs[0].ID, *rs[2].ID
	// All or none: nothing saved, the valid record rolled back.
	before := o.e.log.Latest()
	rs = results(o.do(http.MethodPost, base, map[string]any{"allOrNone": true, "records": []any{acct("Two"), map[string]any{"attributes": map[string]any{"type": "Account"}}}}))
	if rs[0].Success || rs[0].Errors[0]["statusCode"] != "ALL_OR_NONE_OPERATION_ROLLED_BACK" || rs[1].Errors[0]["statusCode"] != "REQUIRED_FIELD_MISSING" {
		t.Errorf("allOrNone create: %+v", rs)
	}
	if o.e.log.Latest() != before {
		t.Error("an allOrNone request that failed appended events")
	}
	// Update; the same change to two records is one merged event.
	rs = results(o.do(http.MethodPatch, base, map[string]any{"records": []any{
		map[string]any{"attributes": map[string]any{"type": "Account"}, "Id": acctID, "Industry": "Retail"},
		map[string]any{"attributes": map[string]any{"type": "Contact"}, "id": contactID, "Title": "CEO"},
		map[string]any{"attributes": map[string]any{"type": "Contact"}, "Title": "No Id"}}}))
	if !rs[0].Success || !rs[1].Success || rs[2].Success || *rs[0].ID != acctID {
		t.Errorf("update: %+v", rs)
	}
	// Upsert by an idLookup field (Contact.Email): one created, one updated.
	rs = results(o.do(http.MethodPatch, base+"/Contact/Email", map[string]any{"records": []any{
		map[string]any{"attributes": map[string]any{"type": "Contact"}, "Email": "new@example.com", "LastName": "New"},
		map[string]any{"attributes": map[string]any{"type": "Contact"}, "Email": "new@example.com", "Title": "Again"}}}))
	if len(rs) != 2 || !rs[0].Success || rs[0].Created == nil || !*rs[0].Created {
		t.Errorf("upsert: %+v", rs)
	}
	rs = results(o.do(http.MethodPatch, base+"/Contact/Email", map[string]any{"records": []any{
		map[string]any{"attributes": map[string]any{"type": "Contact"}, "Email": "NEW@example.com", "Title": "Updated"}}}))
	if !rs[0].Success || rs[0].Created == nil || *rs[0].Created {
		t.Errorf("upsert of an existing record: %+v", rs)
	}
	if resp, body := o.do(http.MethodPatch, base+"/Contact/Title", map[string]any{"records": []any{}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("upsert by a field that is no external id: %d %s", resp.StatusCode, body)
	}
	// Retrieve: records in order, null for missing.
	resp, body := o.do(http.MethodGet, base+"/Account?ids="+acctID+",001000000000000AAA&fields=Id,Name,Industry", nil)
	var recs []map[string]any
	mustJSON(t, body, &recs)
	if resp.StatusCode != http.StatusOK || len(recs) != 2 || recs[0]["Industry"] != "Retail" || recs[1] != nil {
		t.Errorf("retrieve: %d %s", resp.StatusCode, body)
	}
	resp, body = o.do(http.MethodPost, base+"/Contact", map[string]any{"ids": []string{contactID}, "fields": []string{"Title"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"Title":"CEO"`) {
		t.Errorf("retrieve by POST: %d %s", resp.StatusCode, body)
	}
	// Delete: per-record results, an unknown Id fails alone.
	rs = results(o.do(http.MethodDelete, base+"?ids="+acctID+","+contactID+",003000000000000AAA&allOrNone=false", nil))
	if !rs[0].Success || !rs[1].Success || rs[2].Success || *rs[2].ID != "003000000000000AAA" {
		t.Errorf("delete: %+v", rs)
	}
	// More than 200 records: 400 EXCEEDED_ID_LIMIT.
	many := make([]any, 201)
	for i := range many {
		many[i] = acct("Many")
	}
	resp, body = o.do(http.MethodPost, base, map[string]any{"records": many})
	if resp.StatusCode != http.StatusBadRequest || restErr(t, body).ErrorCode != "EXCEEDED_ID_LIMIT" {
		t.Errorf("201 records: %d %s", resp.StatusCode, body)
	}
	// Single-record upsert by external Id: 201 created, then 200.
	resp, body = o.do(http.MethodPatch, "/services/data/v"+DefaultAPIVersion+"/sobjects/Contact/Email/solo@example.com", `{"LastName":"Solo"}`)
	if resp.StatusCode != http.StatusCreated || !strings.Contains(string(body), `"created":true`) {
		t.Errorf("upsert one (new): %d %s", resp.StatusCode, body)
	}
	resp, body = o.do(http.MethodPatch, "/services/data/v"+DefaultAPIVersion+"/sobjects/Contact/Email/solo@example.com", `{"Title":"Solo"}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"created":false`) {
		t.Errorf("upsert one (existing): %d %s", resp.StatusCode, body)
	}
}

// /composite runs subrequests in order with @{ref} references and rolls all
// of them back under allOrNone; /composite/batch runs independent subrequests, haltOnError stopping the rest.
func TestCompositeAndCompositeBatch(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	v := "/services/data/v" + DefaultAPIVersion
	type sub struct {
		Body           json.RawMessage `json:"body"`
		HTTPStatusCode int             `json:"httpStatusCode"`
		ReferenceID    string          `json:"referenceId"`
	}
	composite := func(allOrNone bool, reqs ...map[string]any) []sub {
		t.Helper()
		resp, body := o.do(http.MethodPost, v+"/composite", map[string]any{"allOrNone": allOrNone, "compositeRequest": reqs})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("composite: %d %s", resp.StatusCode, body)
		}
		var out struct {
			CompositeResponse []sub `json:"compositeResponse"`
		}
		mustJSON(t, body, &out)
		return out.CompositeResponse
	}
	res := composite(true,
		map[string]any{"method": "POST", "url": v + "/sobjects/Account", "referenceId": "acct", "body": map[string]any{"Name": "Composite"}},
		map[string]any{"method": "POST", "url": v + "/sobjects/Contact", "referenceId": "kid", "body": map[string]any{"LastName": "Kid", "AccountId": "@{acct.id}"}},
		map[string]any{"method": "GET", "url": v + "/sobjects/Contact/@{kid.id}?fields=AccountId", "referenceId": "read"})
	if len(res) != 3 || res[0].HTTPStatusCode != 201 || res[1].HTTPStatusCode != 201 || res[2].HTTPStatusCode != 200 {
		t.Fatalf("composite: %+v", res)
	}
	var created map[string]any
	mustJSON(t, res[0].Body, &created)
	if !strings.Contains(string(res[2].Body), created["id"].(string)) {
		t.Errorf("the contact read back does not point at the account created before it: %s", res[2].Body)
	}
	before := o.e.log.Latest()
	count, _ := o.e.store.count("Account")
	res = composite(true,
		map[string]any{"method": "POST", "url": v + "/sobjects/Account", "referenceId": "ok", "body": map[string]any{"Name": "Rolled back"}},
		map[string]any{"method": "POST", "url": v + "/sobjects/Account", "referenceId": "bad", "body": map[string]any{"Phone": "1"}})
	if res[1].HTTPStatusCode != 400 || res[0].HTTPStatusCode != 400 || !strings.Contains(string(res[0].Body), "PROCESSING_HALTED") {
		t.Errorf("allOrNone composite with a failure: %+v", res)
	}
	if after, _ := o.e.store.count("Account"); after != count || o.e.log.Latest() != before {
		t.Errorf("a rolled-back composite left %d accounts (was %d) or events", after, count)
	}

	resp, body := o.do(http.MethodPost, v+"/composite/batch", map[string]any{"haltOnError": true, "batchRequests": []map[string]any{
		{"method": "GET", "url": "v" + DefaultAPIVersion + "/limits"},
		{"method": "PATCH", "url": "v" + DefaultAPIVersion + "/sobjects/Account/001000000000000AAA", "richInput": map[string]any{"Name": "X"}},
		{"method": "GET", "url": "v" + DefaultAPIVersion + "/limits"}}})
	var batch struct {
		HasErrors bool `json:"hasErrors"`
		Results   []struct {
			StatusCode int `json:"statusCode"`
		} `json:"results"`
	}
	mustJSON(t, body, &batch)
	if resp.StatusCode != http.StatusOK || !batch.HasErrors || len(batch.Results) != 3 || batch.Results[0].StatusCode != http.StatusOK ||
		batch.Results[1].StatusCode != http.StatusNotFound || batch.Results[2].StatusCode != http.StatusPreconditionFailed {
		t.Errorf("composite/batch: %d %s", resp.StatusCode, body)
	}
}
