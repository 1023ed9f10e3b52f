package cdc

import (
	"errors"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/clock"
)

func TestReadReturnsEventsOfTheTopicInCommitOrder(t *testing.T) {
	c := clock.New()
	l := New(c, 72*time.Hour)
	ids := l.Append(
		Event{Entity: "Contact", ChangeType: Create, CommitTimestamp: c.Now()},
		Event{Entity: "Account", ChangeType: Create, CommitTimestamp: c.Now()},
	)
	ids = append(ids, l.Append(Event{Entity: "Contact", ChangeType: Update, CommitTimestamp: c.Now()})...)
	if ids[2] <= ids[1]+1 {
		t.Errorf("replay IDs should skip between transactions: %v", ids)
	}
	got, pos := l.Read(Topic("Contact"), 0, 10)
	if len(got) != 2 || got[0].ReplayID != ids[0] || got[1].ReplayID != ids[2] {
		t.Fatalf("contact events = %+v", got)
	}
	if pos != l.Latest() {
		t.Errorf("position after a full scan = %d, want the tip %d", pos, l.Latest())
	}
	all, _ := l.Read(AllChangesTo, ids[0], 10)
	if len(all) != 2 {
		t.Errorf("/data/ChangeEvents after the first event = %d events, want 2", len(all))
	}
	one, pos := l.Read(AllChangesTo, 0, 1)
	if len(one) != 1 || pos != ids[0] {
		t.Errorf("Read with max 1 = %d events at %d", len(one), pos)
	}
}

func TestReplayIDsOutsideRetentionAreRejected(t *testing.T) {
	c := clock.New()
	l := New(c, time.Hour)
	old := l.Append(Event{Entity: "Contact", ChangeType: Create, CommitTimestamp: c.Now()})[0]
	if err := l.Validate(old); err != nil {
		t.Fatalf("fresh ID: %v", err)
	}
	c.Advance(2 * time.Hour)
	l.Append(Event{Entity: "Contact", ChangeType: Create, CommitTimestamp: c.Now()})
	if err := l.Validate(old); !errors.Is(err, ErrReplayTooOld) {
		t.Errorf("ID older than retention: %v, want ErrReplayTooOld", err)
	}
	if err := l.Validate(1 << 60); !errors.Is(err, ErrReplayUnknown) {
		t.Errorf("ID from the future: %v, want ErrReplayUnknown", err)
	}
	if err := l.Validate(l.Latest()); err != nil {
		t.Errorf("the tip: %v", err)
	}
}

func TestTickKeepsTheTipFresh(t *testing.T) {
	c := clock.New()
	l := New(c, time.Hour)
	l.Append(Event{Entity: "Contact", ChangeType: Create, CommitTimestamp: c.Now()})
	c.Advance(2 * time.Hour)
	l.Tick()
	tip := l.Latest()
	if err := l.Validate(tip); err != nil {
		t.Errorf("keepalive tip after an idle period: %v", err)
	}
	if got, _ := l.Read(AllChangesTo, 0, 10); len(got) != 0 {
		t.Errorf("markers must not be delivered: %+v", got)
	}
}
