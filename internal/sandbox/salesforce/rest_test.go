package salesforce

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
)

func TestVersionsListNeedsNoSessionAndEndsAtTheConfiguredVersion(t *testing.T) {
	o := newTestOrg(t, 0, 0, func(c *Config) { c.APIVersion = "62.0" })
	req, _ := http.NewRequest(http.MethodGet, o.instance.URL+"/services/data/", nil)
	resp, body := o.send(req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("versions: %d %s", resp.StatusCode, body)
	}
	var versions []map[string]string
	mustJSON(t, body, &versions)
	last := versions[len(versions)-1]
	if last["version"] != "62.0" || last["url"] != "/services/data/v62.0" || last["label"] != "Winter '25" {
		t.Errorf("newest version = %v", last)
	}
	for _, v := range versions {
		if v["version"] == "60.0" && v["label"] != "Spring '24" {
			t.Errorf("v60.0 label = %q, want Spring '24 (spec 2.1)", v["label"])
		}
	}
	if resp, _ := o.do(http.MethodGet, "/services/data/v63.0/limits", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a version newer than the org's: %d, want 404", resp.StatusCode)
	}
}

// Spec 2.2: the describe has exactly the listed top-level keys and per-field keys, with the types of
// section 8.
func TestDescribeHasExactlyTheSpecKeys(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	topKeys := []string{"childRelationships", "createable", "custom", "deletable", "fields", "keyPrefix", "label",
		"labelPlural", "name", "queryable", "recordTypeInfos", "updateable", "urls"}
	fieldKeys := []string{"name", "label", "type", "soapType", "length", "byteLength", "digits", "precision", "scale",
		"nillable", "createable", "updateable", "calculated", "calculatedFormula", "referenceTo", "relationshipName",
		"compoundFieldName", "picklistValues", "aggregatable", "autoNumber", "cascadeDelete", "caseSensitive", "custom",
		"defaultedOnCreate", "dependentPicklist", "deprecatedAndHidden", "externalId", "filterable", "groupable",
		"htmlFormatted", "idLookup", "nameField", "namePointing", "permissionable", "polymorphicForeignKey",
		"restrictedPicklist", "sortable", "unique", "writeRequiresMasterRead"}
	slices.Sort(topKeys)
	slices.Sort(fieldKeys)
	for object, prefix := range map[string]string{"Contact": "003", "Account": "001"} {
		resp, body := o.do(http.MethodGet, "/services/data/v62.0/sobjects/"+object+"/describe", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("describe %s: %d %s", object, resp.StatusCode, body)
		}
		var d map[string]any
		mustJSON(t, body, &d)
		keys := keysOf(d)
		slices.Sort(keys)
		if !slices.Equal(keys, topKeys) {
			t.Errorf("%s describe keys = %v, want %v", object, keys, topKeys)
		}
		if d["keyPrefix"] != prefix || d["name"] != object {
			t.Errorf("%s keyPrefix = %v", object, d["keyPrefix"])
		}
		byName := map[string]map[string]any{}
		for _, f := range d["fields"].([]any) {
			fm := f.(map[string]any)
			fk := keysOf(fm)
			slices.Sort(fk)
			if !slices.Equal(fk, fieldKeys) {
				t.Fatalf("%s.%s field keys = %v, want %v", object, fm["name"], fk, fieldKeys)
			}
			byName[fm["name"].(string)] = fm
		}
		id := byName["Id"]
		if id["type"] != "id" || id["soapType"] != "tns:ID" || id["length"] != 18.0 || id["byteLength"] != 18.0 || id["nillable"] != false {
			t.Errorf("%s.Id = %v", object, id)
		}
		desc := byName["Description"]
		if desc["type"] != "textarea" || desc["length"] != 32000.0 || desc["byteLength"] != 96000.0 || desc["soapType"] != "xsd:string" {
			t.Errorf("%s.Description = %v", object, desc)
		}
		if sm := byName["SystemModstamp"]; sm["type"] != "datetime" || sm["soapType"] != "xsd:dateTime" || sm["nillable"] != false || sm["createable"] != false {
			t.Errorf("%s.SystemModstamp = %v", object, sm)
		}
	}
	resp, body := o.do(http.MethodGet, "/services/data/v62.0/sobjects/Contact/describe", nil)
	_ = resp
	var d map[string]any
	mustJSON(t, body, &d)
	fields := map[string]map[string]any{}
	for _, f := range d["fields"].([]any) {
		fields[f.(map[string]any)["name"].(string)] = f.(map[string]any)
	}
	acc := fields["AccountId"]
	if acc["type"] != "reference" || acc["relationshipName"] != "Account" || acc["referenceTo"].([]any)[0] != "Account" || acc["soapType"] != "tns:ID" {
		t.Errorf("Contact.AccountId = %v", acc)
	}
	if ln := fields["LastName"]; ln["nillable"] != false || ln["length"] != 80.0 || ln["compoundFieldName"] != "Name" {
		t.Errorf("Contact.LastName = %v", ln)
	}
	if bd := fields["Birthdate"]; bd["type"] != "date" || bd["soapType"] != "xsd:date" || bd["length"] != 0.0 {
		t.Errorf("Contact.Birthdate = %v", bd)
	}
	if sal := fields["Salutation"]; sal["type"] != "picklist" || len(sal["picklistValues"].([]any)) == 0 {
		t.Errorf("Contact.Salutation = %v", sal)
	}
	if email := fields["Email"]; email["relationshipName"] != nil || email["compoundFieldName"] != nil {
		t.Errorf("Contact.Email relationshipName/compoundFieldName should be null: %v", email)
	}
}

