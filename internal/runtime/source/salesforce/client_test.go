package salesforce_test

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	sfemu "github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
)

func startOrg(t *testing.T, contacts int) (*sandbox.Sandbox, salesforce.Config) {
	t.Helper()
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sb"), Contacts: contacts, Accounts: 10})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	i := sb.Info.Salesforce
	return sb, salesforce.Config{LoginURL: i.LoginURL, APIVersion: i.APIVersion, Auth: salesforce.AuthJWTBearer, ClientID: i.ClientID,
		Username: i.Username, PrivateKeyPEM: i.PrivateKeyPEM, CAFile: i.CAFile}
}

func TestExpiredSessionIsRefreshedOnce(t *testing.T) {
	sb, cfg := startOrg(t, 50)
	c, err := salesforce.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.Count(t.Context(), "SELECT COUNT() FROM Contact"); err != nil || n != 50 {
		t.Fatalf("count = %d, %v", n, err)
	}
	sb.Salesforce.ExpireTokens()
	if n, err := c.Count(t.Context(), "SELECT COUNT() FROM Contact"); err != nil || n != 50 {
		t.Fatalf("count after the session expired = %d, %v", n, err)
	}
	if got := c.TokenFetches(); got != 2 {
		t.Errorf("%d token requests, want 2 (one refresh)", got)
	}
}

func TestClientCredentialsNeedTheMyDomainHost(t *testing.T) {
	sb, cfg := startOrg(t, 5)
	cfg.Auth, cfg.ClientSecret, cfg.PrivateKeyPEM, cfg.Username = salesforce.AuthClientCredentials, sb.Info.Salesforce.ClientSecret, nil, ""
	if _, err := salesforce.New(cfg); err == nil || !strings.Contains(err.Error(), "instance_url") {
		t.Fatalf("client credentials without instance_url: %v", err)
	}
	cfg.InstanceURL = sb.Info.Salesforce.InstanceURL
	c, err := salesforce.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Session(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if s.OrgID != sb.Info.Salesforce.OrgID {
		t.Errorf("org from the identity URL = %q, want %q", s.OrgID, sb.Info.Salesforce.OrgID)
	}
}

func TestRefusedTokenNamesTheReason(t *testing.T) {
	_, cfg := startOrg(t, 5)
	cfg.Username = "nobody@example.com"
	c, err := salesforce.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Describe(t.Context(), "Contact")
	var ae *salesforce.AuthError
	if !errors.As(err, &ae) || ae.Code != "invalid_grant" {
		t.Fatalf("err = %v, want an invalid_grant AuthError", err)
	}
}

func TestQueryFollowsNextRecordsURLAndBulkStreamsPages(t *testing.T) {
	_, cfg := startOrg(t, 4500)
	c, err := salesforce.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	total, err := c.Query(t.Context(), "SELECT Id, LastName FROM Contact", false, func(salesforce.Record) error { seen++; return nil })
	if err != nil || total != 4500 || seen != 4500 {
		t.Fatalf("query: total %d, seen %d, %v", total, seen, err)
	}
	if more := c.Stats.Snapshot()["rest.query_more"]; more != 2 {
		t.Errorf("%d nextRecordsUrl calls for 4,500 records, want 2", more)
	}
	job, err := c.CreateQueryJob(t.Context(), "SELECT Id, LastName, Birthdate FROM Contact", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitQueryJob(t.Context(), job.ID); err != nil {
		t.Fatal(err)
	}
	rows, pages, loc := 0, 0, ""
	for {
		page, err := c.QueryResults(t.Context(), job.ID, loc, 2000, func(r salesforce.Record) error {
			if r.ID() == "" || r["LastName"] == nil {
				t.Errorf("row %+v", r)
			}
			rows++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if page.Next == "" {
			break
		}
		loc = page.Next
	}
	if rows != 4500 || pages != 3 {
		t.Errorf("bulk: %d rows in %d pages, want 4500 in 3", rows, pages)
	}
}

func TestSubscriberDecodesChangesAndResumesAfterAStreamDrop(t *testing.T) {
	sb, cfg := startOrg(t, 20)
	c, err := salesforce.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := c.DialPubSub(sb.Info.Salesforce.PubSubAddr, false)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	res, err := sb.Salesforce.Transact(sfemu.Transaction{Operations: []sfemu.Operation{
		{Op: "create", Object: "Contact", Fields: map[string]any{"LastName": "Hopper", "FirstName": "Grace", "Birthdate": "1906-12-09", "Phone": "555"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	id := res.IDs[0][0]
	if _, err := sb.Salesforce.Transact(sfemu.Transaction{Operations: []sfemu.Operation{
		{Op: "update", Object: "Contact", ID: id, Fields: map[string]any{"FirstName": "Amazing Grace", "Phone": nil}},
	}}); err != nil {
		t.Fatal(err)
	}
	sub, err := ps.Subscribe(t.Context(), salesforce.SubscribeOptions{Topic: "/data/ContactChangeEvent", Preset: salesforce.Earliest,
		Types: salesforce.FieldTypes{"Birthdate": "date"}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var events []*salesforce.ChangeEvent
	for len(events) < 2 {
		b, err := sub.Next()
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, b.Events...)
	}
	create, update := events[0], events[1]
	if create.ChangeType != "CREATE" || create.Values["FirstName"] != "Grace" || create.Values["LastName"] != "Hopper" {
		t.Errorf("create = %+v", create)
	}
	if bd, ok := create.Values["Birthdate"].(time.Time); !ok || bd.Format("2006-01-02") != "1906-12-09" {
		t.Errorf("Birthdate = %#v, want 1906-12-09 as a time", create.Values["Birthdate"])
	}
	if update.ChangeType != "UPDATE" || update.Values["FirstName"] != "Amazing Grace" {
		t.Errorf("update = %+v", update)
	}
	if !contains(update.ChangedFields, "FirstName") || !contains(update.ChangedFields, "Phone") || !contains(update.NulledFields, "Phone") {
		t.Errorf("changed %v, nulled %v", update.ChangedFields, update.NulledFields)
	}

	// Drop every stream after its next message: the subscription resumes from the last replay ID it saw
	// and delivers each later event exactly once.
	sb.Salesforce.Faults().Set(faultsDropAll())
	got := map[string]int{}
	const rounds = 4
	for round := 0; round < rounds; round++ {
		if _, err := sb.Salesforce.Mutate("Contact", 1, ""); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(got) <= round && time.Now().Before(deadline) {
			b, err := sub.Next()
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range b.Events {
				got[string(ev.ReplayID)]++
			}
		}
	}
	drops := sb.Salesforce.Faults().Counts().StreamDrop
	sb.Salesforce.Faults().Reset()
	if len(got) != rounds {
		t.Fatalf("received %d of %d events across dropped streams", len(got), rounds)
	}
	for r, n := range got {
		if n != 1 {
			t.Errorf("event %x delivered %d times", r, n)
		}
	}
	if drops == 0 || sub.Reconnects == 0 {
		t.Errorf("%d streams dropped, %d reconnects: the fault did not fire", drops, sub.Reconnects)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
