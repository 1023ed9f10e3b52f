package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/retry"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/writer"
)

// table is one table mapping's pipeline: its reader (Salesforce side), applier (changes to row operations),
// the agent's writer (Dataverse side), its position tracker (checkpoint and intents) and its stats, each
// owning its own state. The table drives them through the phases: load, then stream, with re-syncs when the
// stream cannot resume. It holds no state of theirs; its own fields are set at start and never change, but
// for the bridge (handed from load to stream in the table's goroutine) and the loaded signal.
type table struct {
	cfg    mapping.TableConfig
	plan   *mapping.Plan
	log    *slog.Logger
	tuning Tuning
	dead   DeadLetterStore

	rd     *reader
	ap     *applier
	w      *writer.Writer
	target writer.Target // where w writes this table's rows
	pos    *positions
	st     *tableStats
	// windows is the connector's budget of change-window writes, shared by its tables (groupcommit.go).
	windows *windowBudget

	deps []*table // tables whose load must finish before this one loads (lookup targets)
	// lookupsTo names, per synced table this one's mapped lookups point at (itself included), the source
	// fields of those lookups; children is the other way round: per synced table whose lookups point at this
	// one, those fields. A merge here re-parents records there (merge.go).
	lookupsTo, children map[*table][]string
	bridge              *pump         // the load's bridge stream, handed over to stream() when the load ends (load.go)
	loaded              chan struct{} // closed when this table's first load finished
	once                sync.Once
}

// newMappingID identifies a plan's mapping: its "dest<-source" columns, the owner included, and their hash.
func newMappingID(plan *mapping.Plan) mappingID {
	var cols []string
	for _, c := range plan.Columns() {
		cols = append(cols, c.Destination+"<-"+strings.ToLower(c.Source))
	}
	if plan.OwnerBind != "" {
		// The owner is written like a column: another team means every row must be reassigned.
		cols = append(cols, ownerColumn+"<-"+strings.ToLower(plan.OwnerBind))
	}
	sort.Strings(cols)
	sum := sha256.Sum256([]byte(strings.Join(cols, ",")))
	return mappingID{columns: cols, hash: hex.EncodeToString(sum[:8])}
}

// addRecovery lists a recovery in status (and in the checkpoint, with its next save).
func (t *table) addRecovery(what string) { t.pos.addRecovery(what) }

func (t *table) status() TableStatus {
	cp := t.pos.snapshot()
	s := TableStatus{Table: t.cfg.SourceTable, Destination: t.plan.DestTable,
		LoadDone: max(cp.LoadDone, t.pos.loadWritten.Load()), LoadTotal: cp.LoadTotal, Recoveries: slices.Clone(cp.Recoveries)}
	t.st.fill(&s)
	if len(cp.ReplayID) > 0 {
		s.ReplayAt, s.Position = cp.UpdatedAt, salesforce.ReplayUint(cp.ReplayID)
	}
	s.Owed = owedList(cp)
	return s
}

// run drives the table until ctx ends: it resumes from the stored checkpoint and retries failures with
// backoff, never dropping changes.
func (t *table) run(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		err := t.begin(ctx)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		t.st.recordError(err)
		t.log.Error("cannot read or store the table's checkpoint; retrying", "err", err, "attempt", attempt)
		if err := retry.Sleep(ctx, retryDelay(attempt)); err != nil {
			return err
		}
	}
	defer t.pos.stopped(ctx)
	return t.loop(ctx)
}

// begin stores what the table owes before any work starts (positions.begin).
func (t *table) begin(ctx context.Context) error {
	if err := t.pos.begin(ctx); err != nil {
		return err
	}
	if t.pos.snapshot().Phase == PhaseStreaming {
		t.markLoaded()
	}
	return nil
}

// loop runs the table's phases until ctx ends, retrying failures with backoff.
func (t *table) loop(ctx context.Context) error {
	failures := 0
	for ctx.Err() == nil {
		var err error
		switch t.pos.snapshot().Phase {
		case PhaseStreaming:
			err = t.stream(ctx)
		default:
			err = t.load(ctx)
		}
		if err == nil || ctx.Err() != nil {
			if err == nil {
				t.st.worked(sideSalesforce) // a phase finished: both sides worked
				t.st.worked(sideDataverse)
			}
			failures = 0
			continue
		}
		failures++
		t.st.noteError(err)
		t.log.Error("table failed, retrying", "err", err, "attempt", failures)
		if errors.Is(err, salesforce.ErrAPILimit) || errors.Is(err, salesforce.ErrDeliveryLimit) {
			t.st.setPhase(t.pos.snapshot().Phase, "paused: "+err.Error())
		}
		if serr := retry.Sleep(ctx, retryDelay(failures)); serr != nil {
			break
		}
	}
	return ctx.Err()
}

