package agent

import (
	"context"
	"errors"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/retry"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/writer"
)

// Auto-retry of dead letters whose lookup target was missing: how often, and for how long after the first
// failure (after that they wait for a person to retry them).
const (
	lookupRetryEvery  = 15 * time.Second
	lookupRetryWithin = time.Hour
)

// streamCredit is how many events the stream keeps requested (the Pub/Sub API's cap).
const streamCredit = 100

// stream applies changes from the stored position until ctx ends or the stream cannot resume. Changes are
// gathered into windows (group commit, groupcommit.go), coalesced per record in commit order and
// written; the window's position is stored only after the writes are acknowledged.
func (t *table) stream(ctx context.Context) error {
	cp := t.pos.snapshot()
	t.st.setPhase(PhaseStreaming, "opening the change stream")
	p, handedOver := t.bridge, t.bridge != nil
	t.bridge = nil
	if handedOver {
		// The load's bridge has been subscribed since before the load's query: it continues as the stream.
		p.sub.SetCredit(streamCredit)
	} else {
		var err error
		if p, err = t.rd.subscribe(ctx, cp.ReplayID, streamCredit, nil); err != nil {
			return t.streamFailed(ctx, err)
		}
	}
	defer p.stop()

	before := t.st.counts()
	if err := t.settleLoadLeftovers(ctx, len(cp.ReplayID) == 0, handedOver); err != nil {
		t.st.rollback(before) // done again when the stream reopens
		return err
	}
	t.markLoaded()
	t.st.setPhase(PhaseStreaming, "")
	t.pos.streamOpened()
	s := &streamer{t: t, msgs: p.msgs}
	return s.run(ctx)
}

// streamer gathers a stream's changes into windows and applies them.
//
// Group commit (groupcommit.go): a window is written as soon as the table's writer is free (the stream is read
// between writes), with every change that arrived meanwhile, when the connector's window budget has a token;
// otherwise it grows until its token comes (at most the flush interval).
type streamer struct {
	t      *table
	msgs   <-chan pumped
	window []change
	timer  *time.Timer // set while the window waits for its token
	timerC <-chan time.Time
	// failed is a stream error met while gathering what had arrived: handled once the window is written.
	failed error
}

func (s *streamer) run(ctx context.Context) error {
	retryTick := time.NewTicker(lookupRetryEvery)
	defer retryTick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.drain(ctx)
			return ctx.Err()
		case m := <-s.msgs:
			if m.err != nil {
				// The stream ended: write the window, then decide what the error means.
				if err := s.flush(ctx, true); err != nil {
					return err
				}
				return s.t.streamFailed(ctx, m.err)
			}
			if err := s.receive(ctx, m.b); err != nil {
				return err
			}
			if ended, err := s.failedAfterWrite(ctx); ended {
				return err
			}
		case <-s.timerC:
			s.timer, s.timerC = nil, nil
			s.gather()
			if err := s.flush(ctx, false); err != nil {
				return err
			}
			if ended, err := s.failedAfterWrite(ctx); ended {
				return err
			}
		case <-retryTick.C:
			if err := s.t.retryLookups(ctx); err != nil {
				s.t.log.Warn("retrying dead letters with missing lookups", "err", err)
			}
		}
	}
}

// receive takes one batch of the stream into the window.
func (s *streamer) receive(ctx context.Context, b streamBatch) error {
	t := s.t
	t.st.worked(sideSalesforce)
	if len(b.changes) == 0 {
		if len(s.window) == 0 && len(b.latest) > 0 {
			// A keepalive while idle: move the stored position along so it stays within retention (and
			// learn it, when streaming from the tip).
			return t.pos.idle(ctx, b.latest)
		}
		return nil
	}
	if len(s.window) == 0 {
		t.st.windowOpened(b.changes[0].commit)
	}
	s.window = append(s.window, b.changes...)
	// A window holds up to one batch per writer, so a backlog is written with every writer busy.
	if s.full() {
		return s.flush(ctx, false)
	}
	if s.timer != nil {
		return nil // it grows until its token comes
	}
	if wait := t.windows.take(time.Now()); wait > 0 {
		s.timer = time.NewTimer(min(wait, time.Duration(t.tuning.FlushInterval)))
		s.timerC = s.timer.C
		return nil
	}
	s.gather()
	return s.flush(ctx, false)
}

func (s *streamer) full() bool {
	return len(s.window) >= s.t.tuning.BatchSize*s.t.tuning.WriteConcurrency
}

