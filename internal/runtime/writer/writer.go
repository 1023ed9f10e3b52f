// Package writer is the Dataverse side of crmsync: it writes row operations (upserts, updates, deletes)
// into one Dataverse table and says, per operation, what became of it. The agent's tables and the restore of
// a backup write through it; neither speaks to the Web API's write messages on its own.
//
// Contract:
//   - Write takes operations of one table, at most one per row, in any order, and returns only when each has
//     been settled: written (Dataverse acknowledged it), refused (Dataverse refused that row alone; the
//     target's OnRefused heard of it before Write returned), missing (an update found no row: the caller
//     decides what to write instead) or, when Write returns an error, none of them.
//   - An error that concerns the table rather than a row (missing privileges, refused credentials, throttling
//     or an outage outlasting the client's retries, a failure to record a refusal) is a *TableError: nothing
//     of the call may be counted as done, and the caller writes every operation again later. Writes are
//     keyed by the row's primary key, so writing an operation twice is harmless.
//   - Upserts and updates go as bulk messages (UpsertMultiple, UpdateMultiple) where the environment supports
//     them (asked once per table), $batch with continue-on-error otherwise; a bulk message fails as a whole,
//     so a refused one is bisected until the refused rows stand alone, and a lone row is sent as a single
//     request to learn its own error. Deletes always go through $batch, and a row already gone is deleted.
//   - Batching and concurrency are configuration: BatchSize operations per request, Concurrency requests of
//     one Write in flight at once. A Writer is safe for concurrent use and holds no state of its callers.
//
// What a later writer may add behind the same Write: several application users, each a Dataverse
// client, with each chunk of a Write sent by whichever client is free; and group commit, where the agent
// hands a window to the writer as soon as one is free rather than when its flush timer fires.
package writer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
)

// Kind is what an operation does to its row.
type Kind int

const (
	// Upsert writes the whole row: created when missing, updated otherwise.
	Upsert Kind = iota
	// Update writes some columns of a row that must exist (a missing row is reported, not created).
	Update
	// Delete deletes the row (a row already gone counts as deleted).
	Delete
)

func (k Kind) String() string { return [...]string{"upsert", "update", "delete"}[k] }

// Op is one write of one row.
type Op struct {
	Kind Kind
	// RecordID names the row to its caller (a Salesforce Id for the agent, the key for a restore).
	RecordID string
	// Key is the row's primary key (a GUID).
	Key string
	// Body is the row as JSON object members without braces, primary key excluded (nil for deletes).
	Body []byte
	// Changes is how many of the caller's changes the operation stands for (coalesced events): the outcome
	// counts in changes.
	Changes int64
}

// Refusal is an operation Dataverse refused on its own, with its error.
type Refusal struct {
	Op  Op
	Err error
}

// Target is the table a Write goes to.
type Target struct {
	Table     string // logical name
	EntitySet string
	PrimaryID string // the primary key column
	// OnRefused records an operation Dataverse refused (the agent's dead-letter store, a restore's report).
	// An error from it fails the Write as a *TableError.
	OnRefused func(ctx context.Context, r Refusal) error
}

// Outcome tallies what a Write did, in changes (Op.Changes).
type Outcome struct {
	Written, Refused, Skipped int64
	// Missing are the RecordIDs of updates that found no row; Skipped counts all but one change of each.
	Missing []string
	// RefusedIDs are the RecordIDs refused.
	RefusedIDs []string
}

// Add adds p to o.
func (o *Outcome) Add(p Outcome) {
	o.Written += p.Written
	o.Refused += p.Refused
	o.Skipped += p.Skipped
	o.Missing = append(o.Missing, p.Missing...)
	o.RefusedIDs = append(o.RefusedIDs, p.RefusedIDs...)
}

// TableError is a failure that concerns the table, not a row: the caller keeps every operation of the
// Write unacknowledged and tries again later.
type TableError struct{ Err error }

func (e *TableError) Error() string { return e.Err.Error() }
func (e *TableError) Unwrap() error { return e.Err }

