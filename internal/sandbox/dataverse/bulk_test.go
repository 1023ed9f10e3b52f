package dataverse

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func contactTargets(n, from int, team string) map[string]any {
	targets := make([]map[string]any, n)
	for i := range targets {
		targets[i] = map[string]any{
			"@odata.type":        "Microsoft.Dynamics.CRM.contact",
			"contactid":          fmt.Sprintf("00000000-0000-4000-8000-%012d", from+i),
			"firstname":          fmt.Sprintf("First%d", from+i),
			"lastname":           fmt.Sprintf("Last%d", from+i),
			"emailaddress1":      fmt.Sprintf("person%d@example.com", from+i),
			"ownerid@odata.bind": "/teams(" + team + ")",
		}
	}
	return map[string]any{"Targets": targets}
}

// UpsertMultiple of 1,000 rows keyed by chosen GUIDs answers 204, creates then
// updates them, and counts as one bulk message of 1,000 items.
func TestUpsertMultipleOfAThousandRowsCreatesThenUpdates(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	team := env.emu.TeamID()
	r := env.mustStatus(env.call(http.MethodPost, "contacts/Microsoft.Dynamics.CRM.UpsertMultiple", contactTargets(1000, 0, team)), http.StatusNoContent)
	if len(r.raw) != 0 {
		t.Errorf("UpsertMultiple answered a body: %s", r.raw)
	}
	if n, _ := env.emu.Count("contact"); n != 1000 {
		t.Fatalf("count = %d, want 1000", n)
	}
	body := contactTargets(1000, 0, team)
	for _, item := range body["Targets"].([]map[string]any) {
		item["lastname"] = "Updated"
	}
	env.mustStatus(env.call(http.MethodPost, "contacts/Microsoft.Dynamics.CRM.UpsertMultiple", body), http.StatusNoContent)
	if n, _ := env.emu.Count("contact"); n != 1000 {
		t.Fatalf("count after the update pass = %d", n)
	}
	row, _ := env.emu.Row("contact", "00000000-0000-4000-8000-000000000999")
	if row["lastname"] != "Updated" || row["ownerid"] != team {
		t.Errorf("row 999 = %v", row)
	}
	c := env.emu.Counters()
	if c["bulk_message"] != 2 || c["bulk_items"] != 2000 || c["single_write"] != 0 {
		t.Errorf("counters = %v", c)
	}
	// The @odata.id form of the key (spec 4.7) addresses the row too.
	env.mustStatus(env.call(http.MethodPost, "contacts/Microsoft.Dynamics.CRM.UpsertMultiple", map[string]any{"Targets": []map[string]any{{
		"@odata.type": "Microsoft.Dynamics.CRM.contact", "@odata.id": "contacts(00000000-0000-4000-8000-000000000001)", "fax": "viaodataid"}}}), http.StatusNoContent)
	if row, _ := env.emu.Row("contact", "00000000-0000-4000-8000-000000000001"); row["fax"] != "viaodataid" {
		t.Errorf("@odata.id upsert: %v", row)
	}
}

