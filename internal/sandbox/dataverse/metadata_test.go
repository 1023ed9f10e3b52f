package dataverse

import (
	"net/http"
	"strings"
	"testing"
)

// WhoAmI answers the caller, business unit and organization, and every
// response carries OData-Version, the minimal-metadata content type, x-ms-dop-hint and the rate-limit headers.
func TestWhoAmIAndResponseHeaders(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	for _, path := range []string{"WhoAmI", "WhoAmI()"} {
		r := env.mustStatus(env.call(http.MethodGet, path, nil), http.StatusOK)
		body := r.json(t)
		if body["UserId"] != env.emu.ApplicationUserID() || body["BusinessUnitId"] != env.emu.BusinessUnitID() ||
			body["OrganizationId"] != env.emu.Config().OrganizationID {
			t.Fatalf("%s = %v", path, body)
		}
		if !strings.HasSuffix(body["@odata.context"].(string), "/api/data/v9.2/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse") {
			t.Errorf("@odata.context = %v", body["@odata.context"])
		}
		for h, want := range map[string]string{"OData-Version": "4.0", "Content-Type": "application/json; odata.metadata=minimal", "x-ms-dop-hint": "8"} {
			if got := r.header.Get(h); got != want {
				t.Errorf("%s: %s = %q, want %q", path, h, got, want)
			}
		}
		for _, h := range []string{"x-ms-ratelimit-burst-remaining-xrm-requests", "x-ms-ratelimit-time-remaining-xrm-requests", "REQ_ID", "x-ms-service-request-id"} {
			if r.header.Get(h) == "" {
				t.Errorf("%s: missing %s", path, h)
			}
		}
	}
	// Older minor versions are served too (spec 2.1).
	req, _ := http.NewRequest(http.MethodGet, env.api.URL+"/api/data/v9.0/WhoAmI", nil)
	req.Header.Set("Authorization", "Bearer "+env.token)
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("v9.0 WhoAmI: %d", resp.StatusCode)
	}
	// The dop hint is configurable.
	l := env.emu.Limits()
	l.DOPHint = 3
	env.emu.SetLimits(l)
	if got := env.call(http.MethodGet, "WhoAmI", nil).header.Get("x-ms-dop-hint"); got != "3" {
		t.Errorf("x-ms-dop-hint after SetLimits = %q, want 3", got)
	}
	if n := env.emu.Counters()["whoami"]; n != 4 {
		t.Errorf("whoami counter = %d, want 4", n)
	}
}

// Spec 3.1: a keyed EntityDefinitions GET is one object with an /$entity context and MetadataId always.
func TestEntityDefinitionByLogicalNameIsOneObject(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	for _, tc := range []struct {
		name, set, pk, primaryName string
		otc                        float64
	}{{"contact", "contacts", "contactid", "fullname", 2}, {"account", "accounts", "accountid", "name", 1}} {
		r := env.mustStatus(env.call(http.MethodGet, "EntityDefinitions(LogicalName='"+tc.name+"')?$select=LogicalName,EntitySetName,PrimaryIdAttribute,PrimaryNameAttribute,ChangeTrackingEnabled,IsOptimisticConcurrencyEnabled,ObjectTypeCode,OwnershipType", nil), http.StatusOK)
		m := r.json(t)
		if _, wrapped := m["value"]; wrapped {
			t.Fatalf("keyed read wrapped in value: %s", r.raw)
		}
		if !strings.HasSuffix(m["@odata.context"].(string), "/$entity") || m["MetadataId"] == nil {
			t.Errorf("context/MetadataId: %s", r.raw)
		}
		if m["LogicalName"] != tc.name || m["EntitySetName"] != tc.set || m["PrimaryIdAttribute"] != tc.pk ||
			m["PrimaryNameAttribute"] != tc.primaryName || m["ObjectTypeCode"] != tc.otc || m["OwnershipType"] != "UserOwned" ||
			m["IsOptimisticConcurrencyEnabled"] != true {
			t.Errorf("%s: %s", tc.name, r.raw)
		}
		if _, extra := m["SchemaName"]; extra {
			t.Errorf("$select ignored: %s", r.raw)
		}
	}
	r := env.call(http.MethodGet, "EntityDefinitions(LogicalName='contact')?$select=NoSuchProperty", nil)
	if r.status != http.StatusBadRequest || r.errorCode(t) != codeODataParse {
		t.Errorf("bad $select: %d %s", r.status, r.raw)
	}
	r = env.mustStatus(env.call(http.MethodGet, "EntityDefinitions?$select=LogicalName&$filter=LogicalName eq 'account'", nil), http.StatusOK)
	if v := r.json(t)["value"].([]any); len(v) != 1 || v[0].(map[string]any)["LogicalName"] != "account" {
		t.Errorf("filtered collection: %s", r.raw)
	}
}

