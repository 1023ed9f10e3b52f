package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

var bothSynced = map[string]string{"Contact": "contact", "Account": "account"}

func contactConfig() TableConfig {
	return TableConfig{SourceTable: "Contact", UsePredefined: true}
}

func hasProblem(ps Problems, code, column, path string) bool {
	for _, p := range ps {
		if p.Code == code && p.Column == column && (path == "" || p.Path == path) {
			return true
		}
	}
	return false
}

func TestPredefinedContactMappingMatchesArchitecture(t *testing.T) {
	cols, probs := resolve(contactConfig(), []string{"Contact", "Account"})
	if len(probs) != 0 {
		t.Fatalf("problems: %v", probs)
	}
	want := map[string]string{
		"contactid": "Id", "assistantname": "AssistantName", "assistantphone": "AssistantPhone", "birthdate": "Birthdate",
		"department": "Department", "description": "Description", "emailaddress1": "Email", "fax": "Fax",
		"firstname": "FirstName", "lastname": "LastName", "mobilephone": "MobilePhone", "salutation": "Salutation",
		"telephone1": "Phone", "parentcustomerid": "AccountId",
	}
	if len(cols) != len(want) {
		t.Fatalf("got %d columns, want %d: %+v", len(cols), len(want), cols)
	}
	if !cols[0].Key || cols[0].Destination != "contactid" {
		t.Errorf("the key must come first: %+v", cols[0])
	}
	for _, c := range cols {
		if want[c.Destination] != c.Source || !c.Predefined {
			t.Errorf("column %s ← %s (predefined %v), want ← %s", c.Destination, c.Source, c.Predefined, want[c.Destination])
		}
	}
}

func TestAccountLookupNeedsAccountSynced(t *testing.T) {
	cols, _ := resolve(contactConfig(), []string{"Contact"})
	for _, c := range cols {
		if c.Destination == "parentcustomerid" {
			t.Fatal("parentcustomerid is mapped although Account is not synced")
		}
	}
}

func TestOverridesAndExclusions(t *testing.T) {
	cfg := contactConfig()
	cfg.Columns = map[string]ColumnOverride{"new_region": {Source: "Region__c"}, "telephone1": {Source: "MobilePhone"}}
	cfg.ExcludeColumns = []string{"fax"}
	cols, probs := resolve(cfg, []string{"Contact"})
	if len(probs) != 0 {
		t.Fatalf("problems: %v", probs)
	}
	got := map[string]Column{}
	for _, c := range cols {
		got[c.Destination] = c
	}
	if _, ok := got["fax"]; ok {
		t.Error("fax was excluded but is still mapped")
	}
	if c := got["telephone1"]; c.Source != "MobilePhone" || c.Predefined {
		t.Errorf("override of telephone1 = %+v", c)
	}
	if c := got["new_region"]; c.Source != "Region__c" {
		t.Errorf("added column new_region = %+v", c)
	}
}

func TestResetIsRemovingAllOverrides(t *testing.T) {
	plain, _ := resolve(contactConfig(), nil)
	cfg := contactConfig()
	cfg.Columns = map[string]ColumnOverride{}
	again, _ := resolve(cfg, nil)
	if len(plain) != len(again) {
		t.Fatalf("an empty override map must give the predefined mapping: %d vs %d", len(plain), len(again))
	}
}

func TestResolveReportsConfigProblemsWithPaths(t *testing.T) {
	cfg := contactConfig()
	cfg.Columns = map[string]ColumnOverride{
		"contactid":  {Source: "Email"},
		"Department": {Source: "Title"}, "department": {Source: "Email"},
		"new_x": {Source: ""},
	}
	cfg.ExcludeColumns = []string{"contactid", "nosuch"}
	cfg.DeleteBehaviour = "explode"
	_, probs := resolve(cfg, nil)
	for _, w := range []struct{ code, col, path string }{
		{CodeBadConfig, "contactid", "columns.contactid.source"},
		{CodeTwoSources, "department", "columns.department.source"},
		{CodeBadConfig, "new_x", "columns.new_x.source"},
		{CodeBadExclusion, "contactid", "exclude_columns[0]"},
		{CodeBadExclusion, "nosuch", "exclude_columns[1]"},
		{CodeBadConfig, "", PathDeleteBehaviour},
	} {
		if !hasProblem(probs, w.code, w.col, w.path) {
			t.Errorf("missing problem %s on %q at %s; got %v", w.code, w.col, w.path, probs)
		}
	}
}