// Spec 2.1 and 3: create returns 201 with an 18-character Id of the right prefix; get by the 15- or
// 18-character Id; update 204; delete 204 (soft: queryAll shows IsDeleted = true, query does not).
func TestSObjectCreateGetUpdateDelete(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	resp, body := o.do(http.MethodPost, "/services/data/v62.0/sobjects/Contact",
		`{"attributes":{"type":"Contact"},"FirstName":"Zoë","LastName":"Ng","Email":"zoe@example.com","Birthdate":"1990-04-01"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	var cr map[string]any
	mustJSON(t, body, &cr)
	id, _ := cr["id"].(string)
	if cr["success"] != true || len(cr["errors"].([]any)) != 0 || len(id) != 18 || !strings.HasPrefix(id, "003") || !sfid.Valid(id) {
		t.Fatalf("create response = %s", body)
	}
	resp, body = o.do(http.MethodGet, "/services/data/v62.0/sobjects/Contact/"+id[:15], nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("get by 15-char Id: %d %s", resp.StatusCode, body)
	}
	var rec map[string]any
	mustJSON(t, body, &rec)
	if rec["Id"] != id || rec["Name"] != "Zoë Ng" || rec["Birthdate"] != "1990-04-01" || rec["IsDeleted"] != false {
		t.Errorf("record = %s", body)
	}
	if ts, _ := rec["CreatedDate"].(string); !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000$`).MatchString(ts) {
		t.Errorf("CreatedDate %q is not in the REST datetime format", ts)
	}
	attrs := rec["attributes"].(map[string]any)
	if attrs["type"] != "Contact" || attrs["url"] != "/services/data/v62.0/sobjects/Contact/"+id {
		t.Errorf("attributes = %v", attrs)
	}

	if resp, body := o.do(http.MethodPatch, "/services/data/v62.0/sobjects/Contact/"+id, `{"Title":"CTO","Email":null}`); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("update: %d %s", resp.StatusCode, body)
	}
	_, body = o.do(http.MethodGet, "/services/data/v62.0/sobjects/Contact/"+id+"?fields=Title,Email", nil)
	rec = nil
	mustJSON(t, body, &rec)
	if rec["Title"] != "CTO" || rec["Email"] != nil || len(rec) != 3 {
		t.Errorf("after update, ?fields=Title,Email = %s", body)
	}

	if resp, body := o.do(http.MethodDelete, "/services/data/v62.0/sobjects/Contact/"+id, nil); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d %s", resp.StatusCode, body)
	}
	resp, body = o.do(http.MethodGet, "/services/data/v62.0/sobjects/Contact/"+id, nil)
	if e := restErr(t, body); resp.StatusCode != http.StatusNotFound || e.ErrorCode != "ENTITY_IS_DELETED" {
		t.Errorf("get after delete: %d %s", resp.StatusCode, body)
	}
	if p := o.query("SELECT Id FROM Contact", false); p.TotalSize != 0 {
		t.Errorf("query sees a deleted record: %+v", p)
	}
	p := o.query("SELECT Id, IsDeleted FROM Contact", true)
	if p.TotalSize != 1 || p.Records[0]["IsDeleted"] != true {
		t.Errorf("queryAll after delete = %+v, want the record with IsDeleted=true", p)
	}
	resp, body = o.do(http.MethodDelete, "/services/data/v62.0/sobjects/Contact/"+id, nil)
	if e := restErr(t, body); resp.StatusCode != http.StatusNotFound || e.ErrorCode != "ENTITY_IS_DELETED" {
		t.Errorf("second delete: %d %s", resp.StatusCode, body)
	}
}

