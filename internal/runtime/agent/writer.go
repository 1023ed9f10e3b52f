package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
)

type opKind int

const (
	opUpsert opKind = iota // full row, create or update
	opUpdate               // changed columns of an existing row
	opDelete
)

func (k opKind) String() string { return [...]string{"upsert", "update", "delete"}[k] }

// op is one write for one record; changes is how many received changes it stands for (coalesced events).
type op struct {
	kind     opKind
	recordID string
	key      string
	// body is the row as JSON object members without braces, primary key excluded (nil for deletes).
	body    []byte
	changes int64
}

// outcome tallies what a write did, per received change.
type outcome struct {
	written, deadLettered, skipped int64
	// missing are records whose update found no row: the caller re-reads them from Salesforce and upserts.
	missing []string
	// refused are the records dead-lettered (Salesforce Ids).
	refused []string
}

func (o *outcome) add(p outcome) {
	o.written += p.written
	o.deadLettered += p.deadLettered
	o.skipped += p.skipped
	o.missing = append(o.missing, p.missing...)
	o.refused = append(o.refused, p.refused...)
}

// errTableLevel marks failures that concern the table, not a record (missing privileges, auth, an outage
// outlasting the retries): the caller keeps the changes unacknowledged and tries again later.
type tableError struct{ err error }

func (e *tableError) Error() string { return e.err.Error() }
func (e *tableError) Unwrap() error { return e.err }

func isTableLevel(err error) bool {
	var ae *dataverse.APIError
	if !errors.As(err, &ae) {
		return true // network, context, token: nothing about one record
	}
	switch {
	case ae.Status == http.StatusForbidden, ae.Status == http.StatusUnauthorized, ae.Status == http.StatusTooManyRequests, ae.Status >= 500:
		return true
	}
	return false
}

// writer writes ops of one table to Dataverse: bulk messages where the environment supports them (probed
// once), $batch otherwise, bisecting a failed bulk message to find the refused records and retrying a lone
// record with a single request to learn its own error.
type writer struct {
	dv          *dataverse.Client
	plan        *mapping.Plan
	dead        DeadLetterStore
	batchSize   int
	concurrency int
	now         func() time.Time

	probeOnce sync.Once
	bulk      bool
	probeErr  error
}

func (w *writer) probe(ctx context.Context) error {
	w.probeOnce.Do(func() {
		w.bulk, w.probeErr = w.dv.SupportsBulk(ctx, dataverse.UpsertMultiple, w.plan.DestTable)
	})
	if w.probeErr != nil {
		// Probe again next time rather than remembering a transient failure.
		err := w.probeErr
		w.probeOnce = sync.Once{}
		return err
	}
	return nil
}

// write applies ops (at most one per record, in any order) and tallies the outcome. A table-level failure
// returns an error and the caller must retry all ops; records refused on their own are dead-lettered before
// write returns.
func (w *writer) write(ctx context.Context, ops []op) (outcome, error) {
	var out outcome
	if len(ops) == 0 {
		return out, nil
	}
	if err := w.probe(ctx); err != nil {
		return out, &tableError{err}
	}
	var upserts, updates, deletes []op
	for _, o := range ops {
		switch o.kind {
		case opUpsert:
			upserts = append(upserts, o)
		case opUpdate:
			updates = append(updates, o)
		case opDelete:
			deletes = append(deletes, o)
		}
	}
	var chunks [][]op
	var kinds []opKind
	for _, group := range []struct {
		kind opKind
		ops  []op
	}{{opUpsert, upserts}, {opUpdate, updates}, {opDelete, deletes}} {
		for i := 0; i < len(group.ops); i += w.batchSize {
			chunks = append(chunks, group.ops[i:min(i+w.batchSize, len(group.ops))])
			kinds = append(kinds, group.kind)
		}
	}
	results := make([]outcome, len(chunks))
	errs := make([]error, len(chunks))
	sem := make(chan struct{}, max(1, w.concurrency))
	var wg sync.WaitGroup
	for i := range chunks {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return out, ctx.Err()
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			results[i], errs[i] = w.writeChunk(ctx, kinds[i], chunks[i])
		}(i)
	}
	wg.Wait()
	for i := range chunks {
		out.add(results[i])
	}
	if err := errors.Join(errs...); err != nil {
		return out, err
	}
	return out, nil
}

// writeChunk writes up to batchSize ops of one kind.
func (w *writer) writeChunk(ctx context.Context, kind opKind, ops []op) (outcome, error) {
	if kind == opDelete || !w.bulk {
		return w.batch(ctx, kind, ops)
	}
	message := dataverse.UpsertMultiple
	if kind == opUpdate {
		message = dataverse.UpdateMultiple
	}
	return w.bulkBisect(ctx, message, kind, ops)
}

