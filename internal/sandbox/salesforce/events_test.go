package salesforce

import (
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/cdc"
)

func allEvents(o *testOrg) []cdc.Event {
	events, _ := o.e.log.Read(cdc.AllChangesTo, 0, 1<<20)
	return events
}

func sortedKeys(m map[string]any) []string {
	k := keysOf(m)
	slices.Sort(k)
	return k
}

var uuidLike = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// Spec 5.2 and 5.3: a create, an update that changes two fields and nulls one, a delete and an undelete
// append the right events with the right headers, in commit order.
func TestChangesAppendEventsInCommitOrder(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	if n := o.e.log.Len(); n != 0 {
		t.Fatalf("a fresh org has %d events", n)
	}
	client := []string{"Sforce-Call-Options", "client=crmsync-test"}
	resp, body := o.do(http.MethodPost, "/services/data/v62.0/sobjects/Contact",
		`{"FirstName":"Ann","LastName":"Lee","Phone":"+1 555 0100","MailingCity":"Oslo"}`, client...)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %s", resp.StatusCode, body)
	}
	var cr map[string]any
	mustJSON(t, body, &cr)
	id := cr["id"].(string)
	o.clock.Advance(time.Second)
	if resp, body := o.do(http.MethodPatch, "/services/data/v62.0/sobjects/Contact/"+id,
		`{"Title":"CFO","MailingCity":"Bergen","Phone":null,"LastName":"Lee"}`, client...); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("update: %d %s", resp.StatusCode, body)
	}
	o.do(http.MethodDelete, "/services/data/v62.0/sobjects/Contact/"+id, nil, client...)
	if _, err := o.e.Transact(Transaction{Operations: []Operation{{Op: "undelete", Object: "Contact", ID: id}}}); err != nil {
		t.Fatal(err)
	}

	events := allEvents(o)
	if len(events) != 4 {
		t.Fatalf("got %d events, want 4", len(events))
	}
	wantTypes := []string{cdc.Create, cdc.Update, cdc.Delete, cdc.Undelete}
	m, _ := o.e.store.meta("Contact")
	var carried []string
	for _, pos := range m.eventFields {
		carried = append(carried, m.obj.Fields[pos].Name)
	}
	slices.Sort(carried)
	for i, ev := range events {
		if ev.ChangeType != wantTypes[i] || ev.Entity != "Contact" || !slices.Equal(ev.RecordIDs, []string{id}) {
			t.Errorf("event %d = %s %s %v", i, ev.ChangeType, ev.Entity, ev.RecordIDs)
		}
		if ev.SequenceNumber != 1 || !uuidLike.MatchString(ev.TransactionKey) || ev.CommitTimestamp.IsZero() {
			t.Errorf("event %d header: seq %d key %q ts %v", i, ev.SequenceNumber, ev.TransactionKey, ev.CommitTimestamp)
		}
		if i > 0 && (ev.CommitNumber <= events[i-1].CommitNumber || ev.ReplayID <= events[i-1].ReplayID || ev.TransactionKey == events[i-1].TransactionKey) {
			t.Errorf("event %d does not follow event %d in commit order", i, i-1)
		}
		if i < 3 && (ev.CommitUser != o.e.UserID() || ev.ChangeOrigin != "com/salesforce/api/rest/62.0;client=crmsync-test") {
			t.Errorf("event %d commitUser %s changeOrigin %q", i, ev.CommitUser, ev.ChangeOrigin)
		}
	}
	create, update, del, undel := events[0], events[1], events[2], events[3]
	if got := sortedKeys(create.Values); !slices.Equal(got, carried) {
		t.Errorf("CREATE values = %v\nwant every carried field %v", got, carried)
	}
	for _, notCarried := range []string{"Id", "IsDeleted", "SystemModstamp", "Name", "MailingAddress"} {
		if slices.Contains(carried, notCarried) {
			t.Errorf("change events must not carry %s", notCarried)
		}
	}
	if create.Values["FirstName"] != "Ann" || create.Values["Title"] != nil || len(create.ChangedFields) != 0 {
		t.Errorf("CREATE body %v changed %v", create.Values, create.ChangedFields)
	}
	wantChanged := []string{"LastModifiedDate", "MailingAddress.City", "Phone", "Title"}
	changed := slices.Sorted(slices.Values(update.ChangedFields))
	if !slices.Equal(changed, wantChanged) || !slices.Equal(update.NulledFields, []string{"Phone"}) {
		t.Errorf("UPDATE changedFields %v nulledFields %v, want %v and [Phone]", update.ChangedFields, update.NulledFields, wantChanged)
	}
	if got := sortedKeys(update.Values); !slices.Equal(got, []string{"LastModifiedDate", "MailingCity", "Phone", "Title"}) ||
		update.Values["Title"] != "CFO" || update.Values["Phone"] != nil || update.Values["MailingCity"] != "Bergen" {
		t.Errorf("UPDATE values = %v", update.Values)
	}
	if !update.Values["LastModifiedDate"].(time.Time).After(create.Values["LastModifiedDate"].(time.Time)) {
		t.Error("LastModifiedDate did not move on update")
	}
	if len(del.Values) != 0 || len(del.ChangedFields) != 0 {
		t.Errorf("DELETE carries values %v", del.Values)
	}
	if undel.Values["Title"] != "CFO" || undel.Values["MailingCity"] != "Bergen" || len(undel.Values) != len(carried) {
		t.Errorf("UNDELETE values = %v", undel.Values)
	}
	if undel.CommitUser == o.e.UserID() || undel.ChangeOrigin != AdminOrigin {
		t.Errorf("admin UNDELETE commitUser %s origin %q", undel.CommitUser, undel.ChangeOrigin)
	}
	p := o.query("SELECT Id, IsDeleted, SystemModstamp FROM Contact WHERE Id = '"+id+"'", false)
	if p.TotalSize != 1 {
		t.Error("the undeleted record is not visible to query")
	}
}

