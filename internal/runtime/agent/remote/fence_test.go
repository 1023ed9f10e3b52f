package remote

import (
	"errors"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// The write fence lets a Dataverse write through only while the lease is surely the agent's: not once it is
// lost, and not within the margin before its local deadline; each write is tagged with the lease's digest.
func TestWriteFenceRefusesWritesNearAndPastTheDeadline(t *testing.T) {
	r := &runner{lease: &api.Lease{ID: "lease_x", TTLSeconds: 10}, fence: newFence(), tag: LeaseTag("lease_x")}
	r.setExpires(time.Now().Add(5 * time.Second))
	tag, err := r.mayWrite()
	if err != nil || tag != LeaseTag("lease_x") || len(tag) != 16 {
		t.Fatalf("a write well within the lease: tag %q, err %v", tag, err)
	}
	r.setExpires(time.Now().Add(500 * time.Millisecond)) // inside the 1 s margin (TTL/10)
	if _, err := r.mayWrite(); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("a write 0.5 s before the deadline: %v, want ErrLeaseLost", err)
	}
	r.setExpires(time.Now().Add(5 * time.Second))
	r.fence.trip()
	if _, err := r.mayWrite(); !errors.Is(err, ErrLeaseLost) {
		t.Errorf("a write after the lease was lost: %v, want ErrLeaseLost", err)
	}
}