// Spec 2.5: malformed requests get the real error array and leave the data and the event log unchanged.
func TestMalformedRequestsGetTheRealErrorShapeAndChangeNothing(t *testing.T) {
	o := newTestOrg(t, 3, 2)
	live, all := o.e.store.count("Contact")
	events := o.e.log.Len()
	contact := o.query("SELECT Id FROM Contact LIMIT 1", false).Records[0]["Id"].(string)
	long := strings.Repeat("x", 81)
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     string
		fields                   []string
	}{
		{"LastName missing", "POST", "sobjects/Contact", `{"FirstName":"A"}`, 400, "REQUIRED_FIELD_MISSING", []string{"LastName"}},
		{"Account Name missing", "POST", "sobjects/Account", `{"Phone":"1"}`, 400, "REQUIRED_FIELD_MISSING", []string{"Name"}},
		{"LastName nulled", "PATCH", "sobjects/Contact/" + contact, `{"LastName":null}`, 400, "REQUIRED_FIELD_MISSING", []string{"LastName"}},
		{"value too long", "POST", "sobjects/Contact", `{"LastName":"` + long + `"}`, 400, "STRING_TOO_LONG", []string{"LastName"}},
		{"unknown field", "POST", "sobjects/Contact", `{"LastName":"A","Foo__c":"x"}`, 400, "INVALID_FIELD", nil},
		{"read-only field", "POST", "sobjects/Contact", `{"LastName":"A","IsDeleted":true}`, 400, "INVALID_FIELD_FOR_INSERT_UPDATE", []string{"IsDeleted"}},
		{"bad JSON", "POST", "sobjects/Contact", `{"LastName": "A",`, 400, "JSON_PARSER_ERROR", nil},
		{"not an object", "POST", "sobjects/Contact", `["LastName"]`, 400, "JSON_PARSER_ERROR", nil},
		{"wrong value type", "POST", "sobjects/Contact", `{"LastName":"A","Birthdate":"yesterday"}`, 400, "JSON_PARSER_ERROR", nil},
		{"missing account", "POST", "sobjects/Contact", `{"LastName":"A","AccountId":"001` + idInstance + idReserved + `zzzzzzzzz"}`, 400, "INVALID_CROSS_REFERENCE_KEY", []string{"AccountId"}},
		{"malformed Id", "PATCH", "sobjects/Contact/003abc", `{"Title":"x"}`, 400, "MALFORMED_ID", []string{"Id"}},
		{"Id of another object", "GET", "sobjects/Contact/" + makeID(prefixAccount, 1), "", 400, "MALFORMED_ID", []string{"Id"}},
		{"missing record", "PATCH", "sobjects/Contact/" + makeID(prefixContact, 999999), `{"Title":"x"}`, 404, "NOT_FOUND", nil},
		{"unknown object", "GET", "sobjects/Foo/describe", "", 404, "NOT_FOUND", nil},
		{"wrong method", "PUT", "sobjects/Contact/" + contact, `{}`, 405, "METHOD_NOT_ALLOWED", nil},
		{"malformed SOQL", "GET", "query?q=SELECT+Id+FORM+Contact", "", 400, "MALFORMED_QUERY", nil},
		{"unknown SOQL field", "GET", "query?q=SELECT+Id,+Foo+FROM+Contact", "", 400, "INVALID_FIELD", nil},
		{"unknown SOQL object", "GET", "query?q=SELECT+Id+FROM+Foo", "", 400, "INVALID_TYPE", nil},
		{"bad locator", "GET", "query/01gxx-2000", "", 400, "INVALID_QUERY_LOCATOR", nil},
	}
	for _, tc := range cases {
		var body any
		if tc.body != "" {
			body = tc.body
		}
		resp, got := o.do(tc.method, "/services/data/v62.0/"+tc.path, body)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d %s, want %d", tc.name, resp.StatusCode, got, tc.status)
			continue
		}
		e := restErr(t, got)
		if e.ErrorCode != tc.code || e.Message == "" || (tc.fields != nil && !slices.Equal(e.Fields, tc.fields)) {
			t.Errorf("%s: %s, want errorCode %s fields %v", tc.name, got, tc.code, tc.fields)
		}
		var raw []map[string]any
		_ = json.Unmarshal(got, &raw)
		if k := keysOf(raw[0]); tc.fields == nil && len(k) != 2 {
			t.Errorf("%s: error keys %v, want message and errorCode", tc.name, k)
		}
	}
	if l, a := o.e.store.count("Contact"); l != live || a != all || o.e.log.Len() != events {
		t.Errorf("rejected requests changed the org: contacts %d/%d → %d/%d, events %d → %d", live, all, l, a, events, o.e.log.Len())
	}
}

