// Package cdc is the emulated org's event bus for Change Data Capture: an append-only, retention-bounded log
// of change events in commit order. The record store appends the events of each committed transaction; the
// Pub/Sub API server reads them by replay ID and topic.
//
// Replay IDs are uint64 values, sent on the wire as 8-byte big-endian bytes. They increase strictly in commit
// order but are not contiguous: the log skips a few IDs between transactions, as the multi-tenant bus does,
// so clients cannot compute neighbours.
package cdc

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/clock"
)

// Change types of ChangeEventHeader.changeType.
const (
	Create       = "CREATE"
	Update       = "UPDATE"
	Delete       = "DELETE"
	Undelete     = "UNDELETE"
	GapCreate    = "GAP_CREATE"
	GapUpdate    = "GAP_UPDATE"
	GapDelete    = "GAP_DELETE"
	GapUndelete  = "GAP_UNDELETE"
	GapOverflow  = "GAP_OVERFLOW"
	AllChangesTo = "/data/ChangeEvents"
)

// Event is one change event. Field names are sObject field API names; components of compound fields
// (Contact Name, addresses) are named by their own field (FirstName, MailingCity) in Values, and as
// "Compound.Member" (Name.FirstName, MailingAddress.City) in the three header field lists, which is how
// the Pub/Sub server encodes them into bitmaps.
type Event struct {
	ReplayID        uint64
	Entity          string // Contact, Account
	ChangeType      string
	RecordIDs       []string
	ChangeOrigin    string
	TransactionKey  string
	SequenceNumber  int
	CommitTimestamp time.Time
	CommitNumber    int64
	CommitUser      string
	ChangedFields   []string
	NulledFields    []string
	DiffFields      []string
	// Values holds the body: for CREATE and UNDELETE every field the event carries (nil for null); for
	// UPDATE only the changed fields; nothing for DELETE and GAP_* events. Types follow package schema.
	Values map[string]any
	// SchemaID and Payload cache the event's binary Avro encoding under that schema, once a server has
	// encoded it (a bus stores events serialized; delivering them does not encode them again).
	SchemaID string
	Payload  []byte
}

// Topic is the single-entity channel of an entity, e.g. /data/ContactChangeEvent.
func Topic(entity string) string { return "/data/" + entity + "ChangeEvent" }

// EntityOfTopic returns the entity of a single-entity channel, or "" for other names.
func EntityOfTopic(topic string) string {
	if !strings.HasPrefix(topic, "/data/") || !strings.HasSuffix(topic, "ChangeEvent") {
		return ""
	}
	return strings.TrimSuffix(strings.TrimPrefix(topic, "/data/"), "ChangeEvent")
}

// OnTopic reports whether the event is delivered on topic (its entity channel or /data/ChangeEvents).
func (e *Event) OnTopic(topic string) bool {
	return e.Entity != "" && (topic == AllChangesTo || topic == Topic(e.Entity))
}

// Replay-ID validation errors.
var (
	// ErrReplayTooOld: the ID is older than the retention window (events purged).
	ErrReplayTooOld = errors.New("the replay ID is outside the retention window")
	// ErrReplayUnknown: the ID was never issued by this bus (garbage, or from the future).
	ErrReplayUnknown = errors.New("the replay ID validation failed")
)

// Log is safe for concurrent use.
type Log struct {
	mu        sync.RWMutex
	clock     *clock.Clock
	retention time.Duration
	events    []Event // ascending ReplayID
	next      uint64  // next replay ID to issue
	purged    uint64  // every ID below this was issued and has been purged
	dropped   uint64  // the highest replay ID purged (or reset away); 0 if none
	changed   chan struct{}
}

// New returns an empty log whose events expire after retention (72 h on a real org).
func New(c *clock.Clock, retention time.Duration) *Log {
	return &Log{clock: c, retention: retention, next: firstReplayID, purged: firstReplayID, changed: make(chan struct{})}
}

const firstReplayID = 1000

// SetRetention changes the retention window.
func (l *Log) SetRetention(d time.Duration) {
	l.mu.Lock()
	l.retention = d
	l.mu.Unlock()
}

// Retention returns the retention window.
func (l *Log) Retention() time.Duration {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.retention
}

// Append adds the events of one transaction in order, assigning their replay IDs, and wakes waiting
// readers. Callers fill every other field.
func (l *Log) Append(events ...Event) []uint64 {
	if len(events) == 0 {
		return nil
	}
	l.mu.Lock()
	ids := make([]uint64, len(events))
	for i := range events {
		events[i].ReplayID = l.next
		ids[i] = l.next
		l.next++
	}
	l.next += 3 // the shared bus moves on between our transactions: IDs are not contiguous
	l.events = append(l.events, events...)
	ch := l.changed
	l.changed = make(chan struct{})
	l.mu.Unlock()
	close(ch)
	return ids
}