// TableLevel reports whether a Dataverse error concerns the whole table (missing privileges, auth,
// throttling or an outage outlasting the client's retries, the network) rather than one row.
func TableLevel(err error) bool {
	var ae *dataverse.APIError
	if !errors.As(err, &ae) {
		return true // network, context, token: nothing about one row
	}
	switch {
	case ae.Status == http.StatusForbidden, ae.Status == http.StatusUnauthorized, ae.Status == http.StatusTooManyRequests, ae.Status >= 500:
		return true
	}
	return false
}

// Config configures a Writer.
type Config struct {
	Client *dataverse.Client
	// BatchSize is how many operations go in one request (at most dataverse.MaxBatchOps).
	BatchSize int
	// Concurrency is how many requests of one Write are in flight at once (at least 1).
	Concurrency int
}

// Writer writes operations to Dataverse (see the package comment).
type Writer struct {
	dv          *dataverse.Client
	batchSize   int
	concurrency int
}

// New returns a Writer.
func New(cfg Config) *Writer {
	bs := cfg.BatchSize
	if bs <= 0 || bs > dataverse.MaxBatchOps {
		bs = dataverse.MaxBatchOps
	}
	return &Writer{dv: cfg.Client, batchSize: bs, concurrency: max(1, cfg.Concurrency)}
}

// Write settles ops on t (see the package comment).
func (w *Writer) Write(ctx context.Context, t Target, ops []Op) (Outcome, error) {
	var out Outcome
	if len(ops) == 0 {
		return out, nil
	}
	// The client remembers the answer; a failed probe is asked again next time.
	bulk, err := w.dv.SupportsBulk(ctx, dataverse.UpsertMultiple, t.Table)
	if err != nil {
		return out, &TableError{err}
	}
	chunks := w.chunks(ops)
	results := make([]Outcome, len(chunks))
	errs := make([]error, len(chunks))
	sem := make(chan struct{}, w.concurrency)
	var wg sync.WaitGroup
	for i, c := range chunks {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return out, ctx.Err()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i], errs[i] = w.writeChunk(ctx, t, bulk, c)
		}()
	}
	wg.Wait()
	for i := range chunks {
		out.Add(results[i])
	}
	return out, errors.Join(errs...)
}

// chunks groups ops by kind (upserts, updates, deletes) in pieces of at most batchSize. Ops all of one kind
// (a load's batch) are cut as they are, without copying.
func (w *Writer) chunks(ops []Op) [][]Op {
	var count [3]int
	for _, o := range ops {
		count[o.Kind]++
	}
	var byKind [3][]Op
	if count[ops[0].Kind] == len(ops) {
		byKind[ops[0].Kind] = ops
	} else {
		for k, n := range count {
			byKind[k] = make([]Op, 0, n)
		}
		for _, o := range ops {
			byKind[o.Kind] = append(byKind[o.Kind], o)
		}
	}
	out := make([][]Op, 0, (len(ops)+w.batchSize-1)/w.batchSize+2)
	for _, group := range byKind {
		for i := 0; i < len(group); i += w.batchSize {
			out = append(out, group[i:min(i+w.batchSize, len(group))])
		}
	}
	return out
}

// writeChunk writes up to batchSize ops of one kind.
func (w *Writer) writeChunk(ctx context.Context, t Target, bulk bool, ops []Op) (Outcome, error) {
	kind := ops[0].Kind
	if kind == Delete || !bulk {
		return w.batch(ctx, t, kind, ops)
	}
	message := dataverse.UpsertMultiple
	if kind == Update {
		message = dataverse.UpdateMultiple
	}
	return w.bulkBisect(ctx, t, message, ops)
}

