package agent_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/compare"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
)

// Salesforce merges the events of one transaction that make the same change to several
// records into one event listing them all. The agent applies such an event to every record it lists: one
// UPDATE event carrying 50 record Ids, then one DELETE event carrying the same 50.
func TestOneEventWithFiftyRecordIDsIsAppliedToEveryRecord(t *testing.T) {
	e := newEnv(t, 400, 40)
	r := e.start(t, "")
	e.settle(t, r, 2*time.Minute)
	ids := liveIDs(t, e, "Contact", 50)

	res, err := e.sb.Salesforce.Transact(salesforce.Transaction{Operations: []salesforce.Operation{
		{Op: "update", Object: "Contact", IDs: ids, Fields: map[string]any{"Department": "Merged change 19"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.ReplayIDs) != 1 {
		t.Fatalf("the update of 50 contacts produced %d events, want 1 merged event", len(res.ReplayIDs))
	}
	e.settle(t, r, 2*time.Minute)
	e.compareAll(t, nil)

	res, err = e.sb.Salesforce.Transact(salesforce.Transaction{Operations: []salesforce.Operation{
		{Op: "delete", Object: "Contact", IDs: ids}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.ReplayIDs) != 1 {
		t.Fatalf("the delete of 50 contacts produced %d events, want 1 merged event", len(res.ReplayIDs))
	}
	e.settle(t, r, 2*time.Minute)
	if got := e.compareAll(t, nil); got[1].Deleted < 50 {
		t.Errorf("compared %d deleted contacts, want at least 50", got[1].Deleted)
	}
	reconciled(t, r.a.Status())
}

// A merge of accounts deletes the losers (one DELETE event), updates the winner (one UPDATE
// event) and re-parents the losers' contacts without any event. The agent deletes the losers' rows per the
// delete behaviour, updates the winner's, and finds the re-parented contacts itself: their
// parentcustomerid must point at the winner afterwards.
func TestAccountMergeReparentsContactsInDataverse(t *testing.T) {
	e := newEnv(t, 600, 30)
	r := e.start(t, "")
	e.settle(t, r, 2*time.Minute)
	winner, losers := accountsWithContacts(t, e, 3)
	res, err := e.sb.Salesforce.Merge(salesforce.MergeRequest{Object: "Account", MasterID: winner, MergedIDs: losers,
		Fields: map[string]any{"Description": "Merged from two duplicates"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Reparented["Contact"]) == 0 || len(res.ReplayIDs) != 2 {
		t.Fatalf("merge = %+v, want re-parented contacts and two events (losers' DELETE, winner's UPDATE)", res)
	}
	e.settle(t, r, 2*time.Minute)
	// Every contact's parentcustomerid equals its AccountId (the winner for the re-parented ones), the losers'
	// rows are gone and the winner's row carries the merged description.
	e.compareAll(t, nil)
	reconciled(t, r.a.Status())
}

// accountsWithContacts returns a live account with contacts and n-1 others that have contacts too.
func accountsWithContacts(t *testing.T, e *env, n int) (string, []string) {
	t.Helper()
	var sb strings.Builder
	if err := e.sb.Salesforce.Export(&sb, "Contact"); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	var accts []string
	for _, line := range strings.Split(sb.String(), "\n") {
		var rec map[string]any
		if line == "" || json.Unmarshal([]byte(line), &rec) != nil || rec["IsDeleted"] == true {
			continue
		}
		if a, _ := rec["AccountId"].(string); a != "" && !seen[a] {
			seen[a] = true
			accts = append(accts, a)
		}
		if len(accts) == n {
			return accts[0], accts[1:]
		}
	}
	t.Fatalf("only %d accounts have contacts", len(accts))
	return "", nil
}

// A contact merge under delete_behaviour deactivate: the losing contacts' rows stay, deactivated, and the
// winner's row gets the merged values.
func TestContactMergeDeactivatesLosers(t *testing.T) {
	e := newEnv(t, 200, 20)
	e.cfg.Tables[1].DeleteBehaviour = mapping.DeleteDeactivate
	r := e.start(t, "")
	e.settle(t, r, 2*time.Minute)
	ids := liveIDs(t, e, "Contact", 3)
	if _, err := e.sb.Salesforce.Merge(salesforce.MergeRequest{Object: "Contact", MasterID: ids[0], MergedIDs: ids[1:],
		Fields: map[string]any{"Title": "Kept after the merge"}}); err != nil {
		t.Fatal(err)
	}
	e.settle(t, r, 2*time.Minute)
	contact := compare.Contact(true)
	contact.KeepDeleted = true
	e.compareAll(t, nil, compare.Account(), contact)
	for _, id := range ids[1:] {
		row, err := e.sb.Dataverse.Row("contact", sfid.MustGUID(id).String())
		if err != nil || fmt.Sprint(row["statecode"]) != "1" {
			t.Errorf("loser %s: row %v, want it kept and deactivated (statecode 1)", id, row)
		}
	}
	reconciled(t, r.a.Status())
}
