package agent_test

import (
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
)

// waitWritten waits until the Contact table's position reaches replayID.
func waitWritten(t *testing.T, r *running, timeout time.Duration, what string, replayID uint64) {
	t.Helper()
	waitFor(t, timeout, what, func() bool { return tableStatus(r.a.Status(), "Contact").Position >= replayID })
}

// A change is written as soon as the table's writer is free, not after the flush
// timer (here a minute, the longest allowed: it never fires within the waits), and under a burst the changes that arrive
// while a write is in flight make the next window, so the requests stay within the table's share of the
// request budget instead of one per source transaction.
func TestChangesAreWrittenWhenTheWriterIsFreeAndBurstsGroup(t *testing.T) {
	e := newEnv(t, 200, 0)
	e.cfg.Tables = mapping.ResolveAll([]mapping.TableConfig{{SourceTable: "Contact", UsePredefined: true}})
	e.cfg.Tuning.FlushInterval = agent.Duration(time.Minute) // the longest allowed
	e.cfg.Tuning.OutOfBandInterval = agent.Duration(-1)
	e.cfg.Tuning.ReconcileInterval = agent.Duration(-1)
	r := e.start(t, "")
	waitFor(t, time.Minute, "the load", func() bool { return streaming(r.a.Status()) })

	// A trickle: each change is written alone, long before any timer.
	for i := range 3 {
		res, err := e.sb.Salesforce.Mutate("Contact", 1, "")
		if err != nil {
			t.Fatal(err)
		}
		waitWritten(t, r, 20*time.Second, "a single change to be written without waiting for the flush timer", lastReplay(res.ReplayIDs))
		t.Logf("change %d written", i)
	}

	// A burst: 40 transactions of 25 changes within about a second.
	before := e.sb.Dataverse.Counters()
	start := time.Now()
	var last uint64
	for range 40 {
		res, err := e.sb.Salesforce.Mutate("Contact", 25, "")
		if err != nil {
			t.Fatal(err)
		}
		last = max(last, lastReplay(res.ReplayIDs))
		time.Sleep(25 * time.Millisecond)
	}
	waitWritten(t, r, 40*time.Second, "the burst to be written", last)
	elapsed := time.Since(start)
	after := e.sb.Dataverse.Counters()
	writes := (after["bulk_message"] - before["bulk_message"]) + (after["batch"] - before["batch"]) + (after["single_write"] - before["single_write"])
	t.Logf("1,000 changes in 40 transactions over %s: %d Dataverse write requests (counters before %v, after %v)", elapsed.Round(time.Millisecond), writes, before, after)
	if writes >= 40 {
		t.Errorf("%d write requests for 40 transactions: the windows did not grow while a write was in flight", writes)
	}
	// One application user: change windows may use 10 requests/s (half of a user's sustained 20), with a
	// second's worth saved up.
	if limit := 10 + int64(elapsed.Seconds()*10) + 2; writes > limit {
		t.Errorf("%d write requests in %s: above the table's share of the request budget (%d)", writes, elapsed, limit)
	}
}