// Spec 5.5: a transaction with more changes than the threshold produces normal events for the first N and
// one GAP_OVERFLOW per entity for the rest, all under one transaction key.
func TestOverflowThresholdTurnsTheRestIntoGapOverflow(t *testing.T) {
	o := newTestOrg(t, 0, 3, func(c *Config) { c.OverflowThreshold = 5 })
	accounts := o.query("SELECT Id FROM Account", false)
	ops := []Operation{{Op: "create", Object: "Contact", Records: []map[string]any{
		{"LastName": "A"}, {"LastName": "B"}, {"LastName": "C"}, {"LastName": "D"}, {"LastName": "E"}, {"LastName": "F"},
	}}, {Op: "update", Object: "Account", ID: accounts.Records[0]["Id"].(string), Fields: map[string]any{"Phone": "1"}}}
	res, err := o.e.Transact(Transaction{Operations: ops})
	if err != nil {
		t.Fatal(err)
	}
	events := allEvents(o)
	if len(events) != 7 || len(res.ReplayIDs) != 7 {
		t.Fatalf("got %d events, want 5 CREATE + 2 GAP_OVERFLOW", len(events))
	}
	for i, ev := range events {
		if ev.SequenceNumber != i+1 || ev.TransactionKey != events[0].TransactionKey {
			t.Errorf("event %d: seq %d key %s", i, ev.SequenceNumber, ev.TransactionKey)
		}
		if i < 5 && ev.ChangeType != cdc.Create {
			t.Errorf("event %d = %s, want CREATE", i, ev.ChangeType)
		}
	}
	for i, entity := range []string{"Contact", "Account"} {
		ev := events[5+i]
		if ev.ChangeType != cdc.GapOverflow || ev.Entity != entity || len(ev.RecordIDs) != 0 || len(ev.Values) != 0 {
			t.Errorf("overflow event for %s = %+v", entity, ev)
		}
	}
}

// A transaction that fails in any operation changes nothing and appends nothing.
func TestAdminTransactionIsAtomic(t *testing.T) {
	o := newTestOrg(t, 2, 0)
	_, err := o.e.Transact(Transaction{Operations: []Operation{
		{Op: "create", Object: "Contact", Fields: map[string]any{"LastName": "New"}},
		{Op: "update", Object: "Contact", ID: makeID(prefixContact, 424242), Fields: map[string]any{"Title": "x"}},
	}})
	if err == nil {
		t.Fatal("a transaction updating a missing record succeeded")
	}
	if live, _ := o.e.store.count("Contact"); live != 2 || o.e.log.Len() != 0 {
		t.Errorf("after the failed transaction: %d contacts, %d events", live, o.e.log.Len())
	}
}

