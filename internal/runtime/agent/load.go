package agent

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/writer"
)

// catchUpMargin widens incremental catch-up windows to cover clock differences between Salesforce's
// servers and the commit of in-flight transactions.
const catchUpMargin = 2 * time.Minute

// load reads the whole table and writes it: the initial load, or a re-sync. It opens the change stream
// first (the bridge: a subscription that asks for one event and bridges the load and the stream), resumes a
// Bulk job from its last fully written page, and ends by moving the table to streaming: the still-open
// bridge is handed over to the stream, so every change committed since before the load's query is applied
// in order; without a bridge (a resumed load, a lost stream) the stream catches up from the load's start
// time instead.
func (t *table) load(ctx context.Context) error {
	cp := t.pos.snapshot()
	t.st.setPhase(cp.Phase, cp.LoadReason)

	// A bridge is only worth something if its subscription starts before the load's query: a resumed job
	// was queried by an earlier run, so its load relies on the catch-up instead.
	var bridge *pump
	if len(cp.ReplayID) == 0 && cp.CatchUpSince.IsZero() && cp.LoadJobID == "" {
		bridge = t.openBridge(ctx)
	}
	handedOver := false
	defer func() {
		if bridge != nil && !handedOver {
			bridge.stop()
		}
	}()

	// The Bulk job runs while the tables this one points at load; reading and writing its rows wait for
	// them, so lookups find their targets. (Reading ahead meanwhile, up to the usual bounded queue, was
	// measured: it held a second table's queue in memory at once, about 7 MiB more at the peak, for a gain
	// lost in the noise.)
	job, err := t.loadJob(ctx)
	if err != nil {
		return err
	}
	if err := t.waitForDeps(ctx); err != nil {
		return err
	}
	if err := t.loadPages(ctx, job); err != nil {
		return err
	}
	if err := t.rd.dropJob(ctx, job.ID); err != nil {
		t.log.Debug("deleting the finished bulk job", "job", job.ID, "err", err)
	}

	live := bridge != nil && bridge.alive()
	if err := t.pos.loadFinished(ctx, live); err != nil {
		return err
	}
	if live {
		t.bridge, handedOver = bridge, true
	}
	t.markLoaded()
	return nil
}

// waitForDeps waits until every table this one points at has loaded, saying so in the table's status.
func (t *table) waitForDeps(ctx context.Context) error {
	if len(t.deps) == 0 {
		return nil
	}
	cp := t.pos.snapshot()
	t.st.setPhase(cp.Phase, "waiting for "+depNames(t.deps)+" to load first (lookups point at them)")
	for _, d := range t.deps {
		select {
		case <-d.loaded:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	t.st.setPhase(cp.Phase, cp.LoadReason)
	return nil
}

func depNames(ts []*table) string {
	var out []string
	for _, d := range ts {
		out = append(out, d.cfg.SourceTable)
	}
	return strings.Join(out, ", ")
}

// openBridge subscribes at LATEST before the load starts, asking for one event; the first position the
// stream reveals is stored (positions.bridgeBatch). The stream stays open, buffered in a pump, for load to
// hand over to stream. Without a subscription the load goes on, and the stream catches up afterwards.
func (t *table) openBridge(ctx context.Context) *pump {
	t.pos.bridgeOpened()
	p, err := t.rd.subscribe(ctx, nil, 1, func(b streamBatch) {
		if err := t.pos.bridgeBatch(ctx, b); err != nil && ctx.Err() == nil {
			t.log.Warn("storing the stream position revealed during the load", "err", err)
		}
	})
	if err != nil {
		t.log.Warn("could not open the change stream before the load; will catch up afterwards", "err", err)
		return nil
	}
	return p
}

// loadJob resumes the stored Bulk job or starts one.
func (t *table) loadJob(ctx context.Context) (*salesforce.BulkJob, error) {
	cp := t.pos.snapshot()
	if cp.LoadJobID != "" {
		job, err := t.rd.waitJob(ctx, cp.LoadJobID)
		if err == nil {
			t.pos.loadResumed()
			return job, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		t.log.Warn("the stored bulk job cannot be resumed; starting the load over", "job", cp.LoadJobID, "err", err)
	}
	job, err := t.rd.startJob(ctx)
	if err != nil {
		return nil, err
	}
	started, err := job.Created()
	if err != nil {
		started = time.Now().UTC()
	}
	if err := t.pos.loadStarted(ctx, job.ID, started); err != nil {
		return nil, err
	}
	t.log.Info("load started", "job", job.ID)
	done, err := t.rd.waitJob(ctx, job.ID)
	if err != nil {
		return nil, err
	}
	// The completed job knows how many rows it holds: the load's total, for progress.
	if err := t.pos.loadCounted(ctx, done.NumberRecordsProcessed); err != nil {
		return nil, err
	}
	return done, nil
}

// loadBatch is up to BatchSize rows of one page, handed to the writers.
type loadBatch struct {
	seq uint64 // its place in acks
	ops []writer.Op
}

// pageEnd is the position after a page: where the load resumes, and how many rows the page held.
type pageEnd struct {
	next string
	rows int64
}

// loadPages streams the job's result pages into batches written by a pool of writers. A page's locator is
// stored only when it and every page before it are fully written (acks: the highest contiguous acknowledged
// position), and reading blocks while twice as many batches as writers are unacknowledged, so memory stays
// flat however large the table.
func (t *table) loadPages(ctx context.Context, job *salesforce.BulkJob) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	writers := t.tuning.WriteConcurrency
	tracker := newAcks(2*writers, func(p pageEnd) error {
		err := t.pos.pageWritten(context.WithoutCancel(ctx), p.next, p.rows)
		if err != nil {
			cancel(err)
		}
		return err
	})
	batches := make(chan loadBatch, 2*writers)
	var wg sync.WaitGroup
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.writeLoadBatches(ctx, cancel, batches, tracker)
		}()
	}
	readErr := t.readPages(ctx, job.ID, batches, tracker)
	wg.Wait()
	if err := tracker.failed(); err != nil {
		return err
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause
	}
	if readErr != nil {
		return readErr
	}
	return ctx.Err()
}

