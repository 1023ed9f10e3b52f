package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/testenv/pgtest"
)

// An agent that takes its deadline from the answer gets its lease renewed only when renewEvery passed since
// the last renewal; the store's expiry is always the one the answer tells (so the agent's deadline, counted
// from before its request, is never later than the store's), and an expired lease still re-attaches.
func TestHeartbeatRenewsTheLeaseOnlyWhenDue(t *testing.T) {
	s := behaviourStore(t)
	defer s.Close()
	ctx := t.Context()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	c, err := s.CreateConnector(ctx, spec("due"), nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	const ttl, every = time.Minute, 12 * time.Second
	l, err := s.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, AgentID: "a1", Host: "h"}, ttl)
	if err != nil {
		t.Fatal(err)
	}
	granted := now
	beat := func(at time.Duration, renewEvery time.Duration, wantExpiry time.Time) {
		t.Helper()
		now = granted.Add(at)
		b, err := s.Heartbeat(ctx, l.ID, "a1", ttl, renewEvery, report(1, 1, 1, 0, 1))
		if err != nil {
			t.Fatal(err)
		}
		stored, err := s.CurrentLease(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !b.Lease.ExpiresAt.Equal(wantExpiry) || !stored.ExpiresAt.Equal(wantExpiry) || b.ExpiresIn != wantExpiry.Sub(now) {
			t.Errorf("at +%s: answer expires %s (in %s), stored %s; want %s", at, b.Lease.ExpiresAt, b.ExpiresIn, stored.ExpiresAt, wantExpiry)
		}
		agent, err := s.CurrentAgent(ctx, c.ID)
		if err != nil || !agent.HeartbeatAt.Equal(now) {
			t.Errorf("at +%s: last heartbeat %s, %v; want %s", at, agent.HeartbeatAt, err, now)
		}
	}
	beat(5*time.Second, every, granted.Add(ttl))                 // 5 s since the grant: not due
	beat(11*time.Second, every, granted.Add(ttl))                // 11 s: not due
	beat(13*time.Second, every, granted.Add(13*time.Second+ttl)) // due
	beat(14*time.Second, 0, granted.Add(14*time.Second+ttl))     // an agent that counts from its request: every time
	beat(5*time.Minute, every, granted.Add(5*time.Minute+ttl))   // expired, not replaced: re-attaches
	beat(5*time.Minute+time.Second, every, granted.Add(5*time.Minute+ttl))
}

