package store

import (
	"errors"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// A heartbeat is the control plane's hottest call (every connector's agent, up to once a second): one
// transaction checks the holder, renews the lease with the status and reads what the answer needs.
func TestHeartbeatRenewsForTheHolderOnlyAndAnswersInOneCall(t *testing.T) {
	s := behaviourStore(t)
	defer s.Close()
	ctx := t.Context()
	c, err := s.CreateConnector(ctx, spec("beating"), nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetActivation(ctx, c.ID, true, nil, "test"); err != nil {
		t.Fatal(err)
	}
	l, err := s.AcquireLease(ctx, api.LeaseRequest{ConnectorID: c.ID, AgentID: "a1", Host: "h"}, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	req, err := s.RequestReconcile(ctx, c.ID, "test")
	if err != nil {
		t.Fatal(err)
	}

	b, err := s.Heartbeat(ctx, l.ID, "a1", time.Hour, 0, report(1, 7, 7, 0, 1))
	if err != nil {
		t.Fatal(err)
	}
	if time.Until(b.Lease.ExpiresAt) < 50*time.Minute {
		t.Errorf("the lease expires at %s: not renewed for the hour asked", b.Lease.ExpiresAt)
	}
	if !b.Activation.Active || b.Activation.DesiredRevision != 1 {
		t.Errorf("activation %+v: want active at revision 1", b.Activation)
	}
	if b.Reconcile == nil || b.Reconcile.RequestID != req.RequestID {
		t.Errorf("pending reconciliation %+v: want request %d", b.Reconcile, req.RequestID)
	}
	st, _, err := s.LastStatus(ctx, c.ID)
	if err != nil || st == nil || st.Tables[0].Written != 7 {
		t.Fatalf("the status was not stored: %+v, %v", st, err)
	}

	// The agent reports the reconciliation done: the answer no longer carries it.
	done := report(1, 9, 9, 0, 1)
	done.ReconcileRequestID = req.RequestID
	if b, err = s.Heartbeat(ctx, l.ID, "a1", time.Hour, 0, done); err != nil || b.Reconcile != nil {
		t.Errorf("after the agent completed the request: %+v, %v", b.Reconcile, err)
	}

	// Another agent cannot renew it, nor store a status under it.
	if _, err := s.Heartbeat(ctx, l.ID, "a2", time.Hour, 0, report(1, 99, 99, 0, 1)); !errors.Is(err, ErrNotHolder) {
		t.Errorf("another agent's heartbeat: %v, want ErrNotHolder", err)
	}
	if st, _, _ := s.LastStatus(ctx, c.ID); st == nil || st.Tables[0].Written != 9 {
		t.Errorf("another agent's heartbeat stored its status: %+v", st)
	}

	// A lease that is no longer current is lost.
	if err := s.ReleaseLease(ctx, l.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Heartbeat(ctx, l.ID, "a1", time.Hour, 0, report(1, 9, 9, 0, 1)); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("a released lease's heartbeat: %v, want ErrLeaseLost", err)
	}
}