func TestStaticValidationOfPredefinedMappings(t *testing.T) {
	cfg := contactConfig()
	cols, _ := resolve(cfg, []string{"Contact", "Account"})
	probs := validate(cfg, cols, staticSchemas(cfg, bothSynced))
	if probs.HasErrors() {
		t.Fatalf("the predefined contact mapping must have no errors: %v", probs.Errors())
	}
	// LastName (80) into lastname (50) and Description (32000) into description (2000) are longer.
	for _, col := range []string{"lastname", "description"} {
		if !hasProblem(probs, CodeSourceLonger, col, PathPredefined) {
			t.Errorf("expected a length warning on %s: %v", col, probs)
		}
	}
	for _, p := range probs {
		if p.Severity != Warning {
			t.Errorf("unexpected %v", p)
		}
	}
}

func TestValidationFindsEveryProblem(t *testing.T) {
	cfg := contactConfig()
	cfg.Columns = map[string]ColumnOverride{
		"nosuchcolumn":  {Source: "Email"},       // unknown destination
		"jobtitle":      {Source: "NoSuchField"}, // unknown source
		"birthdate":     {Source: "Email"},       // incompatible: email into DateTime
		"entityimage":   {Source: "Title"},       // Virtual
		"owneridtype":   {Source: "Title"},       // EntityName
		"telephone1":    {Source: "AccountId"},   // reference into String
		"createdon":     {Source: "CreatedDate"}, // read-only
		"department":    {Source: "Description", Truncate: true},
		"assistantname": {Source: "Description"}, // longer, warning
	}
	cfg.ExcludeColumns = []string{"lastname"} // required
	cols, probs := resolve(cfg, []string{"Contact"})
	if len(probs) != 0 {
		t.Fatalf("resolve: %v", probs)
	}
	probs = validate(cfg, cols, staticSchemas(cfg, map[string]string{"Contact": "contact"}))
	for _, w := range []struct{ code, col, path string }{
		{CodeUnknownDestination, "nosuchcolumn", "columns.nosuchcolumn.source"},
		{CodeUnknownSource, "jobtitle", "columns.jobtitle.source"},
		{CodeIncompatibleTypes, "birthdate", "columns.birthdate.source"},
		{CodeNotWritable, "entityimage", ""},
		{CodeNotWritable, "owneridtype", ""},
		{CodeIncompatibleTypes, "telephone1", ""},
		{CodeNotWritable, "createdon", ""},
		{CodeRequiredUnmapped, "lastname", "exclude_columns[0]"},
		{CodeSourceLonger, "assistantname", ""},
	} {
		if !hasProblem(probs, w.code, w.col, w.path) {
			t.Errorf("missing %s on %s (%s); got:\n%v", w.code, w.col, w.path, probs)
		}
	}
	if hasProblem(probs, CodeSourceLonger, "department", "") {
		t.Error("truncate = true must silence the length warning")
	}
}

func TestStaticValidationSkipsCustomNamesButLiveDoesNot(t *testing.T) {
	cfg := contactConfig()
	cfg.Columns = map[string]ColumnOverride{"new_region": {Source: "Region__c"}}
	cols, _ := resolve(cfg, nil)
	if probs := validate(cfg, cols, staticSchemas(cfg, nil)); probs.HasErrors() {
		t.Fatalf("static validation must not reject custom names: %v", probs)
	}
	live := sides{Source: StandardSource("Contact"), Dest: StandardDestination("contact")}
	probs := validate(cfg, cols, live)
	if !hasProblem(probs, CodeUnknownSource, "new_region", "") || !hasProblem(probs, CodeUnknownDestination, "new_region", "") {
		t.Errorf("live validation must reject names the schemas lack: %v", probs)
	}
}

func TestLookupTargetMustBeSynced(t *testing.T) {
	cfg := TableConfig{SourceTable: "Account", UsePredefined: true, Columns: map[string]ColumnOverride{"primarycontactid": {Source: "OwnerId"}}}
	cols, _ := resolve(cfg, nil)
	probs := validate(cfg, cols, staticSchemas(cfg, bothSynced))
	if !hasProblem(probs, CodeLookupTargetNotSynced, "primarycontactid", "columns.primarycontactid.source") {
		t.Errorf("OwnerId (User) into primarycontactid must be rejected: %v", probs)
	}
}

func compileContact(t *testing.T, cfg TableConfig) *Plan {
	t.Helper()
	cols, probs := resolve(cfg, []string{"Contact", "Account"})
	if probs.HasErrors() {
		t.Fatal(probs)
	}
	p, probs := Compile(cfg, cols, Live{Source: StandardSource("Contact"), Dest: StandardDestination("contact")},
		Tables{DestOf: bothSynced, EntitySetOf: map[string]string{"account": "accounts", "contact": "contacts"}, OwnerTeamID: "11111111-2222-3333-4444-555555555555"})
	if p == nil {
		t.Fatal(probs)
	}
	return p
}