// Reports are buffered per store and written together: through the store that received it a report is
// read at once, through another replica within the flush interval; a buffered report never overwrites the
// report of a lease that replaced its own, and one of a deleted connector does not stop the others.
func TestAReportThroughOneReplicaIsReadOnAnotherWithinTheFlushInterval(t *testing.T) {
	url := pgtest.Database(t)
	key := filepath.Join(t.TempDir(), KeyFile)
	a := openPG(t, url, t.TempDir(), key)
	b := openPG(t, url, t.TempDir(), key)
	ctx := t.Context()
	c, err := a.CreateConnector(ctx, spec("seen-elsewhere"), nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	l, err := a.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, AgentID: "a1", Host: "h"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Heartbeat(ctx, l.ID, "a1", time.Minute, 12*time.Second, report(1, 7, 7, 0, 1)); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	if st, _, err := a.LastStatus(ctx, c.ID); err != nil || st == nil || st.Tables[0].Written != 7 {
		t.Fatalf("the receiving replica does not show its report at once: %+v, %v", st, err)
	}
	for {
		st, _, err := b.LastStatus(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st != nil && st.Tables[0].Written == 7 {
			break
		}
		if time.Since(sent) > 3*StatusFlushInterval+5*time.Second {
			t.Fatalf("the other replica does not show the report %s after it was made: %+v", time.Since(sent), st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the other replica showed the report %s after it was made (flush interval %s)", time.Since(sent).Round(time.Millisecond), StatusFlushInterval)

	// A stale lease's report, buffered when its lease was replaced, is dropped by the flush; so is a deleted
	// connector's, and the others are written.
	if err := b.ReleaseLease(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	l2, err := b.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, AgentID: "a2", Host: "h2"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Heartbeat(ctx, l2.ID, "a2", time.Minute, 0, report(2, 3, 3, 0, 1)); err != nil {
		t.Fatal(err)
	}
	gone, err := a.CreateConnector(ctx, spec("deleted"), nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteConnector(ctx, gone.ID, "test"); err != nil {
		t.Fatal(err)
	}
	a.bufferReport(c.ID, l.ID, report(1, 99, 99, 0, 1), a.Now())
	a.bufferReport(gone.ID, "lease-of-a-deleted-connector", report(1, 5, 5, 0, 1), a.Now())
	if err := a.flushReports(ctx); err != nil {
		t.Fatalf("a flush with a stale lease's and a deleted connector's reports: %v", err)
	}
	if err := b.flushReports(ctx); err != nil {
		t.Fatal(err)
	}
	st, _, err := a.LastStatus(ctx, c.ID)
	if err != nil || st == nil || st.Revision != 2 || st.Tables[0].Written != 10 {
		t.Errorf("after the stale lease's report was flushed: %+v, %v; want the new agent's (revision 2, 7 + 3 written)", st, err)
	}
}

// TestHelperHotStatusWriter is the replica killed by TestAKilledReplicaLosesOnlyUnwrittenReportsNeverACheckpoint.
func TestHelperHotStatusWriter(t *testing.T) {
	dir := os.Getenv("CRMSYNC_HOT_STATUS_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	s, err := OpenSQLite(dir)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	fail := func(what string, err error) {
		if err != nil {
			fmt.Println(what+":", err)
			os.Exit(2)
		}
	}
	c, err := s.CreateConnector(ctx, spec("killed"), nil, "test")
	fail("create", err)
	l, err := s.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, AgentID: "a", Host: "h"}, time.Hour)
	fail("lease", err)
	_, err = s.Heartbeat(ctx, l.ID, "a", time.Hour, time.Minute, report(1, 1, 1, 0, 1))
	fail("heartbeat", err)
	fail("flush", s.flushReports(ctx))
	fail("checkpoint", s.SaveCheckpoint(ctx, l.ID, api.Checkpoint{Table: "Contact", Phase: "streaming", LoadDone: 42, ReplayID: []byte{1, 2, 3}}))
	_, err = s.Heartbeat(ctx, l.ID, "a", time.Hour, time.Minute, report(1, 2, 2, 0, 1))
	fail("heartbeat", err)
	fmt.Println("ready")
	time.Sleep(time.Minute) // killed here
	os.Exit(0)
}

// A replica killed with reports it had not written loses those reports only: the status is the last one
// written (the agent's next heartbeat reports again), and every checkpoint, committed before its answer, is
// there.
func TestAKilledReplicaLosesOnlyUnwrittenReportsNeverACheckpoint(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd, sc := startHelper(ctx, t, "TestHelperHotStatusWriter", "CRMSYNC_HOT_STATUS_DIR="+dir)
	for sc.Scan() && sc.Text() != "ready" {
		if !strings.HasPrefix(sc.Text(), "=== RUN") {
			t.Fatalf("writer: %s", sc.Text())
		}
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	s := openStore(t, dir)
	defer s.Close()
	conns, err := s.ListConnectors(ctx)
	if err != nil || len(conns) != 1 {
		t.Fatalf("connectors after the kill: %v, %v", conns, err)
	}
	cps, err := s.ListCheckpoints(ctx, conns[0].ID)
	if err != nil || len(cps) != 1 || cps[0].LoadDone != 42 || string(cps[0].ReplayID) != "\x01\x02\x03" {
		t.Fatalf("the checkpoint after the kill: %+v, %v", cps, err)
	}
	st, _, err := s.LastStatus(ctx, conns[0].ID)
	if err != nil || st == nil {
		t.Fatalf("the written report is lost: %+v, %v", st, err)
	}
	// 1 unless the flush of the buffered report happened to run in the instant before the kill.
	if w := st.Tables[0].Written; w != 1 && w != 2 {
		t.Errorf("status after the kill: written %d, want 1 (the last written report) or 2", w)
	}
}
