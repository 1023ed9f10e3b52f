package dataverse

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// seedAccounts writes n accounts through UpsertMultiple: accounts(…i) named "Account i" with i employees.
func seedAccounts(t *testing.T, env *testEnv, n int) {
	t.Helper()
	items := make([]map[string]any, n)
	for i := range items {
		items[i] = map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
			"name": fmt.Sprintf("Account %03d", i), "numberofemployees": i, "accountnumber": fmt.Sprintf("AN-%d", i%3)}
	}
	env.mustStatus(env.call(http.MethodPost, "accounts/Microsoft.Dynamics.CRM.UpsertMultiple", map[string]any{"Targets": items}), http.StatusNoContent)
}

func values(t *testing.T, r result) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, v := range r.json(t)["value"].([]any) {
		out = append(out, v.(map[string]any))
	}
	return out
}

// $select, $filter (eq ne gt lt and or, modifiedon), $orderby, $top, $count, and
// @odata.etag on every row.
func TestQueriesSelectFilterOrderAndTop(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	seedAccounts(t, env, 30)

	r := env.mustStatus(env.call(http.MethodGet, "accounts?$select=name,numberofemployees&$filter=numberofemployees gt 10 and numberofemployees lt 15&$orderby=numberofemployees desc", nil), http.StatusOK)
	rows := values(t, r)
	if len(rows) != 4 || rows[0]["numberofemployees"] != float64(14) || rows[3]["name"] != "Account 011" {
		t.Fatalf("range filter desc: %s", r.raw)
	}
	if !strings.HasSuffix(r.json(t)["@odata.context"].(string), "$metadata#accounts(name,numberofemployees)") {
		t.Errorf("context: %v", r.json(t)["@odata.context"])
	}
	for _, row := range rows {
		if !strings.HasPrefix(row["@odata.etag"].(string), `W/"`) || row["accountid"] == nil || len(row) != 4 {
			t.Errorf("row shape (etag, selected columns and the key only): %v", row)
		}
	}
	for filter, want := range map[string]int{
		"name eq 'account 007'":                                                  1, // case-insensitive, as Dataverse's collation
		"name ne 'Account 007'":                                                  29,
		"numberofemployees le 2 or numberofemployees ge 28":                      5,
		"accountnumber eq 'AN-1' and (numberofemployees lt 10)":                  3,
		"not (numberofemployees ge 3)":                                           3,
		"startswith(name,'Account 01')":                                          10,
		"contains(name,'02')":                                                    11, // 002 and 020-029
		"endswith(name,'9')":                                                     3,
		"fax eq null":                                                            30,
		"accountid eq 00000000-0000-4000-8000-000000000005":                      1,
		"_ownerid_value eq " + env.emu.ApplicationUserID():                       30,
		"modifiedon gt 2000-01-01T00:00:00Z":                                     30,
		"modifiedon lt " + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339): 0,
	} {
		r := env.mustStatus(env.call(http.MethodGet, "accounts?$select=name&$filter="+filter, nil), http.StatusOK)
		if got := len(values(t, r)); got != want {
			t.Errorf("$filter=%s: %d rows, want %d", filter, got, want)
		}
	}
	r = env.mustStatus(env.call(http.MethodGet, "accounts?$select=name&$orderby=accountnumber asc,name desc&$top=3&$count=true", nil), http.StatusOK)
	rows = values(t, r)
	if len(rows) != 3 || rows[0]["name"] != "Account 027" || r.json(t)["@odata.count"] != float64(30) {
		t.Errorf("orderby two keys + top + count: %s", r.raw)
	}
	if _, next := r.json(t)["@odata.nextLink"]; next {
		t.Error("$top alone produced a nextLink")
	}
	for q, code := range map[string]string{
		"accounts?$select=nosuchcolumn":                  codeODataParse,
		"accounts?$filter=nosuchcolumn eq 1":             codeODataParse,
		"accounts?$filter=name eq 5":                     codeODataParse,
		"accounts?$filter=name eq":                       codeODataParse,
		"accounts?$orderby=name sideways":                codeODataParse,
		"accounts?$skip=10":                              codeODataParse,
		"accounts?$top=-1":                               codeODataParse,
		"nosuchset":                                      codeSegmentNotFound,
		"accounts(00000000-0000-4000-8000-999999999999)": codeObjectDoesNotExist,
	} {
		r := env.call(http.MethodGet, q, nil)
		if r.status/100 != 4 || r.errorCode(t) != code {
			t.Errorf("GET %s: %d %s, want code %s", q, r.status, r.raw, code)
		}
	}
	r = env.mustStatus(env.call(http.MethodGet, "accounts/$count", nil), http.StatusOK)
	if string(r.raw) != "30" {
		t.Errorf("$count = %q", r.raw)
	}
}