func TestRowConvertsEveryTypeAndBindsLookupAndOwner(t *testing.T) {
	p := compileContact(t, contactConfig())
	row, err := p.Row(map[string]any{
		"Id": "003D000000QV9n2", "FirstName": "Zoë", "LastName": "Lovelace", "Email": "ada@example.com",
		"Birthdate": "1815-12-10", "AccountId": "001D000000IqhSL", "Fax": nil, "Description": "",
	})
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]any{
		"contactid":                           "", // checked below
		"firstname":                           "Zoë",
		"lastname":                            "Lovelace",
		"emailaddress1":                       "ada@example.com",
		"birthdate":                           "1815-12-10",
		"parentcustomerid_account@odata.bind": "/accounts(bb9ff4c0-591c-5a23-8cbe-566a8191dff5)",
		"ownerid@odata.bind":                  "/teams(11111111-2222-3333-4444-555555555555)",
		"fax":                                 nil,
		"description":                         nil,
	}
	for k, v := range checks {
		if k == "contactid" {
			continue
		}
		if got, ok := row[k]; !ok || got != v {
			t.Errorf("%s = %#v, want %#v", k, got, v)
		}
	}
	if id, _ := p.Key("003D000000QV9n2IAD"); row["contactid"] != id {
		t.Errorf("contactid = %v, want %v", row["contactid"], id)
	}
}

func TestDatesFromEveryAPIForm(t *testing.T) {
	p := compileContact(t, contactConfig())
	for _, v := range []any{"1990-03-04", time.Date(1990, 3, 4, 0, 0, 0, 0, time.UTC)} {
		row, err := p.Patch(map[string]any{"Birthdate": v}, []string{"Birthdate"})
		if err != nil || row["birthdate"] != "1990-03-04" {
			t.Errorf("Birthdate %#v → %#v, %v", v, row, err)
		}
	}
}

func TestPatchWritesOnlyChangedMappedColumnsAndNulls(t *testing.T) {
	p := compileContact(t, contactConfig())
	row, err := p.Patch(map[string]any{"Phone": "555-0100", "Fax": nil, "Title": "CEO"}, []string{"Phone", "Fax", "Title", "LastModifiedDate"})
	if err != nil {
		t.Fatal(err)
	}
	if len(row) != 2 || row["telephone1"] != "555-0100" || row["fax"] != nil {
		t.Errorf("patch = %#v, want telephone1 and a null fax only", row)
	}
	if _, ok := row["fax"]; !ok {
		t.Error("a nulled field must be sent as null")
	}
	if row, _ := p.Patch(map[string]any{"Title": "x"}, []string{"Title"}); row != nil {
		t.Errorf("an unmapped change must give no patch, got %#v", row)
	}
	row, _ = p.Patch(map[string]any{"AccountId": nil}, []string{"AccountId"})
	if v, ok := row["parentcustomerid_account@odata.bind"]; !ok || v != nil {
		t.Errorf("clearing AccountId must unbind the lookup: %#v", row)
	}
}

func TestTooLongValuesAreRejectedOrTruncated(t *testing.T) {
	long := strings.Repeat("é", 60)
	p := compileContact(t, contactConfig())
	_, err := p.Patch(map[string]any{"LastName": long}, []string{"LastName"})
	var ve *ValueError
	if !errors.As(err, &ve) || ve.Column != "lastname" {
		t.Fatalf("60 characters into lastname (50) must fail with the column named: %v", err)
	}
	cfg := contactConfig()
	cfg.Columns = map[string]ColumnOverride{"lastname": {Source: "LastName", Truncate: true}}
	p = compileContact(t, cfg)
	row, err := p.Patch(map[string]any{"LastName": long}, []string{"LastName"})
	if err != nil || row["lastname"] != strings.Repeat("é", 50) {
		t.Errorf("truncated = %q, %v", row["lastname"], err)
	}
}

func TestNumbersIntoAccountColumns(t *testing.T) {
	cfg := TableConfig{SourceTable: "Account", UsePredefined: true}
	cols, _ := resolve(cfg, nil)
	p, probs := Compile(cfg, cols, Live{Source: StandardSource("Account"), Dest: StandardDestination("account")}, Tables{})
	if p == nil {
		t.Fatal(probs)
	}
	for _, v := range []any{float64(250), "250", int64(250)} {
		row, err := p.Patch(map[string]any{"NumberOfEmployees": v}, []string{"NumberOfEmployees"})
		if err != nil || row["numberofemployees"] != int64(250) {
			t.Errorf("%#v → %#v, %v", v, row, err)
		}
	}
	if _, err := p.Patch(map[string]any{"NumberOfEmployees": 2.5}, []string{"NumberOfEmployees"}); err == nil {
		t.Error("a fraction into an Integer column must fail")
	}
	if _, err := p.Patch(map[string]any{"NumberOfEmployees": float64(2e9)}, []string{"NumberOfEmployees"}); err == nil {
		t.Error("a value beyond the column's range must fail")
	}
	if got := p.SourceFields(); got[0] != "Id" || len(got) != 9 {
		t.Errorf("source fields = %v", got)
	}
}

