package agent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"

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

// TestCountersOnlyGrowWhenADeadLetterIsRetried: a contact whose account Dataverse does not have is
// dead-lettered (lookup_missing); once the account arrives the agent retries it and writes it. Every counter
// the agent's metrics serve stays where it was or grows across the retry, and the dead-letter events
// counter still counts the refusal. Regression: crmsync_records_total{outcome="dead_lettered"} went back
// to 0 when the retry succeeded, so Prometheus saw a counter reset, and the alert rule's increase() over it
// invented or hid dead letters.
func TestCountersOnlyGrowWhenADeadLetterIsRetried(t *testing.T) {
	e := newEnv(t, 20, 5)
	r := e.start(t, "")
	e.settle(t, r, time.Minute)
	sf := e.sb.Salesforce
	// The account's name is too long for Dataverse's 160 characters: the mapping refuses it, so the contact
	// pointing at it finds no lookup target.
	res, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{
		{Op: "create", Object: "Account", Fields: map[string]any{"Name": strings.Repeat("Long name ", 20)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	account := res.IDs[0][0]
	if _, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{
		{Op: "create", Object: "Contact", Fields: map[string]any{"LastName": "Orphan", "AccountId": account}},
	}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the orphan contact to be dead-lettered", func() bool {
		return tableStatus(r.a.Status(), "Contact").DeadLettered == 1
	})
	before := counterSamples(t, r)
	if v := before[`crmsync_dead_letter_events_total{connector=`+r.a.ConnectorName()+`,table=Contact}`]; v != 1 {
		t.Errorf("crmsync_dead_letter_events_total of Contact = %v after one refusal, want 1", v)
	}

	// The account gets a name Dataverse takes: it is written, and the contact's retry (every 15 s) finds it.
	if _, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{
		{Op: "update", Object: "Account", ID: account, Fields: map[string]any{"Name": "Short name"}},
	}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the orphan contact's retry to write it", func() bool {
		dls, err := r.store.DeadLetters(t.Context(), "Contact")
		return err == nil && len(dls) == 0 && tableStatus(r.a.Status(), "Contact").DeadLettered == 0
	})
	e.settle(t, r, 30*time.Second)
	reconciled(t, r.a.Status())
	after := counterSamples(t, r)
	for name, v := range before {
		if after[name] < v {
			t.Errorf("counter %s went down from %v to %v across the retry", name, v, after[name])
		}
	}
	if v := after[`crmsync_dead_letter_events_total{connector=`+r.a.ConnectorName()+`,table=Contact}`]; v != 1 {
		t.Errorf("crmsync_dead_letter_events_total of Contact = %v after the retry, want 1 (the refusal happened)", v)
	}
	e.compareAll(t, nil)
}

// counterSamples gathers the agent's metrics and returns every counter's value by name{labels}.
func counterSamples(t *testing.T, r *running) map[string]float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(agent.NewCollector(r.a.ConnectorName(), r.a.Status))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetType() != dto.MetricType_COUNTER {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			out[f.GetName()+"{"+strings.Join(labels, ",")+"}"] = m.GetCounter().GetValue()
		}
	}
	return out
}
