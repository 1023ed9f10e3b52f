package agent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/compare"
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
