package store

import (
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// report is an agent's status with one table's counters.
func report(rev, received, written, dead int64, calls int64) api.Status {
	return api.Status{State: api.PhaseStreaming, Revision: rev, SalesforceCalls: calls, DataverseCalls: 2 * calls,
		Calls: map[string]int64{"salesforce.bulk": calls},
		Tables: []api.TableStatus{{Table: "Contact", Destination: "contact", Phase: api.PhaseStreaming,
			Received: received, Written: written, DeadLettered: dead, Skipped: received - written - dead}}}
}

// `crmsync status` showed WRITTEN restarting at every revision, because each revision's agent
// counts from zero and status showed the last agent's report alone. The control plane adds up its agents.
func TestStatusCountersAddUpEveryAgentOfTheConnector(t *testing.T) {
	s := behaviourStore(t)
	defer s.Close()
	ctx := t.Context()
	c, err := s.CreateConnector(ctx, spec("counted"), nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	// Revision 1's agent writes 100 records, reporting as it goes.
	l1, err := s.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, AgentID: "a1", Host: "h"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []int64{40, 100} {
		if _, err := s.RenewLease(ctx, l1.ID, time.Hour, report(1, w+1, w, 1, 10)); err != nil {
			t.Fatal(err)
		}
	}
	// Its last report has 3 records received and not settled yet: it is killed, and its successor receives
	// them again.
	last := report(1, 104, 100, 1, 10)
	last.Tables[0].Skipped = 0
	// Two records were put in the dead-letter store; one was retried and written since.
	last.Tables[0].DeadLetterEvents = 2
	if _, err := s.RenewLease(ctx, l1.ID, time.Hour, last); err != nil {
		t.Fatal(err)
	}
	if err := s.ReleaseLease(ctx, l1.ID); err != nil {
		t.Fatal(err)
	}
	// Revision 2's agent starts from zero and writes 5.
	l2, err := s.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, AgentID: "a2", Host: "h"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []int64{2, 5} {
		r := report(2, w, w, 0, 3)
		r.Tables[0].DeadLetterEvents = 1 // refused once, then retried and written
		if _, err := s.RenewLease(ctx, l2.ID, time.Hour, r); err != nil {
			t.Fatal(err)
		}
	}
	st, _, err := s.LastStatus(ctx, c.ID)
	if err != nil || st == nil {
		t.Fatalf("LastStatus: %v, %v", st, err)
	}
	tab := st.Tables[0]
	if tab.Written != 105 || tab.Received != 106 || tab.DeadLettered != 1 {
		t.Errorf("written %d, received %d, dead-lettered %d; want 105, 106, 1 (both agents)", tab.Written, tab.Received, tab.DeadLettered)
	}
	if tab.DeadLetterEvents != 3 {
		t.Errorf("dead-letter events %d, want 3 (2 of the first agent, 1 of the second)", tab.DeadLetterEvents)
	}
	if tab.Received != tab.Written+tab.DeadLettered+tab.Skipped {
		t.Errorf("received %d != written %d + dead-lettered %d + skipped %d", tab.Received, tab.Written, tab.DeadLettered, tab.Skipped)
	}
	if st.SalesforceCalls != 13 || st.DataverseCalls != 26 || st.Calls["salesforce.bulk"] != 13 {
		t.Errorf("calls: salesforce %d, dataverse %d, %v; want 13, 26, salesforce.bulk 13", st.SalesforceCalls, st.DataverseCalls, st.Calls)
	}
	if st.Revision != 2 {
		t.Errorf("revision %d, want the current agent's 2", st.Revision)
	}
}

// The history keeps one point per HistoryInterval at most and forgets points past HistoryRetention.
func TestHistoryKeepsOnePointPerIntervalForTheRetention(t *testing.T) {
	s := behaviourStore(t)
	defer s.Close()
	ctx := t.Context()
	now := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	c, err := s.CreateConnector(ctx, spec("charted"), nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	l, err := s.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, AgentID: "a", Host: "h"}, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// A report every 4 s for 7 hours: 6,300 reports.
	for i := int64(0); i < 7*3600/4; i++ {
		if _, err := s.RenewLease(ctx, l.ID, 24*time.Hour, report(1, i, i, 0, i)); err != nil {
			t.Fatal(err)
		}
		now = now.Add(4 * time.Second)
	}
	pts, err := s.StatusHistory(ctx, c.ID, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	// Reports every 4 s make a point every 12 s: 1,800 in 6 hours.
	if want := int(HistoryRetention / (12 * time.Second)); len(pts) < want-1 || len(pts) > want+1 {
		t.Errorf("%d points, want about %d (6 h at one per 12 s)", len(pts), want)
	}
	if first := pts[0].At; first.Before(now.Add(-HistoryRetention - 2*HistoryInterval)) {
		t.Errorf("the oldest point is from %s, older than the retention (now %s)", first, now)
	}
	for i := 1; i < len(pts); i++ {
		if gap := pts[i].At.Sub(pts[i-1].At); gap < HistoryInterval {
			t.Fatalf("points %d and %d are %s apart, less than %s", i-1, i, gap, HistoryInterval)
		}
		if pts[i].Tables[0].Written < pts[i-1].Tables[0].Written {
			t.Fatalf("written went down from point %d to %d", i-1, i)
		}
	}
	recent, err := s.StatusHistory(ctx, c.ID, now.Add(-time.Minute))
	if err != nil || len(recent) < 5 || len(recent) > 7 {
		t.Errorf("the last minute: %d points (%v), want 6 or so", len(recent), err)
	}
}