// writeLoadBatches writes batches until there are no more, acknowledging each; the first failure cancels
// the load (it resumes from the stored page).
func (t *table) writeLoadBatches(ctx context.Context, cancel context.CancelCauseFunc, batches <-chan loadBatch, tracker *acks[pageEnd]) {
	for b := range batches {
		if _, err := t.writeAll(ctx, b.ops); err != nil {
			// Its rows were counted as received but not written: the page is read again.
			t.st.received.Add(-int64(len(b.ops)))
			cancel(err)
			continue
		}
		t.pos.rowsWritten(len(b.ops))
		if err := tracker.resolve(b.seq); err != nil {
			cancel(err)
		}
	}
}

// readPages reads the job's pages from the stored locator into batches, and closes batches.
func (t *table) readPages(ctx context.Context, jobID string, batches chan<- loadBatch, tracker *acks[pageEnd]) error {
	defer close(batches)
	locator := t.pos.snapshot().LoadLocator
	for {
		next, err := t.readPage(ctx, jobID, locator, batches, tracker)
		if err != nil || next == "" {
			return err
		}
		locator = next
	}
}

// readPage reads one page into batches and marks its end; it returns the next page's locator ("" after the
// last page).
func (t *table) readPage(ctx context.Context, jobID, locator string, batches chan<- loadBatch, tracker *acks[pageEnd]) (string, error) {
	batchSize := t.tuning.BatchSize
	cur := make([]writer.Op, 0, batchSize)
	send := func() error {
		if len(cur) == 0 {
			return nil
		}
		seq, err := tracker.track(ctx)
		if err == nil {
			select {
			case batches <- loadBatch{seq: seq, ops: cur}:
				cur = make([]writer.Op, 0, batchSize)
				return nil
			case <-ctx.Done():
			}
		}
		t.st.received.Add(-int64(len(cur))) // never written: the page is read again
		cur = cur[:0]
		return context.Cause(ctx)
	}
	var cols *bulkColumns // of this page's header
	res, err := t.rd.pageRows(ctx, jobID, locator, func(header, row []string) error {
		if cols == nil {
			cols = t.ap.bulkColumns(header)
		}
		t.st.received.Add(1)
		o, ok, err := t.ap.bulkRowOp(ctx, cols, row)
		if err != nil {
			t.st.received.Add(-1) // neither written nor dead-lettered: the page is read again
			return err
		}
		if !ok {
			return nil // dead-lettered or skipped, and counted
		}
		cur = append(cur, o)
		if len(cur) >= batchSize {
			return send()
		}
		return nil
	})
	if err != nil {
		t.st.received.Add(-int64(len(cur))) // read but not sent to be written: the page is read again
		return "", err
	}
	t.st.worked(sideSalesforce)
	if err := send(); err != nil {
		return "", err
	}
	if err := tracker.position(pageEnd{next: res.Next, rows: int64(res.Records)}); err != nil {
		return "", err
	}
	return res.Next, nil
}
