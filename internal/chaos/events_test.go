package chaos_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
)

// TestChaosGapEventsAtOnePercent: under a steady stream of changes, one change in a hundred is made
// silently in Salesforce's database and announced only by a gap event (GAP_UPDATE, GAP_CREATE, GAP_DELETE
// and GAP_UNDELETE in turns), as Salesforce does when it cannot build a change event. The agent re-reads
// those records; Dataverse ends equal to Salesforce.
func TestChaosGapEventsAtOnePercent(t *testing.T) {
	e := newEnv(t, "events/gaps-1pct", envOptions{contacts: profile.Contacts, accounts: profile.Accounts})
	r := e.startAgent("")
	e.settle(r, 3*time.Minute)
	sf := e.sb.Salesforce
	total := 1500
	if profile.Long {
		total = 20000
	}
	changes, gaps := 0, 0
	var deleted []string
	for changes < total {
		n := 5 + e.rng.IntN(20)
		if _, err := sf.Mutate([]string{"Contact", "Contact", "Account"}[e.rng.IntN(3)], n, ""); err != nil {
			t.Fatal(err)
		}
		before := changes / 100
		changes += n
		for k := before; k < changes/100; k++ {
			gaps++
			ids := liveIDs(e.sb, "Contact", 200)
			id := ids[e.rng.IntN(len(ids))]
			req := salesforce.GapRequest{Object: "Contact", Apply: true}
			switch gaps % 4 {
			case 0:
				req.ChangeType, req.IDs = "GAP_UPDATE", []string{id}
				req.Fields = map[string]any{"Department": fmt.Sprintf("Silent %d", gaps), "Phone": nil}
			case 1:
				req.ChangeType = "GAP_CREATE"
				req.Fields = map[string]any{"LastName": fmt.Sprintf("Silent%d", gaps), "Email": fmt.Sprintf("silent%d@example.com", gaps)}
			case 2:
				req.ChangeType, req.IDs = "GAP_DELETE", []string{id}
				deleted = append(deleted, id)
			case 3:
				if len(deleted) == 0 {
					continue
				}
				req.ChangeType, req.IDs = "GAP_UNDELETE", deleted[:1]
				deleted = deleted[1:]
			}
			if _, err := sf.InjectGap(req); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	e.iterations, e.faults = changes, int64(gaps)
	s := e.settle(r, 3*time.Minute)
	reconciled(t, s)
	t.Logf("%d changes, %d of them announced by gap events only", changes, gaps)
	e.finish()
}

// TestChaosOverflowEvents: transactions larger than the overflow threshold give normal events for their
// first changes and one GAP_OVERFLOW event for the rest, and standalone overflow events arrive too; the
// agent catches up on everything modified since the overflow's commit time.
func TestChaosOverflowEvents(t *testing.T) {
	e := newEnv(t, "events/overflow", envOptions{contacts: profile.Contacts, accounts: profile.Accounts})
	sf := e.sb.Salesforce
	set := sf.Settings()
	set.OverflowThreshold = 40
	if err := sf.SetSettings(set); err != nil {
		t.Fatal(err)
	}
	r := e.startAgent("")
	e.settle(r, 3*time.Minute)
	cs := e.startChanges(100*time.Millisecond, 100_000)
	for round := 0; round < profile.Rounds*2; round++ {
		e.iterations++
		obj := []string{"Contact", "Account"}[round%2]
		if round%3 == 2 {
			if _, err := sf.InjectOverflow(obj); err != nil {
				t.Fatal(err)
			}
		} else if _, err := sf.Mutate(obj, 60+e.rng.IntN(100), ""); err != nil { // more than the threshold
			t.Fatal(err)
		}
		e.faults++
		time.Sleep(time.Second)
	}
	cs.stop()
	s := e.settle(r, 3*time.Minute)
	reconciled(t, s)
	if !recovered(s, "overflow") {
		t.Errorf("no table reports an overflow catch-up: %v", recoveries(s))
	}
	e.finish()
}

// TestChaosReplayIDsExpireAfterAnOutageLongerThanRetention: the agent is down while records change, are
// deleted and undeleted, and the sandbox clock moves past the 72 h retention; started again it finds its
// replay ID rejected, re-syncs every table in full, applies the deletions made meanwhile and says so.
func TestChaosReplayIDsExpireAfterAnOutageLongerThanRetention(t *testing.T) {
	e := newEnv(t, "events/replay-expired", envOptions{contacts: profile.Contacts, accounts: profile.Accounts})
	sf := e.sb.Salesforce
	r := e.startAgent("")
	e.settle(r, 3*time.Minute)
	rounds := max(2, profile.Rounds)
	for round := 0; round < rounds; round++ {
		e.iterations++
		r.stop()
		if _, err := sf.Mutate("Contact", 50, ""); err != nil {
			t.Fatal(err)
		}
		ids := liveIDs(e.sb, "Contact", 13+3*rounds)
		gone := ids[10+round*3 : 13+round*3]
		if _, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{{Op: "delete", Object: "Contact", IDs: gone}}}); err != nil {
			t.Fatal(err)
		}
		e.sb.Clock.Advance(73 * time.Hour)
		if _, err := sf.Mutate("Account", 10, ""); err != nil {
			t.Fatal(err)
		}
		r = e.startAgent("")
		s := e.settle(r, 3*time.Minute)
		for _, ts := range s.Tables {
			if !strings.Contains(strings.Join(ts.Recoveries, "|"), "replay ID rejected") {
				t.Errorf("round %d: %s does not report the rejected replay ID: %q", round, ts.Table, ts.Recoveries)
			}
		}
		e.faults += int64(len(s.Tables))
	}
	e.finish()
}

