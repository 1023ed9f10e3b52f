package agent_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
)

func TestInitialLoadCopiesEveryRecordFieldByField(t *testing.T) {
	e := newEnv(t, 10000, 2000)
	r := e.start(t, "")
	e.settle(t, r, 2*time.Minute)
	res := e.compareAll(t, nil)
	if res[0].Compared != 2000 || res[1].Compared != 10000 {
		t.Errorf("compared %d accounts and %d contacts, want 2000 and 10000", res[0].Compared, res[1].Compared)
	}
	s := r.a.Status()
	reconciled(t, s)
	for _, ts := range s.Tables {
		if ts.LoadDone != ts.LoadTotal || ts.DeadLettered != 0 {
			t.Errorf("%s: load %d of %d, %d dead letters", ts.Table, ts.LoadDone, ts.LoadTotal, ts.DeadLettered)
		}
	}
	// Contacts linked to their account: the compare checks parentcustomerid; make sure some are linked.
	rows, err := e.sb.Dataverse.Rows("contact", "", 500)
	if err != nil {
		t.Fatal(err)
	}
	linked := 0
	for _, row := range rows {
		if row["parentcustomerid"] != nil {
			linked++
		}
	}
	if linked == 0 {
		t.Error("no contact is linked to an account")
	}
	t.Logf("Salesforce calls %d, Dataverse requests %d for 12,000 records", s.SalesforceCalls, s.DataverseCalls)
}

