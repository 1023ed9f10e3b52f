package policy_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
)

func TestTheRealServicesHostsPassEachForItsOwnService(t *testing.T) {
	var h policy.Hosts
	for _, k := range []struct {
		s   policy.Service
		url string
		ok  bool
	}{
		{policy.Salesforce, "https://login.salesforce.com", true},
		{policy.Salesforce, "https://test.salesforce.com", true},
		{policy.Salesforce, "https://acme.my.salesforce.com", true},
		{policy.Salesforce, "https://acme--uat.sandbox.my.salesforce.com", true},
		{policy.Salesforce, "https://na1.salesforce.com", true},
		{policy.Salesforce, "https://salesforce.com.evil.example", false},
		{policy.Salesforce, "https://evilsalesforce.com", false},
		{policy.Salesforce, "https://acme.crm.dynamics.com", false},
		{policy.EntraID, "https://login.microsoftonline.com", true},
		{policy.EntraID, "https://login.microsoftonline.us", true},
		{policy.EntraID, "https://login.partner.microsoftonline.cn", true},
		{policy.EntraID, "https://evil.microsoftonline.com", false},
		{policy.Dataverse, "https://acme.crm.dynamics.com", true},
		{policy.Dataverse, "https://acme.crm4.dynamics.com", true},
		{policy.Dataverse, "https://acme.crm.microsoftdynamics.us", true},
		{policy.Dataverse, "https://acme.crm.appsplatform.us", true},
		{policy.Dataverse, "https://acme.crm.dynamics.cn", true},
		{policy.Dataverse, "http://127.0.0.1:8080", false},
		{policy.Dataverse, "http://localhost:8080", false},
	} {
		if err := h.CheckURL("f", k.s, k.url); (err == nil) != k.ok {
			t.Errorf("%s for %s: %v, want allowed=%v", k.url, k.s, err, k.ok)
		}
	}
	if err := h.CheckAddr("f", policy.Salesforce, "api.pubsub.salesforce.com:7443"); err != nil {
		t.Errorf("the Pub/Sub API: %v", err)
	}
}

func TestOperatorPatternsAllowHostsWithOrWithoutAPort(t *testing.T) {
	h := policy.Hosts{Allow: []string{"127.0.0.1:8443", "*.internal.example", "crm.example.com"}}
	for _, k := range []struct {
		host, port string
		ok         bool
	}{
		{"127.0.0.1", "8443", true}, {"127.0.0.1", "8444", false}, {"a.b.internal.example", "443", true},
		{"internal.example", "443", false}, {"CRM.example.com", "1", true}, {"evil.example", "443", false},
	} {
		if err := h.CheckHost(k.host, k.port); (err == nil) != k.ok {
			t.Errorf("%s:%s: %v, want allowed=%v", k.host, k.port, err, k.ok)
		} else if err != nil && !errors.Is(err, policy.ErrRefused) {
			t.Errorf("the refusal does not wrap ErrRefused: %v", err)
		}
	}
	for _, bad := range []string{"", "*.", "http://x", "a b", "x:port"} {
		if policy.ParseHostPattern(bad) == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}

func TestReferencesStayInsideWhatTheOperatorAllowed(t *testing.T) {
	allowed, outside, data := t.TempDir(), t.TempDir(), t.TempDir()
	for _, f := range []string{filepath.Join(allowed, "s"), filepath.Join(outside, "s"), filepath.Join(data, "secret.key")} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(outside, "s"), filepath.Join(allowed, "link")); err != nil {
		t.Fatal(err)
	}
	r := policy.Refs{Dirs: []string{allowed}, EnvPrefixes: []string{"APP_"}, DenyPaths: []string{data}}
	if _, err := r.ReadFile("f", filepath.Join(allowed, "s")); err != nil {
		t.Errorf("an allowed file: %v", err)
	}
	for _, p := range []string{filepath.Join(outside, "s"), filepath.Join(allowed, "link"), filepath.Join(allowed, "..", filepath.Base(outside), "s"),
		filepath.Join(data, "secret.key"), "/etc/shadow", "relative"} {
		if _, err := r.ReadFile("f", p); err == nil {
			t.Errorf("%s was read", p)
		}
	}
	t.Setenv("APP_X", "v")
	t.Setenv("OTHER", "v")
	if v, err := r.Getenv("f", "APP_X"); err != nil || v != "v" {
		t.Errorf("an allowed variable: %q %v", v, err)
	}
	for _, n := range []string{"OTHER", "CRMSYNC_TOKEN"} {
		if _, err := r.Getenv("f", n); err == nil {
			t.Errorf("%s was read", n)
		}
	}
	// Unrestricted still refuses the data directory and the token.
	u := policy.Refs{Unrestricted: true, DenyPaths: []string{data}}
	if u.CheckFile("f", filepath.Join(outside, "s")) != nil || u.CheckFile("f", filepath.Join(data, "secret.key")) == nil || u.CheckEnv("f", "CRMSYNC_TOKEN") == nil {
		t.Error("the unrestricted policy is wrong")
	}
	// The zero policy allows nothing.
	var z policy.Refs
	if z.CheckFile("f", filepath.Join(allowed, "s")) == nil || z.CheckEnv("f", "APP_X") == nil {
		t.Error("the zero policy allowed a reference")
	}
}