// backoff spaces the retries of a failing table, write or start: 1 s, doubling, at most a minute.
var backoff = retry.Policy{Base: time.Second, Max: time.Minute}

// retryDelay is the wait after the given number of consecutive failures (from 1).
func retryDelay(failures int) time.Duration { return backoff.Delay(failures - 1) }

func (t *table) markLoaded() { t.once.Do(func() { close(t.loaded) }) }

// writeAll writes ops until Dataverse accepts them or ctx ends: table-level failures are retried with
// backoff (throttling is already handled inside the client), so nothing is ever dropped. It returns what
// the writes did, per change: written, dead-lettered (refused by Dataverse) or skipped.
func (t *table) writeAll(ctx context.Context, ops []writer.Op) (writer.Outcome, error) {
	for attempt := 1; ; attempt++ {
		out, err := t.w.Write(ctx, t.target, ops)
		if err == nil {
			if len(ops) > 0 {
				t.st.worked(sideDataverse)
			}
			t.st.tally(out)
			if len(out.Missing) > 0 {
				// Updates of rows that are not in Dataverse: write the whole record instead.
				missing := out.Missing
				out.Missing = nil
				more, err := t.refetch(ctx, missing)
				out.Add(more)
				return out, err
			}
			return out, nil
		}
		if ctx.Err() != nil {
			return writer.Outcome{}, ctx.Err()
		}
		var te *writer.TableError
		if !errors.As(err, &te) {
			return writer.Outcome{}, err
		}
		t.st.noteError(err)
		t.log.Warn("write failed, retrying", "err", err, "attempt", attempt)
		if err := retry.Sleep(ctx, retryDelay(attempt)); err != nil {
			return writer.Outcome{}, err
		}
	}
}

// refetch re-reads records from Salesforce (deleted ones included) and writes their current state: an
// upsert, or a delete for records deleted or gone. It is how gap events, undeletes, events that arrived
// during a load and updates of missing rows are settled. The outcome counts one change per record: written
// (Dataverse accepted it), dead-lettered (refused, or not convertible) or skipped (a deletion the table
// ignores).
func (t *table) refetch(ctx context.Context, ids []string) (writer.Outcome, error) {
	if len(ids) == 0 {
		return writer.Outcome{}, nil
	}
	var out writer.Outcome
	seen := map[string]bool{}
	var ops []writer.Op
	err := t.rd.reread(ctx, ids, func(r salesforce.Record) error {
		id := r.ID()
		seen[id] = true
		t.ap.noteRead(r)
		o, ok, err := t.ap.rowOp(ctx, r)
		if err != nil {
			return err
		}
		_, keyErr := t.plan.Key(id)
		switch {
		case ok:
			ops = append(ops, o)
		case deletedRecord(r) && keyErr == nil:
			out.Skipped++ // a deletion the table ignores
		default:
			out.Refused++ // the mapping cannot convert it
			out.RefusedIDs = append(out.RefusedIDs, id)
		}
		return nil
	})
	if err != nil {
		return out, err
	}
	for _, id := range ids {
		if seen[id] || seen[to18(id)] {
			continue
		}
		key, err := t.plan.Key(id)
		if err != nil {
			continue
		}
		// Not even in the recycle bin: hard-deleted.
		if o, ok := t.ap.deleteOp(to18(id), key); ok {
			ops = append(ops, o)
		} else {
			t.st.skipped.Add(1)
			out.Skipped++
		}
	}
	wrote, err := t.writeAll(ctx, ops)
	out.Add(wrote)
	return out, err
}

// heal re-reads records and writes what Salesforce holds now (the safeguards' repairs), counting them as
// received.
func (t *table) heal(ctx context.Context, ids []string) (writer.Outcome, error) {
	t.st.received.Add(int64(len(ids)))
	return t.refetch(ctx, ids)
}

// deleteRows deletes rows by key through the table's writer (the reconciliation's extra rows, which no
// Salesforce record stands for): a row already gone counts as deleted; one Dataverse refuses fails the call.
func (t *table) deleteRows(ctx context.Context, keys []string) error {
	ops := make([]writer.Op, len(keys))
	for i, k := range keys {
		ops[i] = writer.Op{Kind: writer.Delete, RecordID: k, Key: k, Changes: 1}
	}
	target := t.target
	target.OnRefused = func(_ context.Context, r writer.Refusal) error {
		return fmt.Errorf("deleting the extra row %s of %s: %w", r.Op.Key, t.plan.DestTable, r.Err)
	}
	_, err := t.w.Write(ctx, target, ops)
	return err
}