func (w *writer) bulkBisect(ctx context.Context, message string, kind opKind, ops []op) (outcome, error) {
	targets := make([]dataverse.Target, len(ops))
	for i, o := range ops {
		targets[i] = dataverse.Target{Key: o.key, Members: o.body} // bulk targets carry their key in the body
	}
	err := w.dv.BulkTargets(ctx, message, w.plan.DestTable, w.plan.EntitySet, w.plan.PrimaryID, targets)
	if err == nil {
		var out outcome
		for _, o := range ops {
			out.written += o.changes
		}
		return out, nil
	}
	if isTableLevel(err) {
		return outcome{}, &tableError{fmt.Errorf("writing %d rows to %s: %w", len(ops), w.plan.DestTable, err)}
	}
	if len(ops) == 1 {
		return w.single(ctx, kind, ops[0])
	}
	half := len(ops) / 2
	left, err := w.bulkBisect(ctx, message, kind, ops[:half])
	if err != nil {
		return left, err
	}
	right, err := w.bulkBisect(ctx, message, kind, ops[half:])
	left.add(right)
	return left, err
}

// single retries one record alone, to learn its own error, and settles it.
func (w *writer) single(ctx context.Context, kind opKind, o op) (outcome, error) {
	var err error
	switch kind {
	case opUpsert:
		err = w.dv.PatchMembers(ctx, w.plan.EntitySet, o.key, o.body, dataverse.Upsert)
	case opUpdate:
		err = w.dv.PatchMembers(ctx, w.plan.EntitySet, o.key, o.body, dataverse.UpdateOnly)
	case opDelete:
		err = w.dv.Delete(ctx, w.plan.EntitySet, o.key)
	}
	return w.settle(ctx, kind, o, err)
}

// settle turns one record's result into an outcome.
func (w *writer) settle(ctx context.Context, kind opKind, o op, err error) (outcome, error) {
	switch {
	case err == nil:
		return outcome{written: o.changes}, nil
	case kind == opDelete && dataverse.IsNotFound(err):
		return outcome{written: o.changes}, nil // already gone: the delete is done
	case kind == opUpdate && dataverse.IsNotFound(err) && w.rowMissing(err, o):
		return outcome{missing: []string{o.recordID}, skipped: o.changes - 1}, nil
	case isTableLevel(err):
		return outcome{}, &tableError{fmt.Errorf("writing %s %s: %w", w.plan.DestTable, o.recordID, err)}
	}
	code := dataverse.Code(err)
	if dataverse.IsNotFound(err) {
		code = CodeLookupMissing
	}
	var payload string
	if o.body != nil {
		payload = "{" + string(o.body) + "}"
	}
	dl := DeadLetter{Table: w.plan.SourceTable, RecordID: o.recordID, Operation: kind.String(), Code: code, Reason: err.Error(), Payload: payload, At: w.now()}
	if derr := w.dead.AddDeadLetters(ctx, []DeadLetter{dl}); derr != nil {
		return outcome{}, &tableError{fmt.Errorf("storing a dead letter: %w", derr)}
	}
	return outcome{deadLettered: o.changes, refused: []string{o.recordID}}, nil
}

// CodeLookupMissing is the dead-letter code of a record whose lookup target is not in Dataverse (yet).
const CodeLookupMissing = "lookup_missing"

// CodeMapping is the dead-letter code of a record whose values the mapping cannot convert.
const CodeMapping = "mapping"

// CodeRetryRequested marks dead letters a person asked to retry; the agent retries them at its next round.
const CodeRetryRequested = "retry_requested"

// rowMissing tells "the row to update does not exist" from "a lookup target does not exist": Dataverse names
// the entity and id that was not found.
func (w *writer) rowMissing(err error, o op) bool {
	var ae *dataverse.APIError
	if !errors.As(err, &ae) {
		return false
	}
	msg := strings.ToLower(ae.Message)
	return strings.Contains(msg, strings.ToLower(o.key)) && strings.HasPrefix(msg, w.plan.DestTable+" ")
}

// batch writes ops through $batch with continue-on-error, one change set per record.
func (w *writer) batch(ctx context.Context, kind opKind, ops []op) (outcome, error) {
	bops := make([]dataverse.BatchOp, len(ops))
	for i, o := range ops {
		path := w.plan.EntitySet + "(" + o.key + ")"
		switch kind {
		case opUpsert:
			bops[i] = dataverse.BatchOp{Method: http.MethodPatch, Path: path, Members: o.body}
		case opUpdate:
			bops[i] = dataverse.BatchOp{Method: http.MethodPatch, Path: path, Members: o.body, Condition: dataverse.UpdateOnly}
		case opDelete:
			bops[i] = dataverse.BatchOp{Method: http.MethodDelete, Path: path}
		}
	}
	res, err := w.dv.Batch(ctx, bops)
	if err != nil {
		if isTableLevel(err) {
			return outcome{}, &tableError{fmt.Errorf("$batch of %d %s ops on %s: %w", len(ops), kind, w.plan.DestTable, err)}
		}
		return outcome{}, &tableError{err}
	}
	var out outcome
	for i, r := range res {
		var rerr error
		if r.Err != nil {
			rerr = r.Err
		}
		o, err := w.settle(ctx, kind, ops[i], rerr)
		if err != nil {
			return out, err
		}
		out.add(o)
	}
	return out, nil
}