// attributes fetches EntityDefinitions(...)?$expand=Attributes($select=...) and indexes it by LogicalName.
func attributes(t *testing.T, env *testEnv, table, sel string) map[string]map[string]any {
	t.Helper()
	r := env.mustStatus(env.call(http.MethodGet, "EntityDefinitions(LogicalName='"+table+"')?$select=LogicalName&$expand=Attributes($select="+sel+")", nil), http.StatusOK)
	out := map[string]map[string]any{}
	for _, a := range r.json(t)["Attributes"].([]any) {
		m := a.(map[string]any)
		out[m["LogicalName"].(string)] = m
	}
	return out
}

// The AttributeType and RequiredLevel of every spec 9 column, the
// IsValidFor* flags, and enough other standard columns (createdon, ownerid, statecode, a Virtual and an
// EntityName column) for mapping validation to reject.
func TestAttributesCarrySpecSection9TypesAndRequiredLevels(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	type want struct{ typ, req string }
	spec := map[string]map[string]want{
		"contact": {
			"contactid": {"Uniqueidentifier", "SystemRequired"}, "assistantname": {"String", "None"}, "assistantphone": {"String", "None"},
			"birthdate": {"DateTime", "None"}, "department": {"String", "None"}, "description": {"Memo", "None"},
			"emailaddress1": {"String", "None"}, "fax": {"String", "None"}, "firstname": {"String", "Recommended"},
			"lastname": {"String", "ApplicationRequired"}, "mobilephone": {"String", "None"}, "salutation": {"String", "None"},
			"telephone1": {"String", "None"}, "parentcustomerid": {"Customer", "None"}, "ownerid": {"Owner", "SystemRequired"},
			"parentcustomeridtype": {"EntityName", "None"}, "owneridtype": {"EntityName", "SystemRequired"},
			"createdon": {"DateTime", "None"}, "modifiedon": {"DateTime", "None"}, "modifiedby": {"Lookup", "None"},
			"statecode": {"State", "SystemRequired"}, "statuscode": {"Status", "None"}, "versionnumber": {"BigInt", "None"},
			"fullname": {"String", "None"}, "entityimage": {"Virtual", "None"}, "owningteam": {"Lookup", "None"},
		},
		"account": {
			"accountid": {"Uniqueidentifier", "SystemRequired"}, "accountnumber": {"String", "None"}, "description": {"Memo", "None"},
			"fax": {"String", "None"}, "name": {"String", "ApplicationRequired"}, "numberofemployees": {"Integer", "None"},
			"sic": {"String", "None"}, "telephone1": {"String", "None"}, "tickersymbol": {"String", "None"},
			"ownerid": {"Owner", "SystemRequired"}, "parentaccountid": {"Lookup", "None"}, "primarycontactid": {"Lookup", "None"},
			"creditlimit": {"Money", "None"}, "statecode": {"State", "SystemRequired"},
		},
	}
	for table, cols := range spec {
		attrs := attributes(t, env, table, "LogicalName,AttributeType,AttributeTypeName,IsValidForCreate,IsValidForUpdate,IsValidForRead,RequiredLevel")
		for name, w := range cols {
			a := attrs[name]
			if a == nil {
				t.Errorf("%s.%s missing", table, name)
				continue
			}
			if a["AttributeType"] != w.typ || a["RequiredLevel"].(map[string]any)["Value"] != w.req {
				t.Errorf("%s.%s: AttributeType %v RequiredLevel %v, want %s %s", table, name, a["AttributeType"], a["RequiredLevel"], w.typ, w.req)
			}
			if _, ok := a["@odata.type"].(string); !ok {
				t.Errorf("%s.%s has no @odata.type", table, name)
			}
		}
	}
	contact := attributes(t, env, "contact", "LogicalName,IsValidForCreate,IsValidForUpdate,AttributeTypeName")
	flags := func(name string) (bool, bool) {
		return contact[name]["IsValidForCreate"].(bool), contact[name]["IsValidForUpdate"].(bool)
	}
	if c, u := flags("statecode"); c || !u {
		t.Errorf("statecode create/update = %v/%v, want false/true", c, u)
	}
	if c, u := flags("contactid"); !c || u {
		t.Errorf("contactid create/update = %v/%v, want true/false", c, u)
	}
	if c, u := flags("createdon"); c || u {
		t.Errorf("createdon create/update = %v/%v, want false/false", c, u)
	}
	if c, u := flags("fullname"); c || u {
		t.Errorf("fullname (read-only) create/update = %v/%v", c, u)
	}
	if v := contact["entityimage"]["AttributeTypeName"].(map[string]any)["Value"]; v != "ImageType" {
		t.Errorf("entityimage AttributeTypeName = %v, want ImageType", v)
	}
	// Derived properties are not selectable through $expand (spec 3.2).
	r := env.call(http.MethodGet, "EntityDefinitions(LogicalName='contact')?$expand=Attributes($select=LogicalName,MaxLength)", nil)
	if r.status != http.StatusBadRequest || !strings.Contains(r.errorMessage(t), "'MaxLength'") {
		t.Errorf("MaxLength through $expand: %d %s", r.status, r.raw)
	}
}