// Spec 4.7: CreateMultiple answers 200 with Ids, UpdateMultiple 204; on standard tables the message is
// all-or-nothing, and every item needs @odata.type.
func TestCreateAndUpdateMultipleAreAllOrNothing(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	r := env.mustStatus(env.call(http.MethodPost, "accounts/Microsoft.Dynamics.CRM.CreateMultiple", map[string]any{"Targets": []map[string]any{
		{"@odata.type": "Microsoft.Dynamics.CRM.account", "name": "A", "accountid": guidA},
		{"@odata.type": "Microsoft.Dynamics.CRM.account", "name": "B"},
	}}), http.StatusOK)
	m := r.json(t)
	ids, _ := m["Ids"].([]any)
	if len(ids) != 2 || ids[0] != guidA || !strings.HasSuffix(m["@odata.context"].(string), "$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse") {
		t.Fatalf("CreateMultiple: %s", r.raw)
	}
	before := env.export("account")

	failing := []struct {
		name   string
		msg    string
		items  []map[string]any
		status int
		code   string
	}{
		{"one item too long", "CreateMultiple", []map[string]any{
			{"@odata.type": "Microsoft.Dynamics.CRM.account", "name": "C", "accountid": guidC},
			{"@odata.type": "Microsoft.Dynamics.CRM.account", "name": strings.Repeat("n", 161)}}, 400, codeValidation},
		{"one item already exists", "CreateMultiple", []map[string]any{
			{"@odata.type": "Microsoft.Dynamics.CRM.account", "name": "C", "accountid": guidC},
			{"@odata.type": "Microsoft.Dynamics.CRM.account", "name": "again", "accountid": guidA}}, 412, codeDuplicateRecord},
		{"one item missing", "UpdateMultiple", []map[string]any{
			{"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": guidA, "name": "renamed"},
			{"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": guidC, "name": "ghost"}}, 404, codeObjectDoesNotExist},
		{"an item without @odata.type", "UpsertMultiple", []map[string]any{
			{"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": guidA, "name": "renamed"},
			{"accountid": guidC, "name": "untyped"}}, 400, codePayload},
		{"an item of another table", "UpsertMultiple", []map[string]any{
			{"@odata.type": "Microsoft.Dynamics.CRM.contact", "accountid": guidA, "name": "renamed"}}, 400, codePayload},
		{"an update without a key", "UpdateMultiple", []map[string]any{
			{"@odata.type": "Microsoft.Dynamics.CRM.account", "name": "keyless"}}, 400, codePayload},
	}
	for _, tc := range failing {
		t.Run(tc.name, func(t *testing.T) {
			r := env.call(http.MethodPost, "accounts/Microsoft.Dynamics.CRM."+tc.msg, map[string]any{"Targets": tc.items})
			if r.status != tc.status || r.errorCode(t) != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, tc.status, tc.code)
			}
			if env.export("account") != before {
				t.Fatal("a failed bulk message changed stored rows")
			}
		})
	}
	env.mustStatus(env.call(http.MethodPost, "accounts/Microsoft.Dynamics.CRM.UpdateMultiple", map[string]any{"Targets": []map[string]any{
		{"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": guidA, "name": "renamed"}}}), http.StatusNoContent)
	if row, _ := env.emu.Row("account", guidA); row["name"] != "renamed" {
		t.Errorf("UpdateMultiple: %v", row)
	}
}

// Spec 4.7, 11: bulk-message availability is switchable per table, and the sdkmessagefilters probe a real
// client uses to decide answers according to the switch.
func TestBulkAvailabilitySwitchDrivesTheSdkMessageFilterProbe(t *testing.T) {
	env := newTestEnv(t, func(c *Config) { c.BulkMessagesOff = []string{"account:UpsertMultiple"} })
	env.login()
	probe := func(msg, table string) int {
		t.Helper()
		r := env.mustStatus(env.call(http.MethodGet, "sdkmessagefilters?$select=sdkmessagefilterid&$filter=sdkmessageid/name eq '"+msg+"' and primaryobjecttypecode eq '"+table+"'", nil), http.StatusOK)
		return len(r.json(t)["value"].([]any))
	}
	if probe("CreateMultiple", "contact") != 1 || probe("UpsertMultiple", "contact") != 1 || probe("UpsertMultiple", "account") != 0 {
		t.Fatalf("probe with account:UpsertMultiple off: contact Create %d Upsert %d, account Upsert %d",
			probe("CreateMultiple", "contact"), probe("UpsertMultiple", "contact"), probe("UpsertMultiple", "account"))
	}
	r := env.call(http.MethodPost, "accounts/Microsoft.Dynamics.CRM.UpsertMultiple", map[string]any{"Targets": []map[string]any{
		{"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": guidA, "name": "x"}}})
	if r.status != http.StatusBadRequest || r.errorCode(t) != codeMessageNotSupported {
		t.Fatalf("disabled message: %d %s", r.status, r.raw)
	}
	if n, _ := env.emu.Count("account"); n != 0 {
		t.Fatal("a disabled message wrote rows")
	}
	var avail map[string]map[string]bool
	if status := env.adminCall(http.MethodPut, "/bulk-messages", map[string]any{"account": map[string]bool{"UpsertMultiple": true}, "contact": map[string]bool{"CreateMultiple": false}}, &avail); status != http.StatusOK {
		t.Fatalf("PUT /bulk-messages: %d", status)
	}
	if !avail["account"]["UpsertMultiple"] || avail["contact"]["CreateMultiple"] {
		t.Errorf("availability = %v", avail)
	}
	if probe("UpsertMultiple", "account") != 1 || probe("CreateMultiple", "contact") != 0 {
		t.Error("probe does not follow the switch")
	}
	env.mustStatus(env.call(http.MethodPost, "accounts/Microsoft.Dynamics.CRM.UpsertMultiple", map[string]any{"Targets": []map[string]any{
		{"@odata.type": "Microsoft.Dynamics.CRM.account", "accountid": guidA, "name": "x"}}}), http.StatusNoContent)
	if err := env.emu.SetBulkMessage("team", "CreateMultiple", true); err == nil {
		t.Error("SetBulkMessage accepted a system table")
	}
}
