package dataverse_test

import (
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	dvemu "github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
)

func startEnv(t *testing.T) (*sandbox.Sandbox, *dataverse.Client) {
	t.Helper()
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sb")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	i := sb.Info.Dataverse
	c, err := dataverse.New(dataverse.Config{EnvironmentURL: i.EnvironmentURL, AuthorityURL: i.AuthorityURL, TenantID: i.TenantID,
		ClientID: i.ClientID, ClientSecret: i.ClientSecret, CAFile: i.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	return sb, c
}

func rows(team string, n, from int) []dataverse.Row {
	out := make([]dataverse.Row, n)
	for i := range out {
		id := sfid.MustGUID(sfidFor(from + i)).String()
		out[i] = dataverse.Row{"contactid": id, "lastname": "Row", "ownerid@odata.bind": "/teams(" + team + ")"}
	}
	return out
}

func sfidFor(i int) string {
	const digits = "0123456789"
	s := []byte("003000000000000")
	for p := 14; i > 0 && p >= 3; p-- {
		s[p] = digits[i%10]
		i /= 10
	}
	return string(s)
}

func TestThrottledRequestsWaitTheFullRetryAfter(t *testing.T) {
	sb, c := startEnv(t)
	team := sb.Info.Dataverse.TeamID
	if err := sb.Dataverse.SetStorm(dvemu.Storm{Count: 6, RetryAfter: dvemu.Duration(time.Second)}); err != nil {
		t.Fatal(err)
	}
	before := c.Concurrency()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = c.Bulk(t.Context(), dataverse.UpsertMultiple, "contact", "contacts", rows(team, 10, i*10))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if early := sb.Dataverse.EarlyRetries(); early != 0 {
		t.Errorf("%d requests arrived before Retry-After expired", early)
	}
	if c.Stats.Get("throttled") == 0 || time.Since(start) < time.Second {
		t.Errorf("throttled %d times in %s: the storm did not bite", c.Stats.Get("throttled"), time.Since(start))
	}
	if c.Concurrency() >= before {
		t.Errorf("concurrency %d after throttling, want below %d", c.Concurrency(), before)
	}
	if n, _ := sb.Dataverse.Count("contact"); n != 60 {
		t.Errorf("%d rows written, want 60", n)
	}
}

func TestExpiredTokenIsReplacedAndBatchReportsEachOperation(t *testing.T) {
	sb, c := startEnv(t)
	team := sb.Info.Dataverse.TeamID
	if _, err := c.WhoAmI(t.Context()); err != nil {
		t.Fatal(err)
	}
	sb.Clock.Advance(2 * time.Hour) // the token is now expired for the service
	if _, err := c.WhoAmI(t.Context()); err != nil {
		t.Fatalf("WhoAmI after the token expired: %v", err)
	}
	good := rows(team, 2, 1)
	missing := sfid.MustGUID("003000000009999").String()
	res, err := c.Batch(t.Context(), []dataverse.BatchOp{
		{Method: http.MethodPatch, Path: "contacts(" + good[0]["contactid"].(string) + ")", Body: dataverse.Row{"lastname": "A", "ownerid@odata.bind": "/teams(" + team + ")"}},
		{Method: http.MethodPatch, Path: "contacts(" + missing + ")", Body: dataverse.Row{"lastname": "B"}, Condition: dataverse.UpdateOnly},
		{Method: http.MethodDelete, Path: "contacts(" + missing + ")"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[1].Err == nil || res[1].Err.Code != dataverse.CodeObjectDoesNotExist || res[2].Status != http.StatusNotFound {
		t.Errorf("batch results: %+v %+v %+v", res[0], res[1], res[2])
	}
}

func TestBulkSupportIsProbedOnceAndHonoursTheEnvironment(t *testing.T) {
	sb, c := startEnv(t)
	if err := sb.Dataverse.SetBulkMessage("account", "UpsertMultiple", false); err != nil {
		t.Fatal(err)
	}
	for _, msg := range []string{"CreateMultiple", "UpdateMultiple"} {
		if err := sb.Dataverse.SetBulkMessage("account", msg, false); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 3; i++ {
		ok, err := c.SupportsBulk(t.Context(), dataverse.UpsertMultiple, "contact")
		if err != nil || !ok {
			t.Fatalf("contact: %v %v", ok, err)
		}
		ok, err = c.SupportsBulk(t.Context(), dataverse.UpsertMultiple, "account")
		if err != nil || ok {
			t.Fatalf("account: %v %v", ok, err)
		}
	}
	if n := c.Stats.Get("metadata"); n > 4 {
		t.Errorf("%d probe requests for two tables asked three times each", n)
	}
}

func TestTableMetadataHasLengthsAndTargets(t *testing.T) {
	_, c := startEnv(t)
	s, err := c.Table(t.Context(), "contact")
	if err != nil {
		t.Fatal(err)
	}
	last, _ := s.Column("lastname")
	parent, _ := s.Column("parentcustomerid")
	if s.EntitySetName != "contacts" || s.PrimaryID != "contactid" || last.MaxLength != 50 || last.RequiredLevel != "ApplicationRequired" || len(parent.Targets) != 2 {
		t.Errorf("contact: set %s, key %s, lastname %+v, parentcustomerid %+v", s.EntitySetName, s.PrimaryID, last, parent)
	}
}
