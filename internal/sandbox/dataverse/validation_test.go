package dataverse

import (
	"net/http"
	"strings"
	"testing"
)

// Each invalid write fails with Dataverse's status and code, and a failed
// write never changes stored rows.
func TestValidationFailuresUseDataverseCodesAndChangeNothing(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidA+")", map[string]any{"lastname": "Original", "firstname": "F"}), http.StatusNoContent)
	env.mustStatus(env.call(http.MethodPatch, "accounts("+guidB+")", map[string]any{"name": "Acct"}), http.StatusNoContent)
	beforeContacts, beforeAccounts := env.export("contact"), env.export("account")

	cases := []struct {
		name    string
		method  string
		path    string
		body    any
		status  int
		code    string
		message string // substring
	}{
		{"string over MaxLength", http.MethodPatch, "contacts(" + guidA + ")", map[string]any{"lastname": strings.Repeat("x", 51)},
			400, codeValidation, "A validation error occurred.  The length of the 'lastname' attribute of the 'contact' entity exceeded the maximum allowed length of '50'."},
		{"memo over MaxLength", http.MethodPost, "accounts", map[string]any{"name": "n", "description": strings.Repeat("d", 2001)},
			400, codeValidation, "'description' attribute of the 'account' entity exceeded the maximum allowed length of '2000'"},
		{"MaxLength counts UTF-16 units", http.MethodPatch, "accounts(" + guidB + ")", map[string]any{"tickersymbol": strings.Repeat("😀", 6)},
			400, codeValidation, "maximum allowed length of '10'"},
		{"required column missing on create", http.MethodPost, "contacts", map[string]any{"firstname": "No last name"},
			400, codeValidation, "'lastname'"},
		{"required column set to null", http.MethodPatch, "accounts(" + guidB + ")", map[string]any{"name": nil},
			400, codeValidation, "'name'"},
		{"lookup to a missing row", http.MethodPatch, "contacts(" + guidA + ")", map[string]any{"parentcustomerid_account@odata.bind": "/accounts(" + guidC + ")"},
			404, codeObjectDoesNotExist, "account With Id = " + guidC + " Does Not Exist"},
		{"owner that does not exist", http.MethodPatch, "contacts(" + guidA + ")", map[string]any{"ownerid@odata.bind": "/teams(" + guidC + ")"},
			404, codeObjectDoesNotExist, "team With Id"},
		{"string where a number belongs", http.MethodPatch, "accounts(" + guidB + ")", map[string]any{"numberofemployees": "ten"},
			400, codePayload, "Cannot convert the literal 'ten' to the expected type 'Edm.Int32'."},
		{"number where a string belongs", http.MethodPatch, "contacts(" + guidA + ")", map[string]any{"firstname": 42},
			400, codePayload, "'Edm.String'"},
		{"fraction into an integer", http.MethodPatch, "accounts(" + guidB + ")", map[string]any{"numberofemployees": 1.5},
			400, codePayload, "'Edm.Int32'"},
		{"integer out of range", http.MethodPatch, "accounts(" + guidB + ")", map[string]any{"numberofemployees": 2000000000},
			400, codeValidation, "outside the valid range"},
		{"bad date", http.MethodPatch, "contacts(" + guidA + ")", map[string]any{"birthdate": "yesterday"},
			400, codePayload, "'Edm.Date'"},
		{"date before 1753", http.MethodPatch, "contacts(" + guidA + ")", map[string]any{"birthdate": "1700-01-01"},
			400, codeValidation, "outside the supported range"},
		{"bad boolean", http.MethodPatch, "contacts(" + guidA + ")", map[string]any{"donotemail": "yes"},
			400, codePayload, "'Edm.Boolean'"},
		{"picklist value not in the option set", http.MethodPatch, "contacts(" + guidA + ")", map[string]any{"preferredcontactmethodcode": 99},
			400, codeValidation, "outside the valid range"},
		{"invalid e-mail", http.MethodPatch, "contacts(" + guidA + ")", map[string]any{"emailaddress1": "not an address"},
			400, codeValidation, "e-mail"},
		{"unknown column", http.MethodPatch, "contacts(" + guidA + ")", map[string]any{"favouritecolour": "blue"},
			400, codeODataParse, "The property 'favouritecolour' does not exist on type 'Microsoft.Dynamics.CRM.contact'."},
		{"undeclared navigation property", http.MethodPatch, "contacts(" + guidA + ")", map[string]any{"nosuchnav@odata.bind": "/accounts(" + guidB + ")"},
			400, codeODataParse, "An undeclared property 'nosuchnav'"},
		{"lookup written directly", http.MethodPatch, "contacts(" + guidA + ")", map[string]any{"_parentcustomerid_value": guidB},
			400, codeODataParse, "CRM do not support direct update of Entity Reference properties, Use Navigation properties instead."},
		{"statecode on create", http.MethodPost, "contacts", map[string]any{"lastname": "S", "statecode": 1},
			400, codeInvalidArgument, "'statecode' of entity 'contact' is not valid for create"},
		{"read-only column", http.MethodPatch, "contacts(" + guidA + ")", map[string]any{"createdon": "2020-01-01T00:00:00Z"},
			400, codeInvalidArgument, "'createdon' of entity 'contact' is not valid for update"},
		{"read-only derived column", http.MethodPatch, "contacts(" + guidA + ")", map[string]any{"fullname": "X Y"},
			400, codeInvalidArgument, "'fullname'"},
		{"primary key is not updatable through the payload", http.MethodPatch, "contacts(" + guidA + ")", map[string]any{"contactid": guidC},
			400, codeODataParse, "does not match"},
		{"status that does not belong to the state", http.MethodPatch, "contacts(" + guidA + ")", map[string]any{"statecode": 0, "statuscode": 2},
			400, codeInvalidArgument, "not a valid status code"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := env.call(tc.method, tc.path, tc.body)
			if r.status != tc.status || r.errorCode(t) != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, tc.status, tc.code)
			}
			if msg := r.errorMessage(t); !strings.Contains(msg, tc.message) {
				t.Errorf("message %q does not contain %q", msg, tc.message)
			}
			if r.header.Get("Content-Type") != "application/json; odata.metadata=minimal" {
				t.Errorf("error Content-Type = %q", r.header.Get("Content-Type"))
			}
		})
	}
	if env.export("contact") != beforeContacts || env.export("account") != beforeAccounts {
		t.Fatal("a failed write changed stored rows")
	}

	// Values exactly at the limit are accepted.
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidA+")", map[string]any{"lastname": strings.Repeat("x", 50),
		"description": strings.Repeat("é", 2000)}), http.StatusNoContent)
	env.mustStatus(env.call(http.MethodPatch, "accounts("+guidB+")", map[string]any{"tickersymbol": strings.Repeat("😀", 5)}), http.StatusNoContent)
	// A status alone moves the state with it.
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidA+")", map[string]any{"statuscode": 2}), http.StatusNoContent)
	if row, _ := env.emu.Row("contact", guidA); row["statecode"] != int64(1) {
		t.Errorf("statuscode 2 left statecode %v", row["statecode"])
	}
}

