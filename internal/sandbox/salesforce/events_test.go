package salesforce

import (
	"net/http"
	"regexp"
	"slices"
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