// gather takes into the window every batch already received from the stream, without waiting, until the
// window is full; a stream error ends it (s.failed).
func (s *streamer) gather() {
	for !s.full() {
		select {
		case m := <-s.msgs:
			if m.err != nil {
				s.failed = m.err
				return
			}
			s.t.st.worked(sideSalesforce)
			s.window = append(s.window, m.b.changes...)
		default:
			return
		}
	}
}

// failedAfterWrite handles a stream error gather met, once the window before it is written. ended is true
// when there was one: the pump stopped after delivering it, so the stream is over even when the error was
// handled (err nil: a re-sync or catch-up is now owed, and the table's loop starts it).
func (s *streamer) failedAfterWrite(ctx context.Context) (ended bool, err error) {
	if s.failed == nil {
		return false, nil
	}
	if err := s.flush(ctx, true); err != nil {
		return true, err
	}
	return true, s.t.streamFailed(ctx, s.failed)
}

// flush writes the window and reports its position to the tracker (stored at once when force is set).
func (s *streamer) flush(ctx context.Context, force bool) error {
	if s.timer != nil {
		s.timer.Stop()
		s.timer, s.timerC = nil, nil
	}
	if len(s.window) == 0 {
		return nil
	}
	before := s.t.st.counts()
	if err := s.t.apply(ctx, s.window); err != nil {
		s.t.st.rollback(before) // the window is applied again from the stored position
		return err
	}
	var last []byte
	for _, c := range s.window {
		last = salesforce.LaterReplayID(last, c.position)
	}
	s.window = s.window[:0]
	return s.t.pos.windowWritten(ctx, last, force)
}

// drain writes what was received and stores the position, on a context of its own: ctx has ended.
func (s *streamer) drain(ctx context.Context) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	err := s.flush(dctx, true)
	if err == nil {
		err = s.t.pos.flush(dctx)
	}
	if err != nil {
		s.t.log.Error("draining on shutdown", "err", err)
	}
}

// apply writes a window of changes: coalesced per record, then written (rows, re-read records), merges'
// children re-read, an overflow caught up.
func (t *table) apply(ctx context.Context, window []change) error {
	w := t.ap.coalesce(window)
	ops, refetch, err := t.ap.ops(ctx, w)
	if err != nil {
		return err
	}
	if _, err := t.writeAll(ctx, ops); err != nil {
		return err
	}
	if _, err := t.refetch(ctx, refetch); err != nil {
		return err
	}
	if err := t.reparentAfterMerges(ctx, w.deleted()); err != nil {
		return err
	}
	if !w.overflowSince.IsZero() {
		t.addRecovery("overflow event: catch-up since " + w.overflowSince.Format(time.RFC3339))
		if err := t.catchUp(ctx, w.overflowSince.Add(-catchUpMargin), false); err != nil {
			return err
		}
	}
	t.ap.written(w)
	t.st.windowWritten(w.commits, time.Now())
	return nil
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
			if err := retry.Sleep(ctx, time.Second); err != nil {
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
		if len(batch) >= t.tuning.BatchSize {
			return flush()
		}
		return nil
	}
	if !deletesOnly {
		if err := t.rd.modifiedSince(ctx, since, func(r salesforce.Record) error {
			t.st.received.Add(1)
			t.ap.noteRead(r)
			o, ok, err := t.ap.rowOp(ctx, r)
			if err != nil || !ok {
				return err // nothing to write: dead-lettered or skipped, and counted
			}
			return add(o, ok)
		}); err != nil {
			return err
		}
	}
	if err := t.rd.deletedSince(ctx, since, func(r salesforce.Record) error {
		t.st.received.Add(1)
		key, err := t.plan.Key(r.ID())
		if err != nil {
			return t.ap.deadLetterMapping(ctx, r.ID(), "delete", err)
		}
		return add(t.ap.deleteOp(r.ID(), key))
	}); err != nil {
		return err
	}
	return flush()
}

// retryLookups retries dead letters the agent may settle on its own: missing lookup targets, for a while
// after their first failure, and any a person asked to retry (code retry_requested, set through the control
// plane). It re-reads the records and writes them; those that fail again are dead-lettered anew.
func (t *table) retryLookups(ctx context.Context) error {
	start := time.Now().UTC()
	dls, err := t.dead.RetryableDeadLetters(ctx, t.cfg.SourceTable, CodeLookupMissing, start.Add(-lookupRetryWithin), 500)
	if err != nil {
		return err
	}
	asked, err := t.dead.RetryableDeadLetters(ctx, t.cfg.SourceTable, CodeRetryRequested, time.Time{}, 500)
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
		if err := t.dead.ResolveDeadLetter(ctx, t.cfg.SourceTable, id, start); err != nil {
			return err
		}
	}
	return nil
}