// TestChaosDuplicateAndOutOfOrderDelivery: a fifth of the events are delivered twice and half the
// responses deliver their events in reverse order, under a steady stream and over backlogs of records changed
// field by field in separate transactions (where applying an older change over a newer one would show).
func TestChaosDuplicateAndOutOfOrderDelivery(t *testing.T) {
	e := newEnv(t, "events/duplicates+reordering", envOptions{contacts: profile.Contacts, accounts: profile.Accounts})
	sf := e.sb.Salesforce
	r := e.startAgent("")
	e.settle(r, 3*time.Minute)
	var dups, reorders int64
	for round := 0; round < profile.Rounds; round++ {
		e.iterations++
		r.stop()
		ids := liveIDs(e.sb, "Contact", 8*profile.Rounds)[round*8 : round*8+8]
		for step := 0; step < 12; step++ {
			for _, id := range ids {
				field := []string{"Phone", "Email", "Department", "Title"}[step%4]
				value := any(nil)
				if step%3 != 2 {
					value = fmt.Sprintf("%s-%d-%d@example.com", strings.ToLower(field), round, step)
				}
				if _, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{
					{Op: "update", Object: "Contact", ID: id, Fields: map[string]any{field: value}},
				}}); err != nil {
					t.Fatal(err)
				}
			}
		}
		sf.Faults().Set(faults.Config{DuplicateRate: 0.2, ReorderRate: 0.5, Seed: e.rng.Uint64() | 1})
		r = e.startAgent("")
		cs := e.startChanges(100*time.Millisecond, 100_000)
		time.Sleep(3 * time.Second)
		cs.stop()
		e.settle(r, 3*time.Minute)
		c := sf.Faults().Counts()
		dups, reorders = dups+c.Duplicates, reorders+c.Reorders
		sf.Faults().Reset()
	}
	e.faults = dups + reorders
	t.Logf("%d events redelivered, %d responses reordered", dups, reorders)
	if dups == 0 || reorders == 0 {
		t.Errorf("faults did not fire: %d duplicates, %d reorders", dups, reorders)
	}
	reconciled(t, r.a.Status())
	e.finish()
}