// TestAppendRowEncodesWhatRowBuilds checks the load path's encoder against Row: the same members with the
// same values, the primary key left out, and the same refusal of a bad value.
func TestAppendRowEncodesWhatRowBuilds(t *testing.T) {
	p := compileContact(t, contactConfig())
	for _, rec := range []map[string]any{
		{"Id": "003D000000QV9n2", "FirstName": "Zoë \"Q\"", "LastName": "Lovelace", "Email": "ada@example.com",
			"Birthdate": "1815-12-10", "AccountId": "001D000000IqhSL", "Fax": nil, "Description": "line\nbreak"},
		{"Id": "003D000000QV9n3", "LastName": "Nguyễn", "AccountId": ""},
		// 50 characters in 100 bytes: longer than lastname's 50 in bytes, not in UTF-16 code units.
		{"Id": "003D000000QV9n4", "LastName": strings.Repeat("é", 50), "Description": "🙂 emoji"},
	} {
		row, err := p.Row(rec)
		if err != nil {
			t.Fatal(err)
		}
		delete(row, p.PrimaryID)
		enc, err := p.AppendRow([]byte(`"prefix":1`), rec)
		if err != nil {
			t.Fatal(err)
		}
		m, ok := strings.CutPrefix(string(enc), `"prefix":1,`)
		if !ok {
			t.Fatalf("AppendRow must append after what b holds, with a comma: %s", enc)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte("{"+m+"}"), &got); err != nil {
			t.Fatalf("AppendRow wrote invalid members %s: %v", m, err)
		}
		if len(got) != len(row) {
			t.Errorf("AppendRow wrote %d members, Row %d (without the key): %s", len(got), len(row), m)
		}
		for k, v := range row {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("%s: AppendRow %#v, Row %#v", k, g, v)
			}
		}
	}
	for col, rec := range map[string]map[string]any{
		"lastname":         {"Id": "003D000000QV9n2", "LastName": strings.Repeat("x", 51)},
		"parentcustomerid": {"Id": "003D000000QV9n2", "LastName": "x", "AccountId": "not-an-id"},
	} {
		_, err := p.AppendRow(nil, rec)
		var ve *ValueError
		if !errors.As(err, &ve) || ve.Column != col {
			t.Errorf("a bad %s value must fail with the column named: %v", col, err)
		}
	}
}

// TestAppendValuesWritesWhatAppendRowWrites: the load's Bulk rows, given by position, are written byte for
// byte as the same records read into a map (an empty CSV value being null), refusals included; a field the
// header lacks is null, and header names match in any case, as map lookups do.
func TestAppendValuesWritesWhatAppendRowWrites(t *testing.T) {
	p := compileContact(t, contactConfig())
	header := append([]string{"Id"}, p.SourceFields()[1:]...)
	header[len(header)-1] = strings.ToUpper(header[len(header)-1]) // matched in any case
	header = append(header[:2], header[3:]...)                     // one field missing: null
	pos := p.Positions(header)
	for _, rec := range []map[string]any{
		{"Id": "003D000000QV9n2", "FirstName": "Zoë \"Q\"", "LastName": "Lovelace", "Email": "ada@example.com",
			"Birthdate": "1815-12-10", "AccountId": "001D000000IqhSL", "Description": "line\nbreak", "HasOptedOutOfEmail": "true"},
		{"Id": "003D000000QV9n3", "LastName": "Nguyễn"},
		{"Id": "003D000000QV9n4", "LastName": strings.Repeat("é", 50), "Description": "🙂 emoji", "Birthdate": "2001-02-03"},
		{"Id": "003D000000QV9n5", "LastName": strings.Repeat("x", 51)},
		{"Id": "003D000000QV9n6", "LastName": "x", "AccountId": "not-an-id"},
		{"Id": "003D000000QV9n7", "LastName": "x", "Birthdate": "not a date"},
	} {
		vals := make([]string, len(header))
		asMap := map[string]any{}
		for j, h := range header {
			f := p.SourceFields()[slices.IndexFunc(p.SourceFields(), func(s string) bool { return strings.EqualFold(s, h) })]
			s, _ := rec[f].(string)
			vals[j] = s
			if s == "" {
				asMap[h] = nil
			} else {
				asMap[h] = s
			}
		}
		want, wantErr := p.AppendRow([]byte(`"prefix":1`), asMap)
		got, err := p.AppendValues([]byte(`"prefix":1`), pos, vals)
		if !bytes.Equal(got, want) || fmt.Sprint(err) != fmt.Sprint(wantErr) {
			t.Errorf("record %v:\nAppendValues %s, %v\nAppendRow    %s, %v", rec["Id"], got, err, want, wantErr)
		}
	}
}
