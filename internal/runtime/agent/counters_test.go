package agent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/compare"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
)

// TestCountersReconcileWhenRecordsAreNotWritten: received = written + dead-lettered + skipped holds for
// records the load reads but the mapping refuses, and for re-read records whose deletion the table ignores.
// Regression: a record refused by the mapping during the load (or a catch-up) was counted both as
// dead-lettered and as skipped, and a re-read deletion that the table ignores was counted as neither.
func TestCountersReconcileWhenRecordsAreNotWritten(t *testing.T) {
	e := newEnv(t, 60, 10)
	e.cfg.Tables[1].DeleteBehaviour = mapping.DeleteIgnore
	sf := e.sb.Salesforce
	// Refused by the mapping while loading: a name longer than the account column's 160 characters.
	res, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{
		{Op: "create", Object: "Account", Fields: map[string]any{"Name": strings.Repeat("Long name ", 17)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	long := res.IDs[0][0]
	r := e.start(t, "")
	e.settle(t, r, time.Minute)
	reconciled(t, r.a.Status())

	// A deletion announced only by a gap event: the re-read finds the record deleted, and the table
	// ignores deletions.
	ids := liveIDs(t, e, "Contact", 2)
	if _, err := sf.InjectGap(salesforce.GapRequest{Object: "Contact", ChangeType: "GAP_DELETE", IDs: ids[:1], Apply: true}); err != nil {
		t.Fatal(err)
	}
	e.settle(t, r, 30*time.Second)
	s := r.a.Status()
	reconciled(t, s)
	for _, ts := range s.Tables {
		if ts.Table == "Account" && ts.DeadLettered != 1 {
			t.Errorf("Account: %d dead-lettered, want 1", ts.DeadLettered)
		}
		if ts.Table == "Contact" && ts.Skipped == 0 {
			t.Error("Contact: the ignored deletion was not counted as skipped")
		}
	}
	contact := compare.Contact(true)
	contact.KeepDeleted = true
	e.compareAll(t, map[string]bool{long: true}, compare.Account(), contact)
}

// TestCountersReconcileAfterFailedAttempts: work that fails halfway and is done again (a Bulk page whose
// download breaks, a window whose re-reads fail) is counted once it stands, so received = written +
// dead-lettered + skipped still holds. Regression: the rows of a broken page and the changes of a failed
// window stayed counted as received, and were counted again when the work was redone.
func TestCountersReconcileAfterFailedAttempts(t *testing.T) {
	e := newEnv(t, 3000, 300)
	e.cfg.Tuning.PageSize, e.cfg.Tuning.BatchSize = 500, 100
	sf := e.sb.Salesforce
	// Bulk result pages cut short halfway: the load's page fails mid-way and is read again.
	sf.Faults().Set(faults.Config{TruncateRate: 0.5, TruncateAfter: 20000, PathPrefix: "/services/data/v" + e.sb.Info.Salesforce.APIVersion + "/jobs/query/", Limit: 4, Seed: 5})
	r := e.start(t, "")
	e.settle(t, r, 2*time.Minute)
	if n := sf.Faults().Counts().Truncated; n == 0 {
		t.Fatal("no Bulk page was cut short")
	}
	reconciled(t, r.a.Status())

	// Gap events whose re-reads fail past the client's retries: the window fails and is applied again.
	sf.Faults().Set(faults.Config{ErrorRate: 1, ErrorStatus: 503, PathPrefix: "/services/data/v" + e.sb.Info.Salesforce.APIVersion + "/query", Limit: 7, Seed: 6})
	ids := liveIDs(t, e, "Contact", 5)
	if _, err := sf.InjectGap(salesforce.GapRequest{Object: "Contact", ChangeType: "GAP_UPDATE", IDs: ids, Apply: true,
		Fields: map[string]any{"Department": "Silently changed"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sf.Mutate("Contact", 20, ""); err != nil {
		t.Fatal(err)
	}
	e.settle(t, r, 2*time.Minute)
	if n := sf.Faults().Counts().Errors; n < 7 {
		t.Fatalf("%d re-reads failed, want 7 (past the client's retries)", n)
	}
	sf.Faults().Reset()
	reconciled(t, r.a.Status())
	e.compareAll(t, nil)
}
