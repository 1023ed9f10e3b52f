package agent

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// positions is a table's position tracker: the only code that stores its checkpoint, and with it the durable
// intents (intents.go). The rest of the pipeline tells it what happened (a window was written, a load page
// acknowledged, a load finished, the stream refused the stored replay ID, a reconciliation finished) and it
// decides what is stored and when. It never reads Salesforce or writes Dataverse.
//
// Contract:
//   - A position is stored only after every change before it was acknowledged by Dataverse: callers report a
//     window or a page once it is written, never before (a load's pages through acks, which keeps the highest
//     contiguous acknowledged one).
//   - Stores are serialised (saveMu), so the checkpoint last stored is always the newest: two stores racing
//     (the stream's first position arriving while a load page is acknowledged) cannot put an older one last.
//   - mu guards the checkpoint in memory; status and the safeguards read a copy of it (snapshot) without
//     waiting for a store in flight.
//   - The checkpoint in memory is never behind what was done, and may be ahead of the stored one (a position
//     kept between stores, a store cut by the ending context): stopped stores it when the table ends, on a
//     context of its own, so a shutdown never loses a position already reached.
type positions struct {
	table   string
	mapping mappingID
	store   CheckpointStore
	log     *slog.Logger

	// saveMu serialises stores; bridgePending is guarded by it.
	saveMu sync.Mutex
	// bridgePending is true while the load's bridge stream may still fix the stored position (load.go).
	bridgePending bool

	mu sync.Mutex
	cp Checkpoint
	// positionStoredAt is when the stream's position was last stored: written windows move it at most every
	// windowStoreEvery, keepalives every idleStoreEvery.
	positionStoredAt time.Time
	// changes counts the changes made to the checkpoint in memory; stored is the count the last store
	// covered: they differ while memory holds something not stored.
	changes, stored uint64

	// loadWritten counts rows written by the running load, for progress between page checkpoints.
	loadWritten atomic.Int64
}

// How often the stream's position is stored: a restart re-applies at most this much, harmlessly (writes
// are idempotent), and the store is spared a write per window.
const (
	windowStoreEvery = 500 * time.Millisecond
	idleStoreEvery   = 5 * time.Second
)

// mappingID identifies the mapping a table runs with: its "dest<-source" columns and their hash.
type mappingID struct {
	columns []string
	hash    string
}

func newPositions(table string, m mappingID, store CheckpointStore, log *slog.Logger) *positions {
	return &positions{table: table, mapping: m, store: store, log: log}
}

// begin loads the stored checkpoint, merges what the table owes with what the current mapping needs
// (planCheckpoint), and stores the result before any work starts.
func (p *positions) begin(ctx context.Context) error {
	stored, err := p.store.LoadCheckpoint(ctx, p.table)
	if err != nil {
		return fmt.Errorf("loading the checkpoint of %s: %w", p.table, err)
	}
	c, notes := p.planCheckpoint(stored, time.Now().UTC())
	p.mu.Lock()
	p.cp = c
	p.mu.Unlock()
	for _, n := range notes {
		p.addRecovery(n)
	}
	// What the table owes is stored before any of it starts.
	if err := p.save(ctx, func(*Checkpoint) {}); err != nil {
		return fmt.Errorf("storing the checkpoint of %s: %w", p.table, err)
	}
	return nil
}

// snapshot returns a copy of the checkpoint in memory.
func (p *positions) snapshot() Checkpoint {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cp
}

// save applies mutate and stores the result. It is the only caller of SaveCheckpoint.
func (p *positions) save(ctx context.Context, mutate func(cp *Checkpoint)) error {
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	return p.saveLocked(ctx, mutate)
}

// saveLocked is save for a caller holding saveMu.
func (p *positions) saveLocked(ctx context.Context, mutate func(cp *Checkpoint)) error {
	p.mu.Lock()
	mutate(&p.cp)
	p.cp.UpdatedAt = time.Now().UTC()
	cp := p.cp
	cp.ReplayID = slices.Clone(cp.ReplayID)
	cp.RefetchIDs = slices.Clone(cp.RefetchIDs)
	cp.Recoveries = slices.Clone(cp.Recoveries)
	cp.Intents = slices.Clone(cp.Intents)
	p.changes++
	covers := p.changes
	p.mu.Unlock()
	if err := p.store.SaveCheckpoint(ctx, cp); err != nil {
		return err
	}
	p.mu.Lock()
	p.stored = covers // stores are serialised: this one is the newest
	p.mu.Unlock()
	return nil
}

