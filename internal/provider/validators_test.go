package provider

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// validate runs a string validator on v and returns the first error's detail ("" when valid).
func validate(v validator.String, value string) string {
	req := validator.StringRequest{Path: path.Root("x"), ConfigValue: types.StringValue(value)}
	var resp validator.StringResponse
	v.ValidateString(context.Background(), req, &resp)
	for _, d := range resp.Diagnostics.Errors() {
		return d.Detail()
	}
	return ""
}

func TestValidators_acceptWhatTheControlPlaneAcceptsAndNameTheProblem(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))

	cases := []struct {
		name    string
		v       validator.String
		value   string
		wantErr string // "" for valid
	}{
		{"GUID", guidValidator(), teamA, ""},
		{"GUID upper case", guidValidator(), strings.ToUpper(teamA), ""},
		{"not a GUID", guidValidator(), "team-a", "must be a GUID"},
		{"https URL", httpURL(), "https://acme.crm.dynamics.com", ""},
		{"http on loopback", httpURL(), "http://127.0.0.1:8443", ""},
		{"http on localhost", httpURL(), "http://localhost:8443", ""},
		{"http elsewhere", httpURL(), "http://acme.crm.dynamics.com", "must use https"},
		{"relative URL", httpURL(), "acme.crm.dynamics.com", "not an absolute URL"},
		{"URL with query", httpURL(), "https://login.salesforce.com/?x=1", "query"},
		{"URL with credentials", httpURL(), "https://u:p@login.salesforce.com", "credentials"},
		{"absolute path", absolutePath(), "/etc/crmsync/key.pem", ""},
		{"relative path", absolutePath(), "key.pem", "must be an absolute path"},
		{"PEM key", pemPrivateKey(), pemKey, ""},
		{"certificate, not a key", pemPrivateKey(), "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "not a PEM private key"},
		{"column name", logicalNameValidator(), "new_region", ""},
		{"column name with a dash", logicalNameValidator(), "new-region", "logical name"},
		{"table name", tableNameValidator(), "contact", ""},
		{"capitalised table name", tableNameValidator(), "Contact", "lower case"},
		{"custom field", apiNameValidator(), "Region__c", ""},
		{"field with a space", apiNameValidator(), "Region c", "API name"},
		{"duration", durationBetween(time.Second, 24*time.Hour, true), "90s", ""},
		{"duration at the bounds", durationBetween(time.Second, 24*time.Hour, true), "24h", ""},
		{"duration off", durationBetween(time.Second, 24*time.Hour, true), "off", ""},
		{"off where it cannot be turned off", durationBetween(time.Millisecond, time.Minute, false), "off", "not a Go duration"},
		{"duration below the range", durationBetween(time.Second, 24*time.Hour, true), "500ms", `"500ms" is out of range: it must be from 1s to 24h (or "off"`},
		{"duration above the range", durationBetween(time.Minute, 720*time.Hour, true), "31d", "not a Go duration"},
		{"zero duration", durationBetween(time.Millisecond, time.Minute, false), "0s", "out of range: it must be from 1ms to 1m"},
		{"negative duration", durationBetween(time.Second, 24*time.Hour, true), "-1s", "out of range"},
		{"days are not Go durations", durationBetween(time.Minute, 720*time.Hour, true), "1d", `"1d" is not a Go duration such as 90s, 5m or 6h`},
	}
	for _, tc := range cases {
		got := validate(tc.v, tc.value)
		switch {
		case tc.wantErr == "" && got != "":
			t.Errorf("%s: %q rejected: %s", tc.name, tc.value, got)
		case tc.wantErr != "" && !strings.Contains(got, tc.wantErr):
			t.Errorf("%s: %q: error %q, want one containing %q", tc.name, tc.value, got, tc.wantErr)
		}
	}
}

func TestPEMValidator_neverEchoesTheSecret(t *testing.T) {
	const secret = "super-secret-not-a-key"
	if got := validate(pemPrivateKey(), secret); strings.Contains(got, secret) {
		t.Fatalf("the error repeats the secret: %s", got)
	}
}

func TestShortDuration_dropsTheZeroUnitsGoAppends(t *testing.T) {
	for d, want := range map[time.Duration]string{
		6 * time.Hour: "6h", 90 * time.Minute: "1h30m", time.Minute: "1m", 90 * time.Second: "1m30s",
		100 * time.Millisecond: "100ms", 720 * time.Hour: "720h", time.Hour + time.Second: "1h0m1s",
	} {
		if got := shortDuration(d); got != want {
			t.Errorf("shortDuration(%v) = %q, want %q", d, got, want)
		}
		// The short form parses back to the same duration: an imported value means what the API holds.
		if back, err := time.ParseDuration(shortDuration(d)); err != nil || back != d {
			t.Errorf("%q parses to %v (%v), want %v", shortDuration(d), back, err, d)
		}
	}
}