// Tick records that the shared bus has moved on: when the newest replay ID is older than a minute, it
// appends a marker (an event of another tenant, on no topic of this org) so the tip handed out in keepalive
// responses is a recent position that stays valid for the retention window. The Pub/Sub server calls it
// before each keepalive.
func (l *Log) Tick() {
	now := l.clock.Now()
	l.mu.RLock()
	fresh := len(l.events) > 0 && now.Sub(l.events[len(l.events)-1].CommitTimestamp) < time.Minute
	l.mu.RUnlock()
	if !fresh {
		l.Append(Event{CommitTimestamp: now})
	}
}

// SetEncoding caches an event's encoding under a schema (see Event.Payload); unknown IDs are ignored.
func (l *Log) SetEncoding(replayID uint64, schemaID string, payload []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	i := sort.Search(len(l.events), func(i int) bool { return l.events[i].ReplayID >= replayID })
	if i < len(l.events) && l.events[i].ReplayID == replayID {
		l.events[i].SchemaID, l.events[i].Payload = schemaID, payload
	}
}

// Latest returns the replay ID of the tip of the stream: the ID a subscriber starting at LATEST resumes
// after. It may name no event of a given topic.
func (l *Log) Latest() uint64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.next - 1
}

// Changed returns a channel closed at the next Append.
func (l *Log) Changed() <-chan struct{} {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.changed
}

// Validate checks a replay ID given with the CUSTOM preset: ErrReplayUnknown if it was never issued,
// ErrReplayTooOld if its event has been purged by retention.
func (l *Log) Validate(id uint64) error {
	l.Purge()
	l.mu.RLock()
	defer l.mu.RUnlock()
	switch {
	case id < firstReplayID-1 || id >= l.next:
		return ErrReplayUnknown
	case id < l.purged:
		return ErrReplayTooOld
	}
	return nil
}

// Lost reports whether an event after the position has been purged: a subscriber that read up to after
// and has not fetched since can no longer be served everything that followed. It answers as of the last
// purge, which every Read does, so a caller asks right after reading.
func (l *Log) Lost(after uint64) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.dropped > after
}

// Read returns up to max events on topic with replay IDs greater than after, in order, and the replay ID
// of the position read up to (the last returned event, or the tip when the rest of the log was scanned).
func (l *Log) Read(topic string, after uint64, max int) ([]Event, uint64) {
	l.Purge()
	l.mu.RLock()
	defer l.mu.RUnlock()
	i := sort.Search(len(l.events), func(i int) bool { return l.events[i].ReplayID > after })
	var out []Event
	pos := after
	for ; i < len(l.events) && len(out) < max; i++ {
		if l.events[i].OnTopic(topic) {
			out = append(out, l.events[i])
		}
		pos = l.events[i].ReplayID
	}
	if i == len(l.events) && l.next-1 > pos {
		pos = l.next - 1
	}
	return out, pos
}

// Earliest returns the replay position just before the oldest retained event: subscribing EARLIEST
// starts after it.
func (l *Log) Earliest() uint64 {
	l.Purge()
	l.mu.RLock()
	defer l.mu.RUnlock()
	if len(l.events) > 0 {
		return l.events[0].ReplayID - 1
	}
	return l.next - 1
}

// Purge drops events older than the retention window.
func (l *Log) Purge() {
	cutoff := l.clock.Now().Add(-l.Retention())
	l.mu.Lock()
	defer l.mu.Unlock()
	n := sort.Search(len(l.events), func(i int) bool { return !l.events[i].CommitTimestamp.Before(cutoff) })
	if n == 0 {
		return
	}
	l.dropped = l.events[n-1].ReplayID
	if n == len(l.events) {
		l.purged = l.next
	} else {
		l.purged = l.events[n].ReplayID
	}
	l.events = slices.Delete(l.events, 0, n)
}

// Len returns the number of retained events.
func (l *Log) Len() int {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return len(l.events)
}

// Reset empties the log; replay IDs keep increasing so IDs issued before the reset stay invalid.
func (l *Log) Reset() {
	l.mu.Lock()
	l.events = nil
	l.purged = l.next
	l.dropped = l.next - 1
	l.mu.Unlock()
}

// Wait blocks until an event is appended after the position or ctx ends; it returns ctx.Err() then.
func (l *Log) Wait(ctx context.Context, after uint64) error {
	for {
		ch := l.Changed()
		if l.Latest() > after {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