// stopped stores the checkpoint in memory if the last store did not cover it, on a context of its own (ctx,
// the table's, has ended): a store cut by the shutdown, or a position kept in memory since the last store.
func (p *positions) stopped(ctx context.Context) {
	p.mu.Lock()
	unsaved := p.changes != p.stored
	p.mu.Unlock()
	if !unsaved {
		return
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := p.flush(sctx); err != nil {
		p.log.Error("storing the checkpoint on shutdown", "err", err)
	}
}

// addRecovery lists a recovery. It is stored with the checkpoint's next save, so a restarted agent still
// reports it.
func (p *positions) addRecovery(what string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cp.Recoveries = append(slices.Clone(p.cp.Recoveries), time.Now().UTC().Format(time.RFC3339)+" "+what)
	p.changes++
	if len(p.cp.Recoveries) > maxRecoveries {
		p.cp.Recoveries = p.cp.Recoveries[len(p.cp.Recoveries)-maxRecoveries:]
	}
	p.log.Warn("recovery", "what", what)
}

// maxRecoveries is how many recent recoveries a table lists.
const maxRecoveries = 20

// --- The change stream's positions.

// streamOpened starts the stream's storing rhythm afresh: its first written window is stored at once.
func (p *positions) streamOpened() {
	p.mu.Lock()
	p.positionStoredAt = time.Time{}
	p.mu.Unlock()
}

// windowWritten records that every change up to last (a replay ID) is written. The position is stored when
// force is set (draining, before a stream error is handled), windowStoreEvery after the last store, or at
// once while a catch-up instruction is pending (the first known position replaces it); otherwise it is kept
// in memory and stored with the next save.
func (p *positions) windowWritten(ctx context.Context, last []byte, force bool) error {
	p.mu.Lock()
	if !force && time.Since(p.positionStoredAt) < windowStoreEvery && p.cp.CatchUpSince.IsZero() {
		p.cp.ReplayID = last
		p.changes++
		p.mu.Unlock()
		return nil
	}
	p.mu.Unlock()
	return p.storePosition(ctx, last)
}

// idle records a keepalive's latest replay ID while nothing is pending: it is stored idleStoreEvery after the
// last store, so the stored position stays within the retention, or at once when no position is known yet
// (streaming from the tip).
func (p *positions) idle(ctx context.Context, latest []byte) error {
	p.mu.Lock()
	due := time.Since(p.positionStoredAt) >= idleStoreEvery || len(p.cp.ReplayID) == 0
	p.mu.Unlock()
	if !due {
		return nil
	}
	return p.storePosition(ctx, latest)
}

func (p *positions) storePosition(ctx context.Context, pos []byte) error {
	p.mu.Lock()
	p.positionStoredAt = time.Now()
	p.mu.Unlock()
	return p.save(ctx, func(cp *Checkpoint) { cp.ReplayID, cp.CatchUpSince = pos, time.Time{} })
}

// flush stores the checkpoint as it is in memory (a position kept since the last store).
func (p *positions) flush(ctx context.Context) error { return p.save(ctx, func(*Checkpoint) {}) }

// replayRejected records that the stream refused the stored replay ID (expired or invalid): the table owes a
// full re-sync, which covers a pending catch-up and the records to re-read; what else is owed stays.
func (p *positions) replayRejected(ctx context.Context) error {
	return p.save(ctx, func(cp *Checkpoint) {
		deletesSince := cp.UpdatedAt.Add(-catchUpMargin)
		if !cp.DeletesSince.IsZero() && cp.DeletesSince.Before(deletesSince) {
			deletesSince = cp.DeletesSince
		}
		const reason = "replay ID expired or rejected: full re-sync"
		*cp = Checkpoint{Table: cp.Table, Phase: PhaseResync, LoadReason: reason, DeletesSince: deletesSince,
			MappingHash: cp.MappingHash, MappingColumns: cp.MappingColumns, Recoveries: cp.Recoveries, LoadMappingHash: p.mapping.hash,
			Intents: mergeLoad(cp.Intents, api.Intent{Kind: api.IntentLoad, Reason: reason, At: time.Now().UTC()}), IntentSeq: cp.IntentSeq,
			OutOfBandSince: cp.OutOfBandSince, LastReconcile: cp.LastReconcile}
	})
}

// positionLost records that the stream's position is lost: the table owes a catch-up since it was stored.
func (p *positions) positionLost(ctx context.Context) error {
	return p.save(ctx, func(cp *Checkpoint) {
		cp.CatchUpSince = cp.UpdatedAt.Add(-catchUpMargin)
		cp.ReplayID = nil
	})
}

// rereadsDone, catchUpDone and deletesDone record that owed work left by a load or a lost position is done.
func (p *positions) rereadsDone(ctx context.Context) error {
	return p.save(ctx, func(cp *Checkpoint) { cp.RefetchIDs = nil })
}

func (p *positions) catchUpDone(ctx context.Context) error {
	return p.save(ctx, func(cp *Checkpoint) { cp.CatchUpSince = time.Time{} })
}

func (p *positions) deletesDone(ctx context.Context) error {
	return p.save(ctx, func(cp *Checkpoint) { cp.DeletesSince = time.Time{} })
}

// --- The load's positions.

// loadStarted records a new Bulk job: the load starts over from its first page.
func (p *positions) loadStarted(ctx context.Context, jobID string, startedAt time.Time) error {
	err := p.save(ctx, func(cp *Checkpoint) {
		cp.LoadJobID, cp.LoadLocator, cp.LoadDone, cp.LoadTotal, cp.LoadStartedAt = jobID, "", 0, 0, startedAt
		cp.LoadMappingHash = p.mapping.hash
	})
	p.loadWritten.Store(0)
	return err
}

// loadResumed starts the progress of a resumed load where its stored pages end.
func (p *positions) loadResumed() { p.loadWritten.Store(p.snapshot().LoadDone) }

// loadCounted records how many rows the load's job holds.
func (p *positions) loadCounted(ctx context.Context, total int64) error {
	return p.save(ctx, func(cp *Checkpoint) { cp.LoadTotal = total })
}

// rowsWritten counts rows the running load wrote, for progress between page checkpoints.
func (p *positions) rowsWritten(n int) { p.loadWritten.Add(int64(n)) }

// pageWritten records that a page and every page before it are written: the load resumes at next.
func (p *positions) pageWritten(ctx context.Context, next string, rows int64) error {
	return p.save(ctx, func(cp *Checkpoint) { cp.LoadLocator = next; cp.LoadDone += rows })
}

// bridgeOpened notes that the load's bridge stream is open: its first batch fixes the stored position.
func (p *positions) bridgeOpened() {
	p.saveMu.Lock()
	p.bridgePending = true
	p.saveMu.Unlock()
}

// bridgeBatch stores the first position the bridge stream reveals while the table still loads: a
// keepalive's latest replay ID, or the replay ID of the first events with their records to re-read (so a
// restart that resumes the load and streams after those events misses nothing). Later batches are the
// stream's business once the load hands the bridge over.
func (p *positions) bridgeBatch(ctx context.Context, b streamBatch) error {
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	if !p.bridgePending {
		return nil
	}
	p.bridgePending = false
	return p.saveLocked(ctx, func(cp *Checkpoint) {
		if len(b.changes) == 0 {
			cp.ReplayID = b.latest
			return
		}
		for _, c := range b.changes {
			cp.ReplayID = c.position
			if c.op == changeOverflow {
				since := c.commit.Add(-catchUpMargin)
				if cp.CatchUpSince.IsZero() || since.Before(cp.CatchUpSince) {
					cp.CatchUpSince = since
				}
				continue
			}
			cp.RefetchIDs = append(cp.RefetchIDs, c.ids...)
		}
	})
}

// loadFinished records a finished load: the table streams, and owes no load any more. Without a live bridge
// (or before it revealed a position) the stream catches up from the load's start: the bridge's position
// lives only in this process.
func (p *positions) loadFinished(ctx context.Context, liveBridge bool) error {
	p.saveMu.Lock()
	defer p.saveMu.Unlock()
	p.bridgePending = false // from now on the stream stores positions
	return p.saveLocked(ctx, func(cp *Checkpoint) {
		if len(cp.ReplayID) == 0 || !liveBridge {
			since := cp.LoadStartedAt.Add(-catchUpMargin)
			if cp.CatchUpSince.IsZero() || since.Before(cp.CatchUpSince) {
				cp.CatchUpSince = since
			}
		}
		cp.Phase, cp.LoadReason = PhaseStreaming, ""
		cp.LoadJobID, cp.LoadLocator, cp.LoadMappingHash = "", "", ""
		cp.MappingHash, cp.MappingColumns = p.mapping.hash, p.mapping.columns
		// Every column of the current mapping is loaded: the owed loads are done.
		cp.Intents = withoutIntents(cp.Intents, api.IntentLoad)
	})
}

// --- The safeguards' results.

// reconciled keeps a reconciliation's result (its FinishedAt schedules the next one across restarts).
func (p *positions) reconciled(ctx context.Context, res api.ReconcileResult) error {
	return p.save(ctx, func(cp *Checkpoint) { cp.LastReconcile = &res })
}

// owedReconcileDone removes the owed reconciliation: one finished.
func (p *positions) owedReconcileDone(ctx context.Context) error {
	return p.save(ctx, func(cp *Checkpoint) { cp.Intents = withoutIntents(cp.Intents, api.IntentReconcile) })
}

// outOfBandChecked moves the out-of-band detector's window to newest.
func (p *positions) outOfBandChecked(ctx context.Context, newest time.Time) error {
	if !newest.After(p.snapshot().OutOfBandSince) {
		return nil
	}
	return p.save(ctx, func(cp *Checkpoint) {
		if newest.After(cp.OutOfBandSince) {
			cp.OutOfBandSince = newest
		}
	})
}
