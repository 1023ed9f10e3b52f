package mapping

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzResolveAndValidate: any table mapping (as the control plane and the provider receive it, JSON)
// resolves and validates without panicking; every problem names its path and says what is wrong; the
// answer does not depend on anything but the input; and a mapping without errors compiles against the
// built-in schemas into a plan that converts a record without panicking.
func FuzzResolveAndValidate(f *testing.F) {
	for _, s := range []string{
		`{"source_table":"Contact","use_predefined_mappings":true}`,
		`{"source_table":"Account","use_predefined_mappings":true,"exclude_columns":["fax","name"]}`,
		`{"source_table":"Contact","use_predefined_mappings":true,"columns":{"new_region":{"source":"Region__c"},"description":{"source":"Description","truncate":true},"telephone1":{"source":"MobilePhone"}}}`,
		`{"source_table":"Contact","destination_table":"account","columns":{"name":{"source":"LastName"}}}`,
		`{"source_table":"Contact","use_predefined_mappings":true,"columns":{"emailaddress1":{"source":"Id"},"birthdate":{"source":"Phone"}},"delete_behaviour":"deactivate"}`,
		`{"source_table":"Foo__c","destination_table":"new_foo","columns":{"new_name":{"source":"Name"},"new_lookup":{"source":"Account__c"}}}`,
		`{"source_table":"","columns":{"":{"source":""}},"exclude_columns":[""],"delete_behaviour":"explode"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var cfg TableConfig
		if json.Unmarshal(data, &cfg) != nil {
			return
		}
		synced := map[string]string{"Contact": "contact", "Account": "account"}
		synced[cfg.SourceTable] = cfg.Destination()
		sources := []string{"Contact", "Account", cfg.SourceTable}
		cols, probs := resolve(cfg, sources)
		probs = append(probs, validate(cfg, cols, staticSchemas(cfg, synced))...)
		cols2, probs2 := resolve(cfg, sources)
		probs2 = append(probs2, validate(cfg, cols2, staticSchemas(cfg, synced))...)
		if !reflect.DeepEqual(probs, probs2) || !reflect.DeepEqual(cols, cols2) {
			t.Fatalf("two validations of %s differ:\n%v\n%v", data, probs, probs2)
		}
		for _, p := range probs {
			if p.Path == "" || p.Message == "" || p.Code == "" {
				t.Fatalf("problem without a path, code or message for %s: %+v", data, p)
			}
		}
		if probs.HasErrors() {
			return
		}
		src, dst := StandardSource(cfg.SourceTable), StandardDestination(cfg.Destination())
		if src == nil || dst == nil {
			return
		}
		plan, _ := Compile(cfg, cols, Live{Source: src, Dest: dst},
			Tables{DestOf: synced, EntitySetOf: map[string]string{"account": "accounts", "contact": "contacts"}, OwnerTeamID: "11111111-2222-3333-4444-555555555555"})
		if plan == nil {
			return
		}
		_, _ = plan.Row(map[string]any{"Id": "003D000000QV9n2", "LastName": "Lovelace", "Birthdate": "1815-12-10",
			"AccountId": "001D000000IqhSL", "NumberOfEmployees": 12, "Name": "Acme", "Region__c": "EMEA"})
	})
}