// Spec 5.2: Prefer: odata.maxpagesize pages with an opaque $skiptoken in @odata.nextLink that the client
// follows as is; every row comes exactly once, in order, and $top is ignored alongside maxpagesize.
func TestPagingWithMaxPageSizeAndNextLink(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	seedAccounts(t, env, 95)
	for _, query := range []string{"accounts?$select=name", "accounts?$select=name&$orderby=accountnumber desc,name asc&$top=3", "accounts?$select=name&$filter=numberofemployees ge 5"} {
		next := env.api.URL + "/api/data/v9.2/" + query
		seen := map[string]bool{}
		var order []string
		pages := 0
		for next != "" && pages < 100 {
			req, _ := http.NewRequest(http.MethodGet, strings.ReplaceAll(next, " ", "%20"), nil)
			req.Header.Set("Authorization", "Bearer "+env.token)
			req.Header.Set("Prefer", "odata.maxpagesize=10")
			resp, err := env.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r := result{status: resp.StatusCode, header: resp.Header, raw: readAll(t, resp)}
			resp.Body.Close()
			env.mustStatus(r, http.StatusOK)
			if r.header.Get("Preference-Applied") != "odata.maxpagesize=10" {
				t.Fatalf("Preference-Applied = %q", r.header.Get("Preference-Applied"))
			}
			rows := values(t, r)
			if len(rows) > 10 {
				t.Fatalf("page of %d rows", len(rows))
			}
			for _, row := range rows {
				id := row["accountid"].(string)
				if seen[id] {
					t.Fatalf("%s: row %s returned twice", query, id)
				}
				seen[id] = true
				order = append(order, row["name"].(string))
			}
			next, _ = r.json(t)["@odata.nextLink"].(string)
			if next != "" && !strings.Contains(next, "$skiptoken=") {
				t.Fatalf("nextLink without $skiptoken: %s", next)
			}
			pages++
		}
		want := 95
		if strings.Contains(query, "ge 5") {
			want = 90
		}
		if len(seen) != want {
			t.Errorf("%s: %d rows over %d pages, want %d", query, len(seen), pages, want)
		}
		if strings.Contains(query, "orderby") && (order[0] != "Account 002" || order[1] != "Account 005") {
			t.Errorf("%s: order starts %v", query, order[:3])
		}
	}
	r := env.call(http.MethodGet, "accounts?$skiptoken=garbage", nil)
	if r.status != http.StatusBadRequest {
		t.Errorf("bad skiptoken: %d", r.status)
	}
}

// Spec 5.1: a single-row GET carries an ETag header and answers 304 to a matching If-None-Match; the ETag
// changes on every write.
func TestSingleRowETagAndNotModified(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidA+")", map[string]any{"lastname": "E"}), http.StatusNoContent)
	r := env.mustStatus(env.call(http.MethodGet, "contacts("+guidA+")?$select=lastname", nil, "If-None-Match", "null"), http.StatusOK)
	tag := r.header.Get("ETag")
	if tag == "" || r.json(t)["@odata.etag"] != tag || !strings.HasSuffix(r.json(t)["@odata.context"].(string), "$metadata#contacts(lastname)/$entity") {
		t.Fatalf("GET: %v %s", r.header, r.raw)
	}
	r = env.call(http.MethodGet, "contacts("+guidA+")?$select=lastname", nil, "If-None-Match", tag)
	if r.status != http.StatusNotModified || len(r.raw) != 0 {
		t.Fatalf("If-None-Match: %d %s", r.status, r.raw)
	}
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidA+")", map[string]any{"firstname": "F"}), http.StatusNoContent)
	r = env.mustStatus(env.call(http.MethodGet, "contacts("+guidA+")", nil, "If-None-Match", tag), http.StatusOK)
	if r.header.Get("ETag") == tag {
		t.Error("ETag did not change after a write")
	}
	m := r.json(t)
	for _, k := range []string{"createdon", "modifiedon", "_modifiedby_value", "_createdby_value", "versionnumber", "statecode", "statuscode", "_owningbusinessunit_value"} {
		if m[k] == nil {
			t.Errorf("system column %s missing: %s", k, r.raw)
		}
	}
	for _, hidden := range []string{"owneridtype", "parentcustomeridtype", "parentcustomeridname"} {
		if _, ok := m[hidden]; ok {
			t.Errorf("%s is not a Web API property but was returned", hidden)
		}
	}
}