// The unverified rules are switchable (spec: keep [unverified] facts configurable).
func TestBehaviourSwitchesRelaxUnverifiedRules(t *testing.T) {
	env := newTestEnv(t, func(c *Config) {
		c.Behaviour = Behaviour{AllowMissingRequired: true, IgnoreReadOnlyColumns: true, SkipEmailValidation: true}
	})
	env.login()
	env.mustStatus(env.call(http.MethodPost, "contacts", map[string]any{"contactid": guidA, "firstname": "No last name",
		"statecode": 1, "createdon": "2020-01-01T00:00:00Z", "emailaddress1": "whatever"}), http.StatusNoContent)
	row, _ := env.emu.Row("contact", guidA)
	if row["statecode"] != int64(0) || row["createdon"] == "2020-01-01T00:00:00Z" || row["emailaddress1"] != "whatever" {
		t.Errorf("ignored columns were applied or the e-mail was refused: %v", row)
	}
	var b Behaviour
	if status := env.adminCall(http.MethodPut, "/behaviour", Behaviour{}, &b); status != http.StatusOK || b.AllowMissingRequired {
		t.Fatalf("PUT /behaviour: %d %+v", status, b)
	}
	r := env.call(http.MethodPost, "contacts", map[string]any{"firstname": "No last name"})
	if r.status != http.StatusBadRequest {
		t.Errorf("required enforcement not restored: %d", r.status)
	}
}