// Spec 3.2: MaxLength comes through the String/Memo casts and Targets through the Lookup cast, with the
// spec 9 values.
func TestAttributeCastsGiveMaxLengthAndTargets(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	byName := func(path string) map[string]map[string]any {
		r := env.mustStatus(env.call(http.MethodGet, path, nil), http.StatusOK)
		out := map[string]map[string]any{}
		for _, a := range r.json(t)["value"].([]any) {
			m := a.(map[string]any)
			out[m["LogicalName"].(string)] = m
		}
		return out
	}
	str := byName("EntityDefinitions(LogicalName='contact')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=LogicalName,MaxLength")
	for name, max := range map[string]float64{"assistantname": 100, "assistantphone": 50, "department": 100, "emailaddress1": 100,
		"fax": 50, "firstname": 50, "lastname": 50, "mobilephone": 50, "salutation": 100, "telephone1": 50} {
		if str[name] == nil || str[name]["MaxLength"] != max {
			t.Errorf("contact.%s MaxLength = %v, want %v", name, str[name], max)
		}
		if str[name]["@odata.type"] != "#Microsoft.Dynamics.CRM.StringAttributeMetadata" {
			t.Errorf("contact.%s @odata.type = %v", name, str[name]["@odata.type"])
		}
	}
	if _, memo := str["description"]; memo {
		t.Error("description (Memo) listed under the String cast")
	}
	memo := byName("EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.MemoAttributeMetadata?$select=LogicalName,MaxLength")
	if memo["description"]["MaxLength"] != float64(2000) {
		t.Errorf("account.description = %v", memo["description"])
	}
	accStr := byName("EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.StringAttributeMetadata?$select=LogicalName,MaxLength")
	for name, max := range map[string]float64{"accountnumber": 20, "fax": 50, "name": 160, "sic": 20, "telephone1": 50, "tickersymbol": 10} {
		if accStr[name]["MaxLength"] != max {
			t.Errorf("account.%s MaxLength = %v, want %v", name, accStr[name]["MaxLength"], max)
		}
	}
	lookups := byName("EntityDefinitions(LogicalName='contact')/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata?$select=LogicalName,Targets")
	if got := lookups["parentcustomerid"]["Targets"]; len(got.([]any)) != 2 || got.([]any)[0] != "account" || got.([]any)[1] != "contact" {
		t.Errorf("parentcustomerid Targets = %v", got)
	}
	if got := lookups["ownerid"]["Targets"].([]any); len(got) != 2 || got[0] != "systemuser" || got[1] != "team" {
		t.Errorf("ownerid Targets = %v", got)
	}
	accLookups := byName("EntityDefinitions(LogicalName='account')/Attributes/Microsoft.Dynamics.CRM.LookupAttributeMetadata?$select=LogicalName,Targets")
	if got := accLookups["primarycontactid"]["Targets"].([]any); len(got) != 1 || got[0] != "contact" {
		t.Errorf("primarycontactid Targets = %v", got)
	}
	r := env.mustStatus(env.call(http.MethodGet, "EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='lastname')", nil), http.StatusOK)
	if m := r.json(t); m["MaxLength"] != float64(50) || m["RequiredLevel"].(map[string]any)["Value"] != "ApplicationRequired" {
		t.Errorf("Attributes(LogicalName='lastname') = %s", r.raw)
	}
	r = env.mustStatus(env.call(http.MethodGet, "EntityDefinitions(LogicalName='contact')/Attributes?$select=LogicalName&$filter=RequiredLevel/Value eq Microsoft.Dynamics.CRM.AttributeRequiredLevel'ApplicationRequired'", nil), http.StatusOK)
	if v := r.json(t)["value"].([]any); len(v) != 1 || v[0].(map[string]any)["LogicalName"] != "lastname" {
		t.Errorf("enum-cast filter = %s", r.raw)
	}
	r = env.mustStatus(env.call(http.MethodGet, "EntityDefinitions(LogicalName='contact')/Privileges", nil), http.StatusOK)
	if !strings.Contains(string(r.raw), `"Name":"prvAppendToContact"`) {
		t.Errorf("Privileges = %.300s", r.raw)
	}
}

