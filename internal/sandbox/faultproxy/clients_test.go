package faultproxy_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faultproxy"
)

// TestRealClientsRecoverFromStallsPastTheirTimeouts: crmsync's own Salesforce and Dataverse clients, with
// 1-second timeouts, reach a sandbox through fault proxies; an answer that stops halfway through its body
// and is held until the client gives up fails that exchange only, and the call succeeds on its retry.
// Regression: the clients bounded only the wait for response headers, so a body stalled halfway hung the
// agent until its context ended (never). The agent's clients wait 2 minutes; the chaos suite's long
// profile stalls them for real.
func TestRealClientsRecoverFromStallsPastTheirTimeouts(t *testing.T) {
	proxies := map[string]*faultproxy.Proxy{}
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sb"), Contacts: 300, Accounts: 5,
		Front: func(name, addr string) (string, error) {
			p, err := faultproxy.Listen(context.Background(), "127.0.0.1:0", addr)
			if err != nil {
				return "", err
			}
			proxies[name] = p
			return p.Addr(), nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		sb.Close()
		for _, p := range proxies {
			p.Close()
		}
	}()
	info := sb.Info
	sf, err := salesforce.New(salesforce.Config{LoginURL: info.Salesforce.LoginURL, InstanceURL: info.Salesforce.InstanceURL,
		Auth: salesforce.AuthJWTBearer, ClientID: info.Salesforce.ClientID, Username: info.Salesforce.Username,
		PrivateKeyPEM: info.Salesforce.PrivateKeyPEM, CAFile: info.Salesforce.CAFile, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	dv, err := dataverse.New(dataverse.Config{EnvironmentURL: info.Dataverse.EnvironmentURL, AuthorityURL: info.Dataverse.AuthorityURL,
		TenantID: info.Dataverse.TenantID, ClientID: info.Dataverse.ClientID, ClientSecret: info.Dataverse.ClientSecret,
		CAFile: info.Dataverse.CAFile, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	// Sessions first, so the stall hits an API call rather than a token request.
	if _, err := sf.Describe(ctx, "Contact"); err != nil {
		t.Fatal(err)
	}
	if _, err := dv.WhoAmI(ctx); err != nil {
		t.Fatal(err)
	}
	for _, side := range []string{"salesforce-instance", "dataverse"} {
		// The next answer on the open connection stops partway through its body, held until the client
		// gives up.
		proxies[side].Set(faultproxy.Config{StallRate: 1, Limit: 1, PassFirst: 1200, CutWithin: 100, Seed: 7})
	}
	start := time.Now()
	// Answers of a few hundred kilobytes: a query page and a table's metadata.
	n, err := sf.Query(ctx, "SELECT Id, FirstName, LastName, Email, Description FROM Contact", false, func(salesforce.Record) error { return nil })
	if err != nil || n != 300 {
		t.Errorf("Salesforce query after a stall: %d records, %v", n, err)
	}
	if _, err := dv.Table(ctx, "contact"); err != nil {
		t.Errorf("Dataverse metadata read after a stall: %v", err)
	}
	for _, side := range []string{"salesforce-instance", "dataverse"} {
		if n := proxies[side].Counts().Stalls; n != 1 {
			t.Errorf("%s: %d stalls, want 1", side, n)
		}
	}
	if d := time.Since(start); d > 45*time.Second {
		t.Errorf("recovering from two stalls took %s", d)
	}
}