// Done means: malformed input of each kind gets the real error shape and never corrupts stored rows.
func TestMalformedInputGetsDataverseErrorsAndKeepsRows(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	env.mustStatus(env.call(http.MethodPatch, "contacts("+guidA+")", map[string]any{"lastname": "Kept"}), http.StatusNoContent)
	before := env.export("contact")
	batchCT := "multipart/mixed; boundary=batch_x"
	okPart := "--batch_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nPATCH /api/data/v9.2/contacts(" + guidA + ") HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"lastname\":\"Changed\"}\r\n"
	var huge strings.Builder
	for i := 0; i < maxBatchOperations+1; i++ {
		huge.WriteString("--batch_x\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n\r\nPATCH /api/data/v9.2/contacts(" + guidA + ") HTTP/1.1\r\nContent-Type: application/json\r\n\r\n{\"lastname\":\"Changed\"}\r\n")
	}
	huge.WriteString("--batch_x--\r\n")
	cases := []struct {
		name    string
		method  string
		path    string
		body    string
		headers []string
		status  int
		code    string
	}{
		{"truncated JSON", http.MethodPatch, "contacts(" + guidA + ")", `{"lastname":"Changed"`, nil, 400, codePayload},
		{"not an object", http.MethodPatch, "contacts(" + guidA + ")", `["lastname"]`, nil, 400, codePayload},
		{"two JSON values", http.MethodPatch, "contacts(" + guidA + ")", `{"lastname":"a"}{"lastname":"b"}`, nil, 400, codePayload},
		{"empty body", http.MethodPost, "contacts", ``, nil, 400, codePayload},
		{"wrong type in a bulk item", http.MethodPost, "contacts/Microsoft.Dynamics.CRM.UpsertMultiple",
			`{"Targets":[{"@odata.type":"Microsoft.Dynamics.CRM.contact","contactid":"` + guidA + `","lastname":7}]}`, nil, 400, codePayload},
		{"truncated bulk JSON", http.MethodPost, "contacts/Microsoft.Dynamics.CRM.UpsertMultiple", `{"Targets":[{"@odata.type":"Microsoft.Dynamics.CRM.contact"`, nil, 400, codePayload},
		{"batch without a boundary parameter", http.MethodPost, "$batch", okPart + "--batch_x--\r\n", []string{"Content-Type", "multipart/mixed"}, 400, codeODataParse},
		{"batch whose body uses another boundary", http.MethodPost, "$batch", strings.ReplaceAll(okPart, "batch_x", "batch_y") + "--batch_y--\r\n", []string{"Content-Type", batchCT}, 400, codeODataParse},
		{"batch without its closing delimiter", http.MethodPost, "$batch", okPart, []string{"Content-Type", batchCT}, 400, codeODataParse},
		{"oversized batch", http.MethodPost, "$batch", huge.String(), []string{"Content-Type", batchCT}, 400, codeODataParse},
		{"batch part without a request line", http.MethodPost, "$batch", "--batch_x\r\nContent-Type: application/http\r\n\r\nnonsense\r\n--batch_x--\r\n", []string{"Content-Type", batchCT}, 400, codeODataParse},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := env.call(tc.method, tc.path, tc.body, tc.headers...)
			if r.status != tc.status || r.errorCode(t) != tc.code {
				t.Fatalf("got %d %s, want %d %s", r.status, r.raw, tc.status, tc.code)
			}
		})
	}
	if env.export("contact") != before {
		t.Fatal("malformed input changed stored rows")
	}
}