// Spec 5.5: gap events are header-only; applied ones change the data silently.
func TestInjectedGapAndOverflowEvents(t *testing.T) {
	o := newTestOrg(t, 3, 0)
	id := o.query("SELECT Id FROM Contact LIMIT 1", false).Records[0]["Id"].(string)
	if _, err := o.e.InjectGap(GapRequest{Object: "Contact", ChangeType: "GAP_UPDATE", IDs: []string{id}, Apply: true,
		Fields: map[string]any{"Title": "Changed in the database"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.e.InjectGap(GapRequest{Object: "Contact", ChangeType: "GAP_DELETE", IDs: []string{id[:15]}}); err != nil {
		t.Fatal(err)
	}
	if _, err := o.e.InjectOverflow("Account"); err != nil {
		t.Fatal(err)
	}
	events := allEvents(o)
	if len(events) != 3 {
		t.Fatalf("got %d events", len(events))
	}
	for i, want := range []string{cdc.GapUpdate, cdc.GapDelete, cdc.GapOverflow} {
		ev := events[i]
		if ev.ChangeType != want || len(ev.Values) != 0 || len(ev.ChangedFields) != 0 {
			t.Errorf("event %d = %s values %v changed %v", i, ev.ChangeType, ev.Values, ev.ChangedFields)
		}
	}
	if !slices.Equal(events[1].RecordIDs, []string{id}) || len(events[2].RecordIDs) != 0 {
		t.Errorf("record Ids %v %v", events[1].RecordIDs, events[2].RecordIDs)
	}
	if p := o.query("SELECT Title FROM Contact WHERE Id = '"+id+"'", false); p.Records[0]["Title"] != "Changed in the database" {
		t.Errorf("applied gap did not change the data: %v", p.Records[0])
	}
	if live, _ := o.e.store.count("Contact"); live != 3 {
		t.Errorf("an unapplied GAP_DELETE deleted data: %d live contacts", live)
	}
	if _, err := o.e.InjectGap(GapRequest{Object: "Contact", ChangeType: "UPDATE", IDs: []string{id}}); err == nil {
		t.Error("a non-gap change type was accepted")
	}
}

// Admin generate and mutate: one transaction each, realistic values, events for every record.
func TestGenerateAndMutateCommitOneTransactionEach(t *testing.T) {
	o := newTestOrg(t, 0, 5)
	res, err := o.e.Generate("Contact", 50, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(res.IDs[0]) != 50 || len(res.ReplayIDs) != 50 {
		t.Fatalf("generated %d records, %d events", len(res.IDs[0]), len(res.ReplayIDs))
	}
	mut, err := o.e.Mutate("Contact", 10, "")
	if err != nil {
		t.Fatal(err)
	}
	events := allEvents(o)
	updates := events[50:]
	if len(mut.IDs[0]) != 10 || len(updates) != 10 {
		t.Fatalf("mutated %d records, %d events", len(mut.IDs[0]), len(updates))
	}
	for _, ev := range updates {
		if ev.ChangeType != cdc.Update || ev.TransactionKey != updates[0].TransactionKey || !slices.Contains(ev.ChangedFields, "LastModifiedDate") {
			t.Errorf("mutate event %+v", ev)
		}
	}
	if p := o.query("SELECT COUNT() FROM Contact WHERE AccountId != null", false); p.TotalSize == 0 || p.TotalSize == 50 {
		t.Errorf("%d of 50 generated contacts have an account, want some but not all", p.TotalSize)
	}
}

// Salesforce merges the change events of one transaction when the same change hits several
// records of one object within a second ("Merged Change Events", Change Data Capture Developer Guide): one
// event whose recordIds lists them all — an update of one field on three accounts, a delete of several
// records. Different changes, and records of different objects, keep their own events; the switch turns
// merging off.
func TestSameChangeOnSeveralRecordsIsOneMergedEvent(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	created, err := o.e.Transact(Transaction{Operations: []Operation{{Op: "create", Object: "Account", Records: []map[string]any{
		{"Name": "A"}, {"Name": "B"}, {"Name": "C"}, {"Name": "D"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	accts := created.IDs[0]
	if n := len(created.ReplayIDs); n != 4 {
		t.Fatalf("4 creates made %d events, want 4 (creates carry different values and are never merged)", n)
	}
	upd, err := o.e.Transact(Transaction{Operations: []Operation{
		{Op: "update", Object: "Account", IDs: accts[:3], Fields: map[string]any{"Industry": "Retail"}},
		{Op: "update", Object: "Account", ID: accts[3], Fields: map[string]any{"Industry": "Banking"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if len(upd.ReplayIDs) != 2 {
		t.Fatalf("the update made %d events, want 2 (one merged for the three accounts, one for the fourth)", len(upd.ReplayIDs))
	}
	events := allEvents(o)
	merged := events[len(events)-2]
	if merged.ChangeType != cdc.Update || !slices.Equal(merged.RecordIDs, accts[:3]) || merged.Values["Industry"] != "Retail" ||
		!slices.Equal(merged.ChangedFields, []string{"Industry", "LastModifiedDate"}) || merged.SequenceNumber != 1 {
		t.Errorf("merged update = %+v", merged)
	}
	if last := events[len(events)-1]; !slices.Equal(last.RecordIDs, accts[3:]) || last.SequenceNumber != 2 {
		t.Errorf("the other update = %+v", last)
	}

	del, err := o.e.Transact(Transaction{Operations: []Operation{{Op: "delete", Object: "Account", IDs: accts}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(del.ReplayIDs) != 1 {
		t.Fatalf("deleting 4 accounts made %d events, want 1 merged DELETE", len(del.ReplayIDs))
	}
	if ev := allEvents(o)[len(allEvents(o))-1]; ev.ChangeType != cdc.Delete || !slices.Equal(ev.RecordIDs, accts) {
		t.Errorf("merged delete = %+v", ev)
	}

	// The REST API merges too: a collection update is one transaction.
	s := o.e.Settings()
	s.MergeEvents = false
	if err := o.e.SetSettings(s); err != nil {
		t.Fatal(err)
	}
	und, err := o.e.Transact(Transaction{Operations: []Operation{{Op: "undelete", Object: "Account", IDs: accts}}})
	if err != nil {
		t.Fatal(err)
	}
	upd2, err := o.e.Transact(Transaction{Operations: []Operation{{Op: "update", Object: "Account", IDs: accts, Fields: map[string]any{"Industry": "Education"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(und.ReplayIDs) != 4 || len(upd2.ReplayIDs) != 4 {
		t.Errorf("with merging off: %d undelete and %d update events, want 4 each", len(und.ReplayIDs), len(upd2.ReplayIDs))
	}
}

// A merge of up to three records (SOAP merge, the UI, Apex) deletes the losers with
// MasterRecordId set to the winner, updates the winner and re-parents child records (contacts of a merged
// account) without events of their own: Apex's "Triggers and Merge Statements" says re-parented children
// fire no triggers and the CDC guide says nothing of their change events, so the sandbox models none. On the
// stream: one merged DELETE for the losers, one UPDATE for the winner.
func TestMergeDeletesLosersUpdatesWinnerAndReparentsChildrenSilently(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	res, err := o.e.Transact(Transaction{Operations: []Operation{{Op: "create", Object: "Account", Records: []map[string]any{
		{"Name": "Acme"}, {"Name": "Acme Inc."}, {"Name": "ACME"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	win, losers := res.IDs[0][0], res.IDs[0][1:]
	kids, err := o.e.Transact(Transaction{Operations: []Operation{{Op: "create", Object: "Contact", Records: []map[string]any{
		{"LastName": "A", "AccountId": losers[0]}, {"LastName": "B", "AccountId": losers[1]}, {"LastName": "C", "AccountId": win}}}}})
	if err != nil {
		t.Fatal(err)
	}
	before := o.e.log.Latest()
	o.clock.Advance(2 * time.Second)
	mr, err := o.e.Merge(MergeRequest{Object: "Account", MasterID: win, MergedIDs: losers, Fields: map[string]any{"Phone": "+1 555 0199"}})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(mr.Reparented["Contact"], kids.IDs[0][:2]) {
		t.Errorf("reparented = %v, want the two contacts of the losers", mr.Reparented)
	}
	for _, id := range losers {
		rec, _ := o.e.Record("Account", id)
		if rec["IsDeleted"] != true || rec["MasterRecordId"] != win {
			t.Errorf("loser %s: IsDeleted %v MasterRecordId %v", id, rec["IsDeleted"], rec["MasterRecordId"])
		}
	}
	if rec, _ := o.e.Record("Account", win); rec["Phone"] != "+1 555 0199" {
		t.Errorf("winner Phone = %v", rec["Phone"])
	}
	kid, _ := o.e.Record("Contact", kids.IDs[0][0])
	if kid["AccountId"] != win {
		t.Errorf("child AccountId = %v, want the winner", kid["AccountId"])
	}
	if kid["LastModifiedDate"] == kid["SystemModstamp"] {
		t.Errorf("re-parenting moved the child's LastModifiedDate: %v", kid["LastModifiedDate"])
	}
	events, _ := o.e.log.Read(cdc.AllChangesTo, before, 100)
	if len(events) != 2 || events[0].ChangeType != cdc.Delete || !slices.Equal(events[0].RecordIDs, losers) ||
		events[1].ChangeType != cdc.Update || !slices.Equal(events[1].RecordIDs, []string{win}) || events[1].Values["Phone"] != "+1 555 0199" {
		t.Fatalf("merge events = %+v, want one DELETE of both losers then one UPDATE of the winner", events)
	}
	if events[0].TransactionKey != events[1].TransactionKey {
		t.Error("the merge's events are not one transaction")
	}
	// queryAll shows the losers with their master.
	p := o.query("SELECT Id, MasterRecordId FROM Account WHERE MasterRecordId != null", true)
	if p.TotalSize != 2 {
		t.Errorf("queryAll of merged accounts: %d, want 2", p.TotalSize)
	}

	// Refusals: more than three records, a deleted loser, the master twice.
	for _, bad := range []MergeRequest{
		{Object: "Account", MasterID: win, MergedIDs: []string{losers[0], losers[1], kids.IDs[0][0]}},
		{Object: "Account", MasterID: win, MergedIDs: []string{losers[0]}},
		{Object: "Account", MasterID: win, MergedIDs: []string{win}},
	} {
		if _, err := o.e.Merge(bad); err == nil {
			t.Errorf("merge %+v succeeded", bad)
		}
	}

	// With merge_child_events on, the children get their UPDATE events.
	s := o.e.Settings()
	s.MergeChildEvents = true
	if err := o.e.SetSettings(s); err != nil {
		t.Fatal(err)
	}
	more, err := o.e.Transact(Transaction{Operations: []Operation{{Op: "create", Object: "Account", Records: []map[string]any{{"Name": "Globex"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.e.Transact(Transaction{Operations: []Operation{{Op: "create", Object: "Contact", Records: []map[string]any{{"LastName": "D", "AccountId": more.IDs[0][0]}}}}}); err != nil {
		t.Fatal(err)
	}
	mr, err = o.e.Merge(MergeRequest{Object: "Account", MasterID: win, MergedIDs: more.IDs[0]})
	if err != nil || len(mr.ReplayIDs) != 3 {
		t.Errorf("merge with child events: %v, %d events, want 3", err, len(mr.ReplayIDs))
	}
}

// The admin API serves merges over HTTP, refusing bad requests with 400.
func TestAdminMergeEndpoint(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	res, err := o.e.Transact(Transaction{Operations: []Operation{{Op: "create", Object: "Contact", Records: []map[string]any{{"LastName": "Keep"}, {"LastName": "Lose"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	resp, body := o.adminDo(http.MethodPost, "/merge", `{"object":"Contact","master_id":"`+res.IDs[0][0]+`","merged_ids":["`+res.IDs[0][1]+`"],"fields":{"Title":"Merged"}}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"master_id":"`+res.IDs[0][0]+`"`) || !strings.Contains(string(body), `"replay_ids":[`) {
		t.Fatalf("POST /merge: %d %s", resp.StatusCode, body)
	}
	if resp, body := o.adminDo(http.MethodPost, "/merge", `{"object":"Contact","master_id":"`+res.IDs[0][0]+`","merged_ids":[]}`); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a merge without losers: %d %s", resp.StatusCode, body)
	}
}