// A custom column added through the admin API appears in metadata and is writable and
// readable at once.
func TestCustomColumnAddedThroughAdminIsKnownToMetadataWritesAndReads(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	if status := env.adminCall(http.MethodPost, "/tables/contact/columns", map[string]any{"logical_name": "new_region", "type": "String", "max_length": 100}, nil); status != http.StatusCreated {
		t.Fatalf("add column: %d", status)
	}
	r := env.mustStatus(env.call(http.MethodGet, "EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='new_region')", nil), http.StatusOK)
	if m := r.json(t); m["MaxLength"] != float64(100) || m["IsCustomAttribute"] != true || m["AttributeType"] != "String" {
		t.Errorf("new_region metadata = %s", r.raw)
	}
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidA+")", map[string]any{"lastname": "L", "new_region": "EMEA"}), http.StatusNoContent)
	r = env.mustStatus(env.call(http.MethodGet, "contacts("+guidA+")?$select=new_region", nil), http.StatusOK)
	if r.json(t)["new_region"] != "EMEA" {
		t.Errorf("read back: %s", r.raw)
	}
	r = env.call(http.MethodPatch, "contacts("+guidA+")", map[string]any{"new_region": strings.Repeat("x", 101)})
	if r.status != http.StatusBadRequest || r.errorCode(t) != codeValidation {
		t.Errorf("101 chars into new_region: %d %s", r.status, r.raw)
	}
	// Existing rows read the new column as null; bad specs are refused.
	if err := env.emu.AddColumn("contact", CustomColumn{LogicalName: "Region", Type: "String", MaxLength: 10}); err == nil {
		t.Error("AddColumn accepted a name without a publisher prefix")
	}
	if err := env.emu.AddColumn("contact", CustomColumn{LogicalName: "new_big", Type: "String"}); err == nil {
		t.Error("AddColumn accepted a String column without max_length")
	}
	if err := env.emu.AddColumn("account", CustomColumn{LogicalName: "new_tier", Type: "Integer"}); err != nil {
		t.Errorf("AddColumn Integer: %v", err)
	}
	env.mustStatus(env.call(http.MethodPost, "accounts", map[string]any{"name": "A", "new_tier": 3}), http.StatusNoContent)
	if err := env.emu.Reset(); err != nil {
		t.Fatal(err)
	}
	r = env.call(http.MethodGet, "EntityDefinitions(LogicalName='contact')/Attributes(LogicalName='new_region')", nil)
	if r.status != http.StatusNotFound {
		t.Errorf("after Reset the custom column still exists: %d", r.status)
	}
}