// Spec 2.1: every successful REST response carries Sforce-Limit-Info.
func TestResponsesCarrySforceLimitInfo(t *testing.T) {
	o := newTestOrg(t, 0, 0, func(c *Config) { c.APIRequestsMax = 500 })
	o.do(http.MethodGet, "/services/data/v62.0/limits", nil)
	resp, _ := o.do(http.MethodGet, "/services/data/v62.0/sobjects/Contact/describe", nil)
	if got := resp.Header.Get("Sforce-Limit-Info"); got != "api-usage=2/500" {
		t.Errorf("Sforce-Limit-Info = %q, want api-usage=2/500", got)
	}
}

// Spec 2.1: the updated and deleted resources list changes in a window.
func TestUpdatedAndDeletedResources(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	start := o.clock.Now().UTC().Add(-time2m).Format("2006-01-02T15:04:05Z")
	_, body := o.do(http.MethodPost, "/services/data/v62.0/sobjects/Account", `{"Name":"Acme"}`)
	var cr map[string]any
	mustJSON(t, body, &cr)
	id := cr["id"].(string)
	_, body = o.do(http.MethodPost, "/services/data/v62.0/sobjects/Account", `{"Name":"Gone"}`)
	mustJSON(t, body, &cr)
	gone := cr["id"].(string)
	o.do(http.MethodDelete, "/services/data/v62.0/sobjects/Account/"+gone, nil)
	o.clock.Advance(2 * time2m)
	end := o.clock.Now().UTC().Format("2006-01-02T15:04:05Z")

	_, body = o.do(http.MethodGet, "/services/data/v62.0/sobjects/Account/updated/?start="+start+"&end="+end, nil)
	var upd struct {
		IDs    []string `json:"ids"`
		Latest string   `json:"latestDateCovered"`
	}
	mustJSON(t, body, &upd)
	if !slices.Equal(upd.IDs, []string{id}) || upd.Latest == "" {
		t.Errorf("updated = %s", body)
	}
	_, body = o.do(http.MethodGet, "/services/data/v62.0/sobjects/Account/deleted/?start="+start+"&end="+end, nil)
	var del struct {
		Deleted []map[string]string `json:"deletedRecords"`
	}
	mustJSON(t, body, &del)
	if len(del.Deleted) != 1 || del.Deleted[0]["id"] != gone || del.Deleted[0]["deletedDate"] == "" {
		t.Errorf("deleted = %s", body)
	}
}

const time2m = 2 * time.Minute
