package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/jsonrow"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/writer"
)

// Change types (ChangeEventHeader.changeType).
const (
	ctCreate      = "CREATE"
	ctUpdate      = "UPDATE"
	ctDelete      = "DELETE"
	ctUndelete    = "UNDELETE"
	ctGapOverflow = "GAP_OVERFLOW"
)

// Auto-retry of dead letters whose lookup target was missing: how often, and for how long after the first
// failure (after that they wait for a person to retry them).
const (
	lookupRetryEvery  = 15 * time.Second
	lookupRetryWithin = time.Hour
)

type pumped struct {
	b   *salesforce.Batch
	err error
}

// pump reads a subscription in a goroutine of its own into a small buffer, so a window can be flushed on
// its timer while the next read blocks. A full buffer blocks the reads (and, through flow control, the
// server). onBatch, when set, sees every batch before it is buffered.
type pump struct {
	sub    *salesforce.Subscription
	msgs   chan pumped
	cancel context.CancelFunc
	done   chan struct{}
}

func startPump(ctx context.Context, sub *salesforce.Subscription, onBatch func(*salesforce.Batch)) *pump {
	pctx, cancel := context.WithCancel(ctx)
	// Up to 64 responses (6,400 events) are read ahead while a window is being written, so a backlog streams
	// in while writes are in flight; beyond that, reading blocks and flow control holds the server back.
	p := &pump{sub: sub, msgs: make(chan pumped, 64), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			b, err := sub.Next() //nolint:contextcheck // the subscription carries ctx
			if err == nil && onBatch != nil {
				onBatch(b)
			}
			select {
			case p.msgs <- pumped{b, err}:
			case <-pctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return p
}

// alive reports whether the pump still reads (it stops after delivering an error).
func (p *pump) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// stop ends the subscription and waits for the pump.
func (p *pump) stop() {
	p.cancel()
	p.sub.Close()
	<-p.done
}

// stream applies change events from the stored position until ctx ends or the stream cannot resume.
// Events are gathered into windows (flushed by size or after FlushInterval), coalesced per record in commit
// order and written; the window's last replay ID is stored only after the writes are acknowledged.
func (t *table) stream(ctx context.Context) error {
	cp := t.pos.snapshot()
	t.st.setPhase(PhaseStreaming, "opening the change stream")
	p, handedOver := t.bridge, t.bridge != nil
	t.bridge = nil
	if handedOver {
		// The load's bridge has been subscribed since before the load's query: it continues as the stream.
		p.sub.SetCredit(100)
	} else {
		opts := salesforce.SubscribeOptions{Topic: t.topic, Preset: salesforce.Latest, Credit: 100, Types: t.types}
		if len(cp.ReplayID) > 0 {
			opts.Preset, opts.ReplayID = salesforce.Custom, cp.ReplayID
		}
		sub, err := t.a.pubsub.Subscribe(ctx, opts)
		if err != nil {
			return t.streamFailed(ctx, err)
		}
		p = startPump(ctx, sub, nil)
	}
	defer p.stop()
	msgs := p.msgs

	before := t.st.counts()
	if err := t.settleLoadLeftovers(ctx, len(cp.ReplayID) == 0, handedOver); err != nil {
		t.st.rollback(before) // done again when the stream reopens
		return err
	}
	t.markLoaded()
	t.st.setPhase(PhaseStreaming, "")

	var (
		window []*salesforce.ChangeEvent
		timer  *time.Timer
		timerC <-chan time.Time
	)
	t.pos.streamOpened()
	flush := func(ctx context.Context, force bool) error {
		if timer != nil {
			timer.Stop()
			timer, timerC = nil, nil
		}
		if len(window) == 0 {
			return nil
		}
		before := t.st.counts()
		if err := t.apply(ctx, window); err != nil {
			t.st.rollback(before) // the window is applied again from the stored position
			return err
		}
		var last []byte
		for _, ev := range window {
			last = salesforce.LaterReplayID(last, ev.ReplayID)
		}
		window = window[:0]
		return t.pos.windowWritten(ctx, last, force)
	}
	retryTick := time.NewTicker(lookupRetryEvery)
	defer retryTick.Stop()
	for {
		select {
		case <-ctx.Done():
			// Drain: write what was received and store the position, on a context of its own.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			err := flush(dctx, true)
			if err == nil {
				err = t.pos.flush(dctx)
			}
			cancel()
			if err != nil {
				t.log.Error("draining on shutdown", "err", err)
			}
			return ctx.Err()
		case m := <-msgs:
			if m.err != nil {
				if err := flush(ctx, true); err != nil {
					return err
				}
				return t.streamFailed(ctx, m.err)
			}
			t.st.worked(sideSalesforce)
			if len(m.b.Events) == 0 {
				if len(window) == 0 && len(m.b.LatestReplayID) > 0 {
					// A keepalive while idle: move the stored position along so it stays within retention
					// (and learn it, when streaming from the tip).
					if err := t.pos.idle(ctx, m.b.LatestReplayID); err != nil {
						return err
					}
				}
				continue
			}
			if len(window) == 0 {
				t.st.windowOpened(m.b.Events[0].CommitTimestamp)
			}
			window = append(window, m.b.Events...)
			// A window holds up to one batch per writer, so a backlog is written with every writer busy;
			// under a trickle the timer flushes small windows early.
			if len(window) >= t.a.tuning.BatchSize*t.a.tuning.WriteConcurrency {
				if err := flush(ctx, false); err != nil {
					return err
				}
			} else if timer == nil {
				timer = time.NewTimer(time.Duration(t.a.tuning.FlushInterval))
				timerC = timer.C
			}
		case <-timerC:
			timer, timerC = nil, nil
			if err := flush(ctx, false); err != nil {
				return err
			}
		case <-retryTick.C:
			if err := t.retryLookups(ctx); err != nil {
				t.log.Warn("retrying dead letters with missing lookups", "err", err)
			}
		}
	}
}

// streamFailed decides what a stream error means: an expired replay ID starts a full re-sync, a lost
// position an incremental catch-up; anything else is retried by the caller from the stored position.
func (t *table) streamFailed(ctx context.Context, err error) error {
	switch {
	case errors.Is(err, salesforce.ErrReplayInvalid):
		t.addRecovery("replay ID rejected (" + err.Error() + "): full re-sync")
		return t.pos.replayRejected(ctx)
	case errors.Is(err, salesforce.ErrPositionLost):
		t.addRecovery("stream position lost: incremental catch-up")
		return t.pos.positionLost(ctx)
	}
	return err
}

// settleLoadLeftovers runs what a load or a lost position left to do once the stream is open: re-read
// records whose events arrived during the load, catch up on rows modified since a time, apply deletions
// since a time.
func (t *table) settleLoadLeftovers(ctx context.Context, fromTip, handedOver bool) error {
	cp := t.pos.snapshot()
	if len(cp.RefetchIDs) > 0 {
		t.st.received.Add(int64(len(cp.RefetchIDs)))
		if _, err := t.refetch(ctx, cp.RefetchIDs); err != nil {
			return err
		}
		if err := t.pos.rereadsDone(ctx); err != nil {
			return err
		}
	}
	if !cp.CatchUpSince.IsZero() && !handedOver {
		if fromTip {
			// Let the server register the LATEST subscription before querying, so every change is either in
			// the query or in the stream.
			if err := sleepCtx(ctx, time.Second); err != nil {
				return err
			}
		}
		t.st.setPhase(PhaseStreaming, "catching up on changes since "+cp.CatchUpSince.Format(time.RFC3339))
		if err := t.catchUp(ctx, cp.CatchUpSince, false); err != nil {
			return err
		}
		// Streaming from the tip, the position is unknown until the first event or keepalive: until one
		// is stored, a restart must catch up again, so the instruction stays.
		if !fromTip {
			if err := t.pos.catchUpDone(ctx); err != nil {
				return err
			}
		}
	}
	if !cp.DeletesSince.IsZero() {
		t.st.setPhase(PhaseStreaming, "applying deletions since "+cp.DeletesSince.Format(time.RFC3339))
		if err := t.catchUp(ctx, cp.DeletesSince, true); err != nil {
			return err
		}
		if err := t.pos.deletesDone(ctx); err != nil {
			return err
		}
	}
	return nil
}

// catchUp writes every row modified since a time (unless deletesOnly) and applies every deletion since then.
func (t *table) catchUp(ctx context.Context, since time.Time, deletesOnly bool) error {
	lit := since.UTC().Format("2006-01-02T15:04:05Z")
	var batch []writer.Op
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		_, err := t.writeAll(ctx, batch)
		batch = nil
		return err
	}
	add := func(o writer.Op, ok bool) error {
		if !ok {
			t.st.skipped.Add(1)
			return nil
		}
		batch = append(batch, o)
		if len(batch) >= t.a.tuning.BatchSize {
			return flush()
		}
		return nil
	}
	if !deletesOnly {
		fields := strings.Join(withField(t.plan.SourceFields(), "SystemModstamp"), ", ")
		soql := fmt.Sprintf("SELECT %s FROM %s WHERE SystemModstamp >= %s", fields, t.cfg.SourceTable, lit)
		if _, err := t.a.sf.Query(ctx, soql, false, func(r salesforce.Record) error {
			t.st.received.Add(1)
			if ms, ok := r["SystemModstamp"].(string); ok {
				if ts, err := parseSFTime(ms); err == nil {
					t.remember(r.ID(), ts)
				}
			}
			o, ok, err := t.rowOp(ctx, r)
			if err != nil || !ok {
				return err // nothing to write: dead-lettered or skipped, and counted
			}
			return add(o, ok)
		}); err != nil {
			return err
		}
	}
	soql := fmt.Sprintf("SELECT Id FROM %s WHERE IsDeleted = true AND SystemModstamp >= %s", t.cfg.SourceTable, lit)
	if _, err := t.a.sf.Query(ctx, soql, true, func(r salesforce.Record) error {
		t.st.received.Add(1)
		key, err := t.plan.Key(r.ID())
		if err != nil {
			return t.deadLetterMapping(ctx, r.ID(), "delete", err)
		}
		o, ok, _ := t.deleteOp(r.ID(), key)
		return add(o, ok)
	}); err != nil {
		return err
	}
	return flush()
}

// recState accumulates one record's changes within a window, in commit order.
type recState struct {
	kind    string // "full", "patch", "delete", "refetch"
	values  map[string]any
	changed []string
	changes int64
	newest  []byte // replay ID of the newest change taken in
}

// apply coalesces a window of events per record and writes the result.
func (t *table) apply(ctx context.Context, window []*salesforce.ChangeEvent) error {
	states := map[string]*recState{}
	var order []string
	var overflowSince time.Time
	for _, ev := range window {
		if ev.ChangeType == ctGapOverflow || hasWildcard(ev.RecordIDs) {
			t.st.received.Add(1)
			t.st.written.Add(1) // settled by the catch-up below
			if overflowSince.IsZero() || ev.CommitTimestamp.Before(overflowSince) {
				overflowSince = ev.CommitTimestamp
			}
			continue
		}
		for _, rid := range ev.RecordIDs {
			id := to18(rid)
			t.st.received.Add(1)
			if t.stale(id, ev.CommitTimestamp) {
				t.st.skipped.Add(1)
				continue
			}
			st := states[id]
			if st == nil {
				st = &recState{}
				states[id] = st
				order = append(order, id)
			}
			// Replay IDs grow in commit order (and are unique per event, unlike commit times, which several
			// transactions can share to the millisecond), so they tell a redelivery and an event delivered
			// out of order.
			applied := t.lastApplied(id)
			switch {
			case sameReplay(ev.ReplayID, st.newest) || sameReplay(ev.ReplayID, applied):
				t.st.skipped.Add(1) // a redelivery of a change already taken
				if st.changes == 0 && st.kind == "" {
					delete(states, id)
					order = order[:len(order)-1]
				}
				continue
			case olderReplay(ev.ReplayID, st.newest) || olderReplay(ev.ReplayID, applied):
				// Applying it would put older values over newer ones, and skipping it could lose the fields
				// it changed: what Salesforce holds now settles it.
				st.changes++
				st.kind, st.values, st.changed = "refetch", nil, nil
				continue
			}
			st.changes++
			st.newest = ev.ReplayID
			switch ev.ChangeType {
			case ctCreate:
				st.kind, st.values, st.changed = "full", copyValues(ev.Values, id), nil
			case ctUpdate:
				switch st.kind {
				case "refetch", "delete":
					st.kind = "refetch" // an update after a delete in one window: read what is there now
				case "full":
					mergeUpdate(st, ev)
				default:
					st.kind = "patch"
					if st.values == nil {
						st.values = map[string]any{}
					}
					mergeUpdate(st, ev)
				}
			case ctDelete:
				st.kind, st.values, st.changed = "delete", nil, nil
			default: // UNDELETE and GAP_* events carry no usable values: read the record again
				st.kind, st.values, st.changed = "refetch", nil, nil
			}
		}
	}

	var ops []writer.Op
	var refetchIDs []string
	for _, id := range order {
		st := states[id]
		key, err := t.plan.Key(id)
		if err != nil {
			if err := t.deadLetterMapping(ctx, id, st.kind, err); err != nil {
				return err
			}
			t.st.deadLettered.Add(st.changes - 1)
			continue
		}
		switch st.kind {
		case "full":
			body, err := t.plan.AppendRow(nil, st.values)
			if err != nil {
				if err := t.deadLetterMapping(ctx, id, "upsert", err); err != nil {
					return err
				}
				t.st.deadLettered.Add(st.changes - 1)
				continue
			}
			ops = append(ops, writer.Op{Kind: writer.Upsert, RecordID: id, Key: key, Body: body, Changes: st.changes})
		case "patch":
			row, err := t.plan.Patch(st.values, st.changed)
			var body []byte
			if err == nil && row != nil {
				body, err = jsonrow.AppendMembers(nil, row)
			}
			switch {
			case err != nil:
				if err := t.deadLetterMapping(ctx, id, "update", err); err != nil {
					return err
				}
				t.st.deadLettered.Add(st.changes - 1)
			case row == nil:
				t.st.skipped.Add(st.changes) // no mapped column changed
			default:
				ops = append(ops, writer.Op{Kind: writer.Update, RecordID: id, Key: key, Body: body, Changes: st.changes})
			}
		case "delete":
			o, ok, _ := t.deleteOp(id, key)
			if !ok {
				t.st.skipped.Add(st.changes)
				continue
			}
			o.Changes = st.changes
			ops = append(ops, o)
		case "refetch":
			refetchIDs = append(refetchIDs, id)
			t.st.skipped.Add(st.changes - 1) // the re-read write stands for the last of them
		}
	}
	if _, err := t.writeAll(ctx, ops); err != nil {
		return err
	}
	if _, err := t.refetch(ctx, refetchIDs); err != nil {
		return err
	}
	var deleted []string
	for _, id := range order {
		if states[id].kind == "delete" {
			deleted = append(deleted, id)
		}
	}
	if err := t.reparentAfterMerges(ctx, deleted); err != nil {
		return err
	}
	if !overflowSince.IsZero() {
		t.addRecovery("overflow event: catch-up since " + overflowSince.Format(time.RFC3339))
		if err := t.catchUp(ctx, overflowSince.Add(-catchUpMargin), false); err != nil {
			return err
		}
	}
	for _, id := range order {
		t.markApplied(id, states[id].newest)
	}
	commits := make([]time.Time, len(window))
	for i, ev := range window {
		commits[i] = ev.CommitTimestamp
	}
	t.st.windowWritten(commits, time.Now())
	return nil
}

func copyValues(v map[string]any, id string) map[string]any {
	out := make(map[string]any, len(v)+1)
	for k, x := range v {
		out[k] = x
	}
	out["Id"] = id
	return out
}

// mergeUpdate applies an UPDATE event's changed and nulled fields to the accumulated state.
func mergeUpdate(st *recState, ev *salesforce.ChangeEvent) {
	for _, f := range ev.ChangedFields {
		if v, ok := ev.Values[f]; ok {
			st.values[f] = v
		} else {
			st.values[f] = nil
		}
		st.changed = append(st.changed, f)
	}
	for _, f := range ev.NulledFields {
		st.values[f] = nil
		st.changed = append(st.changed, f)
	}
}

// retryLookups retries dead letters the agent may settle on its own: missing lookup targets, for a while
// after their first failure, and any a person asked to retry (code retry_requested, set through the control
// plane). It re-reads the records and writes them; those that fail again are dead-lettered anew.
func (t *table) retryLookups(ctx context.Context) error {
	start := time.Now().UTC()
	dls, err := t.a.stores.DeadLetters.RetryableDeadLetters(ctx, t.cfg.SourceTable, CodeLookupMissing, start.Add(-lookupRetryWithin), 500)
	if err != nil {
		return err
	}
	asked, err := t.a.stores.DeadLetters.RetryableDeadLetters(ctx, t.cfg.SourceTable, CodeRetryRequested, time.Time{}, 500)
	if err != nil {
		return err
	}
	dls = append(dls, asked...)
	if len(dls) == 0 {
		return nil
	}
	ids := make([]string, len(dls))
	for i, d := range dls {
		ids[i] = d.RecordID
	}
	t.st.deadLettered.Add(-int64(len(ids)))
	if _, err := t.refetch(ctx, ids); err != nil {
		t.st.deadLettered.Add(int64(len(ids)))
		return err
	}
	for _, id := range ids {
		if err := t.a.stores.DeadLetters.ResolveDeadLetter(ctx, t.cfg.SourceTable, id, start); err != nil {
			return err
		}
	}
	return nil
}

func withField(fields []string, f string) []string {
	for _, x := range fields {
		if strings.EqualFold(x, f) {
			return fields
		}
	}
	return append(append([]string(nil), fields...), f)
}

// olderReplay reports whether replay ID a is older than b (both 8-byte big-endian in practice; IDs of
// different lengths are never compared).
func olderReplay(a, b []byte) bool { return len(a) == len(b) && len(a) > 0 && bytes.Compare(a, b) < 0 }

func sameReplay(a, b []byte) bool { return len(a) > 0 && bytes.Equal(a, b) }
