package strictjson_test

import (
	"errors"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/strictjson"
)

type inner struct {
	Name string `json:"name" crmsync:"required"`
	Note string `json:"note,omitempty"`
}

type outer struct {
	Active bool              `json:"active" crmsync:"required"`
	Inner  inner             `json:"inner"`
	List   []inner           `json:"list,omitempty"`
	Map    map[string]inner  `json:"map,omitempty"`
	When   time.Time         `json:"when,omitzero"`
	Any    any               `json:"any,omitempty"`
	Ptr    *inner            `json:"ptr,omitempty"`
	Raw    map[string]string `json:"raw,omitempty"`
}

func TestStrictDecoding(t *testing.T) {
	for _, k := range []struct {
		name, body string
		kind       strictjson.Kind
		field      string
		ok         bool
	}{
		{"valid", `{"active":true,"inner":{"name":"a"},"list":[{"name":"b"}],"map":{"x":{"name":"c"}},"when":"2026-01-01T00:00:00Z","any":{"a":[1,{"b":2}]}}`, 0, "", true},
		{"missing required", `{"inner":{"name":"a"}}`, strictjson.Missing, "active", false},
		{"required null", `{"active":null}`, strictjson.Missing, "active", false},
		{"nested required", `{"active":true,"inner":{}}`, strictjson.Missing, "inner.name", false},
		{"required in a list element", `{"active":true,"list":[{"name":"a"},{"note":"x"}]}`, strictjson.Missing, "list[1].name", false},
		{"required behind a pointer", `{"active":true,"ptr":{}}`, strictjson.Missing, "ptr.name", false},
		{"an absent pointer is not walked", `{"active":true}`, 0, "", true},
		{"duplicate", `{"active":true,"active":false}`, strictjson.Duplicate, "active", false},
		{"duplicate in another case", `{"active":true,"Active":false}`, strictjson.Duplicate, "Active", false},
		{"nested duplicate", `{"active":true,"inner":{"name":"a","NAME":"b"}}`, strictjson.Duplicate, "inner.NAME", false},
		{"duplicate map key in another case", `{"active":true,"raw":{"k":"1","K":"2"}}`, strictjson.Duplicate, "raw.K", false},
		{"unknown", `{"active":true,"colour":1}`, strictjson.Unknown, "colour", false},
		{"another case", `{"ACTIVE":true}`, strictjson.Unknown, "ACTIVE", false},
		{"unknown in a list", `{"active":true,"list":[{"name":"a","x":1}]}`, strictjson.Unknown, "list[0].x", false},
		{"interfaces are not walked", `{"active":true,"any":{"k":1,"k":2}}`, 0, "", true},
		{"null body", `null`, strictjson.Type, "", false},
		{"array body", `[]`, strictjson.Type, "", false},
		{"object for a string", `{"active":true,"inner":{"name":{}}}`, strictjson.Type, "inner.name", false},
		{"wrong scalar type", `{"active":"yes"}`, strictjson.Type, "active", false},
		{"trailing data", `{"active":true} {}`, strictjson.Syntax, "", false},
		{"empty", ``, strictjson.Syntax, "", false},
		{"malformed", `{"active":tru}`, strictjson.Syntax, "", false},
		{"bad time", `{"active":true,"when":"yesterday"}`, strictjson.Type, "", false},
	} {
		var v outer
		err := strictjson.Decode([]byte(k.body), &v)
		if k.ok {
			if err != nil {
				t.Errorf("%s: %v", k.name, err)
			}
			continue
		}
		var se *strictjson.Error
		var me strictjson.MissingErrors
		switch {
		case errors.As(err, &me):
			if k.kind != strictjson.Missing || me[0].Field != k.field {
				t.Errorf("%s: missing %v, want kind %d field %q", k.name, me, k.kind, k.field)
			}
		case errors.As(err, &se):
			if se.Kind != k.kind || se.Field != k.field || se.Message == "" {
				t.Errorf("%s: kind %d field %q (%s), want kind %d field %q", k.name, se.Kind, se.Field, se.Message, k.kind, k.field)
			}
		default:
			t.Errorf("%s: %v (%T), want a refusal", k.name, err, err)
		}
	}
}
