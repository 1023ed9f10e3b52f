package agent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
)

// TestARefusedHealIsNotCountedAsHealed: a reconciliation that finds three rows different and rewrites them,
// one of which Dataverse refuses (its account lookup points at a row that is gone), reports two healed and
// one not healed, and the refused record is dead-lettered. Regression: it reported "different 3, healed 3".
func TestARefusedHealIsNotCountedAsHealed(t *testing.T) {
	e := newEnv(t, 40, 10)
	e.cfg.Tuning.OutOfBandInterval = agent.Duration(-1)
	e.cfg.Tuning.ReconcileInterval = agent.Duration(-1)
	sf := e.sb.Salesforce
	res, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{
		{Op: "create", Object: "Account", Fields: map[string]any{"Name": "Soon unmappable"}}}})
	if err != nil {
		t.Fatal(err)
	}
	account := res.IDs[0][0]
	res, err = sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{
		{Op: "create", Object: "Contact", Fields: map[string]any{"LastName": "Refused", "AccountId": account}}}})
	if err != nil {
		t.Fatal(err)
	}
	refused := res.IDs[0][0]
	r := e.start(t, "")
	e.settle(t, r, time.Minute)

	// The account becomes one the mapping cannot convert (its name is too long: dead-lettered, its old row
	// stays), then its row disappears from Dataverse: the contact's lookup now points at nothing.
	if _, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{
		{Op: "update", Object: "Account", ID: account, Fields: map[string]any{"Name": strings.Repeat("Long name ", 20)}}}}); err != nil {
		t.Fatal(err)
	}
	e.settle(t, r, time.Minute)
	if err := e.sb.Dataverse.DeleteRow("account", keyOf(t, account)); err != nil {
		t.Fatal(err)
	}
	// Three contact rows altered without a trace (with the agent's own identity).
	altered := append(firstIDs(t, e, "Contact", 2), refused)
	for _, id := range altered {
		if err := e.dvClient(t).Patch(t.Context(), "contacts", keyOf(t, id), dataverse.Row{"telephone1": "000-SILENT"}, dataverse.UpdateOnly); err != nil {
			t.Fatal(err)
		}
	}
	var con api.ReconcileResult
	for _, res := range r.a.Reconcile(t.Context()) {
		t.Logf("%+v", res)
		if res.Different > 0 {
			con = res
		}
	}
	if con.Different != 3 || con.Healed != 2 || con.Unhealed != 1 || con.Match {
		t.Errorf("contact reconciliation: different %d, healed %d, not healed %d; want 3, 2, 1", con.Different, con.Healed, con.Unhealed)
	}
	dls, err := r.store.DeadLetters(t.Context(), "Contact")
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].RecordID != refused || dls[0].Code != agent.CodeLookupMissing {
		t.Errorf("contact dead letters %+v, want the refused contact %s (lookup_missing)", dls, refused)
	}
	st := tableStatus(r.a.Status(), "Contact")
	if len(st.Recoveries) == 0 || !strings.Contains(st.Recoveries[len(st.Recoveries)-1], "2 healed, 1 not healed") {
		t.Errorf("recoveries %q do not say what was not healed", st.Recoveries)
	}
	reconciled(t, r.a.Status())
}