func (w *Writer) bulkBisect(ctx context.Context, t Target, message string, ops []Op) (Outcome, error) {
	targets := make([]dataverse.Target, len(ops))
	for i, o := range ops {
		targets[i] = dataverse.Target{Key: o.Key, Members: o.Body} // bulk targets carry their key in the body
	}
	err := w.dv.BulkTargets(ctx, message, t.Table, t.EntitySet, t.PrimaryID, targets)
	if err == nil {
		var out Outcome
		for _, o := range ops {
			out.Written += o.Changes
		}
		return out, nil
	}
	if TableLevel(err) {
		return Outcome{}, &TableError{fmt.Errorf("writing %d rows to %s: %w", len(ops), t.Table, err)}
	}
	if len(ops) == 1 {
		return w.single(ctx, t, ops[0])
	}
	half := len(ops) / 2
	left, err := w.bulkBisect(ctx, t, message, ops[:half])
	if err != nil {
		return left, err
	}
	right, err := w.bulkBisect(ctx, t, message, ops[half:])
	left.Add(right)
	return left, err
}

// single sends one operation alone, to learn its own error, and settles it.
func (w *Writer) single(ctx context.Context, t Target, o Op) (Outcome, error) {
	var err error
	switch o.Kind {
	case Upsert:
		err = w.dv.PatchMembers(ctx, t.EntitySet, o.Key, o.Body, dataverse.Upsert)
	case Update:
		err = w.dv.PatchMembers(ctx, t.EntitySet, o.Key, o.Body, dataverse.UpdateOnly)
	case Delete:
		err = w.dv.Delete(ctx, t.EntitySet, o.Key)
	}
	return w.settle(ctx, t, o, err)
}

// settle turns one operation's result into an outcome.
func (w *Writer) settle(ctx context.Context, t Target, o Op, err error) (Outcome, error) {
	switch {
	case err == nil:
		return Outcome{Written: o.Changes}, nil
	case o.Kind == Delete && dataverse.IsNotFound(err):
		return Outcome{Written: o.Changes}, nil // already gone: the delete is done
	case o.Kind == Update && dataverse.IsNotFound(err) && rowMissing(t, err, o):
		return Outcome{Missing: []string{o.RecordID}, Skipped: o.Changes - 1}, nil
	case TableLevel(err):
		return Outcome{}, &TableError{fmt.Errorf("writing %s %s: %w", t.Table, o.RecordID, err)}
	}
	if t.OnRefused != nil {
		if rerr := t.OnRefused(ctx, Refusal{Op: o, Err: err}); rerr != nil {
			return Outcome{}, &TableError{rerr}
		}
	}
	return Outcome{Refused: o.Changes, RefusedIDs: []string{o.RecordID}}, nil
}

// rowMissing tells "the row to update does not exist" from "a lookup target does not exist": Dataverse names
// the entity and id that was not found.
func rowMissing(t Target, err error, o Op) bool {
	var ae *dataverse.APIError
	if !errors.As(err, &ae) {
		return false
	}
	msg := strings.ToLower(ae.Message)
	return strings.Contains(msg, strings.ToLower(o.Key)) && strings.HasPrefix(msg, t.Table+" ")
}

// batch writes ops of one kind through $batch with continue-on-error, one change set per row.
func (w *Writer) batch(ctx context.Context, t Target, kind Kind, ops []Op) (Outcome, error) {
	bops := make([]dataverse.BatchOp, len(ops))
	for i, o := range ops {
		path := t.EntitySet + "(" + o.Key + ")"
		switch kind {
		case Upsert:
			bops[i] = dataverse.BatchOp{Method: http.MethodPatch, Path: path, Members: o.Body}
		case Update:
			bops[i] = dataverse.BatchOp{Method: http.MethodPatch, Path: path, Members: o.Body, Condition: dataverse.UpdateOnly}
		case Delete:
			bops[i] = dataverse.BatchOp{Method: http.MethodDelete, Path: path}
		}
	}
	res, err := w.dv.Batch(ctx, bops)
	if err != nil {
		if TableLevel(err) {
			return Outcome{}, &TableError{fmt.Errorf("$batch of %d %s ops on %s: %w", len(ops), kind, t.Table, err)}
		}
		return Outcome{}, &TableError{err}
	}
	var out Outcome
	for i, r := range res {
		var rerr error
		if r.Err != nil {
			rerr = r.Err
		}
		o, err := w.settle(ctx, t, ops[i], rerr)
		if err != nil {
			return out, err
		}
		out.Add(o)
	}
	return out, nil
}