func TestChangesWhileStreamingAreApplied(t *testing.T) {
	e := newEnv(t, 300, 50)
	r := e.start(t, "")
	e.settle(t, r, time.Minute)
	sf := e.sb.Salesforce

	created, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{
		{Op: "create", Object: "Contact", Fields: map[string]any{"LastName": "Lovelace", "FirstName": "Ada", "Email": "ada@example.com", "Phone": "555-0100"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ada := created.IDs[0][0]
	e.settle(t, r, 30*time.Second)

	// Someone edits Ada's department in Dataverse; a Salesforce update of one field must not touch it.
	key := sfid.MustGUID(ada).String()
	if err := e.sb.Dataverse.EditRow("contact", key, map[string]any{"department": "Edited in Dataverse"}); err != nil {
		t.Fatal(err)
	}
	// An update that changes one field and nulls another.
	if _, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{
		{Op: "update", Object: "Contact", ID: ada, Fields: map[string]any{"Email": "ada@lovelace.example", "Phone": nil}},
	}}); err != nil {
		t.Fatal(err)
	}
	e.settle(t, r, 30*time.Second)
	row, err := e.sb.Dataverse.Row("contact", key)
	if err != nil {
		t.Fatal(err)
	}
	if row["emailaddress1"] != "ada@lovelace.example" || row["telephone1"] != nil {
		t.Errorf("Ada's update: email %v, phone %v", row["emailaddress1"], row["telephone1"])
	}
	if row["department"] != "Edited in Dataverse" {
		t.Errorf("an update of Email and Phone overwrote department: %v", row["department"])
	}
	// Deletes and undeletes of seeded records, and random changes.
	ids := liveIDs(t, e, "Contact", 6)
	if _, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{{Op: "delete", Object: "Contact", IDs: ids[:4]}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{{Op: "undelete", Object: "Contact", IDs: ids[:2]}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sf.Mutate("Contact", 40, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := sf.Mutate("Account", 10, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := sf.Generate("Account", 5, ""); err != nil {
		t.Fatal(err)
	}
	e.settle(t, r, 30*time.Second)

	// The compare would flag Ada's edited department; compare everything else, then Ada without it.
	e.compareAll(t, map[string]bool{ada: true})
	for _, id := range ids[2:4] {
		if _, err := e.sb.Dataverse.Row("contact", sfid.MustGUID(id).String()); err == nil {
			t.Errorf("deleted contact %s still has a row", id)
		}
	}
	for _, id := range ids[:2] {
		if _, err := e.sb.Dataverse.Row("contact", sfid.MustGUID(id).String()); err != nil {
			t.Errorf("undeleted contact %s has no row: %v", id, err)
		}
	}
	reconciled(t, r.a.Status())
}

func liveIDs(t *testing.T, e *env, object string, n int) []string {
	t.Helper()
	var sb strings.Builder
	if err := e.sb.Salesforce.Export(&sb, object); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(sb.String(), "\n") {
		if len(out) == n {
			break
		}
		if strings.Contains(line, `"IsDeleted":false`) {
			i := strings.Index(line, `"Id":"`)
			out = append(out, line[i+6:i+24])
		}
	}
	if len(out) < n {
		t.Fatalf("only %d live %s records", len(out), object)
	}
	return out
}

func TestGapOverflowAndExpiredReplayIDEndInAMatchingDataverse(t *testing.T) {
	e := newEnv(t, 500, 100)
	r := e.start(t, "")
	e.settle(t, r, time.Minute)
	sf := e.sb.Salesforce

	// Gap events for changes applied silently in the database.
	ids := liveIDs(t, e, "Contact", 5)
	if _, err := sf.InjectGap(salesforce.GapRequest{Object: "Contact", ChangeType: "GAP_UPDATE", IDs: ids[:3], Apply: true,
		Fields: map[string]any{"Department": "Changed silently"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := sf.InjectGap(salesforce.GapRequest{Object: "Contact", ChangeType: "GAP_DELETE", IDs: ids[3:4], Apply: true}); err != nil {
		t.Fatal(err)
	}
	e.settle(t, r, 30*time.Second)
	e.compareAll(t, nil)

	// An overflow: a transaction larger than the threshold gives normal events, then one GAP_OVERFLOW.
	set := sf.Settings()
	set.OverflowThreshold = 10
	if err := sf.SetSettings(set); err != nil {
		t.Fatal(err)
	}
	if _, err := sf.Mutate("Account", 60, ""); err != nil {
		t.Fatal(err)
	}
	e.settle(t, r, 30*time.Second)
	e.compareAll(t, nil)

	// An expired replay ID: the agent stops, changes happen, the stored position ages past retention.
	r.stop()
	if _, err := sf.Mutate("Contact", 30, ""); err != nil {
		t.Fatal(err)
	}
	gone := liveIDs(t, e, "Contact", 2)
	if _, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{{Op: "delete", Object: "Contact", IDs: gone}}}); err != nil {
		t.Fatal(err)
	}
	e.sb.Clock.Advance(73 * time.Hour)
	if _, err := sf.Mutate("Contact", 10, ""); err != nil {
		t.Fatal(err)
	}
	r2 := e.start(t, "")
	e.settle(t, r2, time.Minute)
	e.compareAll(t, nil)

	recoveries := map[string]string{}
	for _, ts := range r.a.Status().Tables {
		recoveries[ts.Table] += strings.Join(ts.Recoveries, "|")
	}
	for _, ts := range r2.a.Status().Tables {
		recoveries[ts.Table] += strings.Join(ts.Recoveries, "|")
	}
	if !strings.Contains(recoveries["Account"], "overflow") {
		t.Errorf("Account recoveries do not mention the overflow: %q", recoveries["Account"])
	}
	if !strings.Contains(recoveries["Contact"], "replay ID rejected") {
		t.Errorf("Contact recoveries do not mention the expired replay ID: %q", recoveries["Contact"])
	}
	// Recoveries are kept with the checkpoint: the second process still lists the overflow catch-up the
	// first one ran.
	for _, ts := range r2.a.Status().Tables {
		if ts.Table == "Account" && !slices.ContainsFunc(ts.Recoveries, func(r string) bool { return strings.Contains(r, "overflow") }) {
			t.Errorf("after a restart, Account's recoveries no longer mention the overflow: %q", ts.Recoveries)
		}
	}
}

func TestThrottlingAndServerErrorsLoseNothing(t *testing.T) {
	e := newEnv(t, 3000, 300)
	dv := e.sb.Dataverse
	if err := dv.SetStorm(dataverse.Storm{Count: 12, RetryAfter: dataverse.Duration(time.Second)}); err != nil {
		t.Fatal(err)
	}
	dv.Faults().Set(faultsConfig(0.2, 503, 15))
	r := e.start(t, "")
	e.settle(t, r, 2*time.Minute)
	if _, err := e.sb.Salesforce.Mutate("Contact", 200, ""); err != nil {
		t.Fatal(err)
	}
	if err := dv.SetStorm(dataverse.Storm{Count: 5, RetryAfter: dataverse.Duration(time.Second)}); err != nil {
		t.Fatal(err)
	}
	e.settle(t, r, time.Minute)
	e.compareAll(t, nil)
	s := r.a.Status()
	reconciled(t, s)
	if s.Throttled == 0 {
		t.Error("the storm threw no 429 at the agent")
	}
	if n := dv.Faults().Counts().Errors; n == 0 {
		t.Error("no 5xx was injected")
	}
	if early := dv.EarlyRetries(); early != 0 {
		t.Errorf("%d requests were sent before Retry-After expired", early)
	}
	t.Logf("throttled %d, 5xx injected %d, Dataverse requests %d", s.Throttled, dv.Faults().Counts().Errors, s.DataverseCalls)
}

func TestRefusedRecordsAreDeadLetteredAndTheStreamGoesOn(t *testing.T) {
	e := newEnv(t, 200, 40)
	r := e.start(t, "")
	e.settle(t, r, time.Minute)
	sf := e.sb.Salesforce
	// An account whose name is longer than Dataverse's 160 characters is refused by the mapping; a contact
	// pointing at it is refused by Dataverse (its lookup target does not exist).
	res, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{
		{Op: "create", Object: "Account", Fields: map[string]any{"Name": strings.Repeat("Long name ", 20)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	badAccount := res.IDs[0][0]
	res, err = sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{
		{Op: "create", Object: "Contact", Fields: map[string]any{"LastName": "Orphan", "AccountId": badAccount}},
		{Op: "create", Object: "Contact", Fields: map[string]any{"LastName": "Fine"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	orphan := res.IDs[0][0]
	if _, err := sf.Mutate("Contact", 20, ""); err != nil {
		t.Fatal(err)
	}
	e.settle(t, r, 30*time.Second)
	dls, err := r.store.DeadLetters(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range dls {
		got[d.RecordID] = d.Code + ": " + d.Reason
	}
	if !strings.HasPrefix(got[badAccount], agent.CodeMapping) || !strings.Contains(got[badAccount], "name") {
		t.Errorf("the long-named account's dead letter = %q", got[badAccount])
	}
	if !strings.HasPrefix(got[orphan], agent.CodeLookupMissing) {
		t.Errorf("the orphan contact's dead letter = %q", got[orphan])
	}
	if len(dls) != 2 {
		t.Errorf("%d dead letters, want 2: %v", len(dls), got)
	}
	e.compareAll(t, map[string]bool{badAccount: true, orphan: true})
	s := r.a.Status()
	reconciled(t, s)
	var dl int64
	for _, ts := range s.Tables {
		dl += ts.DeadLettered
	}
	// The counters count changes: a refused record that changed again was refused again.
	if dl < 2 {
		t.Errorf("status counts %d dead-lettered changes, want at least 2", dl)
	}
}

func TestBatchPathGivesTheSameResultWithoutBulkMessages(t *testing.T) {
	e := newEnv(t, 1500, 200)
	dv := e.sb.Dataverse
	for _, table := range []string{"contact", "account"} {
		for _, msg := range []string{"UpsertMultiple", "UpdateMultiple", "CreateMultiple"} {
			if err := dv.SetBulkMessage(table, msg, false); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := e.start(t, "")
	e.settle(t, r, time.Minute)
	if _, err := e.sb.Salesforce.Mutate("Contact", 100, ""); err != nil {
		t.Fatal(err)
	}
	ids := liveIDs(t, e, "Contact", 3)
	if _, err := e.sb.Salesforce.Transact(salesforce.Transaction{Operations: []salesforce.Operation{{Op: "delete", Object: "Contact", IDs: ids}}}); err != nil {
		t.Fatal(err)
	}
	e.settle(t, r, 30*time.Second)
	e.compareAll(t, nil)
	calls := r.a.Status().Calls
	if calls["dataverse.bulk"] != 0 || calls["dataverse.batch"] == 0 {
		t.Errorf("with bulk messages off the agent sent %d bulk messages and %d batches", calls["dataverse.bulk"], calls["dataverse.batch"])
	}
	reconciled(t, r.a.Status())
}

func TestDuplicateAndOutOfOrderDeliveryNeverLeaveOlderValues(t *testing.T) {
	e := newEnv(t, 200, 20)
	r := e.start(t, "")
	e.settle(t, r, time.Minute)
	// The agent stops while records change field by field in separate transactions, so the backlog arrives
	// in responses of many events; redelivered or reordered, applied blindly they would leave older values
	// (or lose a field).
	r.stop()
	sf := e.sb.Salesforce
	ids := liveIDs(t, e, "Contact", 5)
	for round := 0; round < 12; round++ {
		for _, id := range ids {
			field := []string{"Phone", "Email", "Department", "Title"}[round%4]
			value := any(nil)
			if round%3 != 2 {
				value = strings.ToLower(field) + "-" + string(rune('a'+round)) + "@example.com"
			}
			if _, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{
				{Op: "update", Object: "Contact", ID: id, Fields: map[string]any{field: value}},
			}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := sf.Mutate("Contact", 50, ""); err != nil {
		t.Fatal(err)
	}
	sf.Faults().Set(faults.Config{DuplicateRate: 0.2, ReorderRate: 0.5, Seed: 11})
	r2 := e.start(t, "")
	e.settle(t, r2, time.Minute)
	counts := sf.Faults().Counts()
	sf.Faults().Reset()
	e.compareAll(t, nil)
	if counts.Duplicates == 0 || counts.Reorders == 0 {
		t.Errorf("faults did not fire: %+v", counts)
	}
	t.Logf("%d events redelivered, %d responses reordered", counts.Duplicates, counts.Reorders)
	reconciled(t, r2.a.Status())
}
