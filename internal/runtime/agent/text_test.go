package agent_test

import (
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	sfemu "github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
)

// TestMultiLineTextLoadsByteForByteAndReconcilesClean: text with CRLF, lone CR and control characters is
// stored in Dataverse exactly as Salesforce holds it whether it arrives through the initial load (Bulk CSV)
// or a change event, and a reconciliation afterwards finds nothing different. Regression: the load stored
// "line1\nline2" for "line1\r\nline2", and every reconciliation reported those rows different and rewrote
// them, forever.
func TestMultiLineTextLoadsByteForByteAndReconcilesClean(t *testing.T) {
	e := newEnv(t, 20, 5)
	e.cfg.Tuning.OutOfBandInterval = agent.Duration(-1)
	e.cfg.Tuning.ReconcileInterval = agent.Duration(-1)
	texts := []string{"line1\r\nline2\r\n\r\nline4", "lone\rCR", "trailing\r\n", "tab\tand\x01control\x1f\x7f", "\"quoted\",\r\n\"csv\""}
	var recs []map[string]any
	for i, s := range texts {
		recs = append(recs, map[string]any{"LastName": "Multi" + string(rune('A'+i)), "Description": s, "Department": s})
	}
	if _, err := e.sb.Salesforce.Transact(sfemu.Transaction{Operations: []sfemu.Operation{{Op: "create", Object: "Contact", Records: recs}}}); err != nil {
		t.Fatal(err)
	}
	r := e.start(t, "")
	e.settle(t, r, time.Minute)
	// The same texts through change events.
	if _, err := e.sb.Salesforce.Transact(sfemu.Transaction{Operations: []sfemu.Operation{{Op: "create", Object: "Contact", Records: recs}}}); err != nil {
		t.Fatal(err)
	}
	e.settle(t, r, time.Minute)
	e.compareAll(t, nil)
	for _, res := range r.a.Reconcile(t.Context()) {
		if res.Error != "" || !res.Match || res.Different != 0 {
			t.Errorf("reconciliation after a clean sync: %+v", res)
		}
	}
}
