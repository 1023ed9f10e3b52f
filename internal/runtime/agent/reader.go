package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
)

// reader is a table's Salesforce side: the Bulk load, the change stream (with the load's bridge), re-reads of
// records, the catch-up queries and the queries the merge handling and the safeguards need. It emits what it
// reads: records as Salesforce holds them now, and changes (change, below) with their positions. It never
// writes and never stores a position: the applier turns what it emits into row operations, and the position
// tracker stores a position once the writer acknowledged everything before it. It holds no mutable state.
type reader struct {
	sf     *salesforce.Client
	pubsub *salesforce.PubSub
	object string   // the source table
	fields []string // the mapping's source fields
	topic  string
	types  salesforce.FieldTypes
	// pageSize is how many records one Bulk results page holds.
	pageSize int
}

// changeOp is what happened to the records of a change.
type changeOp int

const (
	// changeCreate: the record was created; values hold it whole.
	changeCreate changeOp = iota
	// changeUpdate: some fields changed; values hold the new values of those that are not null.
	changeUpdate
	// changeDelete: the record was deleted.
	changeDelete
	// changeUnknown: something changed that the event does not carry (an undelete, a gap event): the record
	// is read again.
	changeUnknown
	// changeOverflow: too many changes to list (an overflow event, record Ids ending in *): the table catches
	// up on every record modified since the commit.
	changeOverflow
)

// change is the neutral record a reader emits from the change stream (after Conduit's OpenCDC record): what
// happened to which records, where in the stream (position, a replay ID: the stream resumes after it) and
// when it was committed. Several records share a change when one transaction (or a merge) changed them alike.
type change struct {
	op       changeOp
	ids      []string
	values   map[string]any
	changed  []string // changeUpdate: the fields changed, nulled ones included
	nulled   []string // changeUpdate: the fields set to null
	position []byte
	commit   time.Time
}

// changeOf turns a Change Data Capture event into a change.
func changeOf(ev *salesforce.ChangeEvent) change {
	c := change{ids: ev.RecordIDs, position: ev.ReplayID, commit: ev.CommitTimestamp}
	switch {
	case ev.ChangeType == ctGapOverflow || hasWildcard(ev.RecordIDs):
		c.op = changeOverflow
	case ev.ChangeType == ctCreate:
		c.op, c.values = changeCreate, ev.Values
	case ev.ChangeType == ctUpdate:
		c.op, c.values, c.changed, c.nulled = changeUpdate, ev.Values, ev.ChangedFields, ev.NulledFields
	case ev.ChangeType == ctDelete:
		c.op = changeDelete
	default: // UNDELETE and the other GAP_* events carry no usable values
		c.op = changeUnknown
	}
	return c
}

// Change types (ChangeEventHeader.changeType).
const (
	ctCreate      = "CREATE"
	ctUpdate      = "UPDATE"
	ctDelete      = "DELETE"
	ctGapOverflow = "GAP_OVERFLOW"
)

func hasWildcard(ids []string) bool {
	return slices.ContainsFunc(ids, func(id string) bool { return strings.HasSuffix(id, "*") })
}

// subscribe opens the change stream after the position from (a replay ID), or at the tip when from is empty,
// keeping credit events requested. onBatch, when set, sees every batch first (in the pump's goroutine).
func (r *reader) subscribe(ctx context.Context, from []byte, credit int, onBatch func(streamBatch)) (*pump, error) {
	opts := salesforce.SubscribeOptions{Topic: r.topic, Preset: salesforce.Latest, Credit: credit, Types: r.types}
	if len(from) > 0 {
		opts.Preset, opts.ReplayID = salesforce.Custom, from
	}
	sub, err := r.pubsub.Subscribe(ctx, opts)
	if err != nil {
		return nil, err
	}
	return startPump(ctx, sub, onBatch), nil
}

// startJob starts a Bulk query of every record's mapped fields.
func (r *reader) startJob(ctx context.Context) (*salesforce.BulkJob, error) {
	return r.sf.CreateQueryJob(ctx, fmt.Sprintf("SELECT %s FROM %s", strings.Join(r.fields, ", "), r.object), false)
}

// waitJob waits until a Bulk job completed.
func (r *reader) waitJob(ctx context.Context, id string) (*salesforce.BulkJob, error) {
	return r.sf.WaitQueryJob(ctx, id)
}

// dropJob deletes a finished Bulk job (its results are not needed any more).
func (r *reader) dropJob(ctx context.Context, id string) error { return r.sf.DeleteQueryJob(ctx, id) }

// pageRows reads one page of a job's results (locator "" for the first), each row given by position
// (salesforce.Client.QueryResultRows): the load's path.
func (r *reader) pageRows(ctx context.Context, jobID, locator string, fn func(header, row []string) error) (salesforce.ResultPage, error) {
	return r.sf.QueryResultRows(ctx, jobID, locator, r.pageSize, fn)
}

// readJob reads every page of a completed job's results, from the first.
func (r *reader) readJob(ctx context.Context, jobID string, pageSize int, fn func(salesforce.Record) error) error {
	for locator := ""; ; {
		p, err := r.sf.QueryResults(ctx, jobID, locator, pageSize, fn)
		if err != nil {
			return err
		}
		if p.Next == "" {
			return nil
		}
		locator = p.Next
	}
}

// liveIDs streams every live Id of the object with one Bulk API query.
func (r *reader) liveIDs(ctx context.Context, fn func(id string) error) error {
	job, err := r.sf.CreateQueryJob(ctx, "SELECT Id FROM "+r.object, false)
	if err != nil {
		return err
	}
	defer func() { _ = r.sf.DeleteQueryJob(context.WithoutCancel(ctx), job.ID) }()
	if _, err := r.sf.WaitQueryJob(ctx, job.ID); err != nil {
		return err
	}
	return r.readJob(ctx, job.ID, 0, func(rec salesforce.Record) error { return fn(rec.ID()) })
}

// reread reads records again (deleted ones included, as deleted; records not even in the recycle bin are
// absent from the answer).
func (r *reader) reread(ctx context.Context, ids []string, fn func(salesforce.Record) error) error {
	return r.sf.Retrieve(ctx, r.object, r.fields, ids, fn)
}

// modifiedSince reads every record modified since a time, with its SystemModstamp.
func (r *reader) modifiedSince(ctx context.Context, since time.Time, fn func(salesforce.Record) error) error {
	fields := strings.Join(withField(r.fields, "SystemModstamp"), ", ")
	soql := fmt.Sprintf("SELECT %s FROM %s WHERE SystemModstamp >= %s", fields, r.object, soqlTime(since))
	_, err := r.sf.Query(ctx, soql, false, fn)
	return err
}

// deletedSince reads the Id of every record deleted since a time (from the recycle bin).
func (r *reader) deletedSince(ctx context.Context, since time.Time, fn func(salesforce.Record) error) error {
	soql := fmt.Sprintf("SELECT Id FROM %s WHERE IsDeleted = true AND SystemModstamp >= %s", r.object, soqlTime(since))
	_, err := r.sf.Query(ctx, soql, true, fn)
	return err
}

func soqlTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func withField(fields []string, f string) []string {
	for _, x := range fields {
		if strings.EqualFold(x, f) {
			return fields
		}
	}
	return append(append([]string(nil), fields...), f)
}

// mergeWinners returns the winners of the merges that deleted some of the given records (18-character Ids,
// each once).
func (r *reader) mergeWinners(ctx context.Context, deleted []string) ([]string, error) {
	var winners []string
	err := inChunks(deleted, func(list string) error {
		soql := fmt.Sprintf("SELECT Id, MasterRecordId FROM %s WHERE Id IN (%s) AND MasterRecordId != null", r.object, list)
		_, err := r.sf.Query(ctx, soql, true, func(rec salesforce.Record) error {
			if w, ok := rec["MasterRecordId"].(string); ok && sfid.Valid(w) && !slices.Contains(winners, to18(w)) {
				winners = append(winners, to18(w))
			}
			return nil
		})
		return err
	})
	return winners, err
}

// idsWhere returns the Ids of the records whose field holds one of the given Ids (18 characters, each once).
func (r *reader) idsWhere(ctx context.Context, field string, in []string) ([]string, error) {
	var ids []string
	err := inChunks(in, func(list string) error {
		soql := fmt.Sprintf("SELECT Id FROM %s WHERE %s IN (%s)", r.object, field, list)
		_, err := r.sf.Query(ctx, soql, false, func(rec salesforce.Record) error {
			if id := to18(rec.ID()); !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
			return nil
		})
		return err
	})
	return ids, err
}

// streamBatch is one batch of the change stream: its changes, and the stream's position after it (a
// keepalive has a position and no changes).
type streamBatch struct {
	changes []change
	latest  []byte
}

type pumped struct {
	b   streamBatch
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

func startPump(ctx context.Context, sub *salesforce.Subscription, onBatch func(streamBatch)) *pump {
	pctx, cancel := context.WithCancel(ctx)
	// Up to 64 responses (6,400 events) are read ahead while a window is being written, so a backlog streams
	// in while writes are in flight; beyond that, reading blocks and flow control holds the server back.
	p := &pump{sub: sub, msgs: make(chan pumped, 64), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		for {
			var m pumped
			b, err := sub.Next() //nolint:contextcheck // the subscription carries ctx
			if err == nil {
				m.b = streamBatch{latest: b.LatestReplayID, changes: make([]change, len(b.Events))}
				for i, ev := range b.Events {
					m.b.changes[i] = changeOf(ev)
				}
				if onBatch != nil {
					onBatch(m.b)
				}
			}
			m.err = err
			select {
			case p.msgs <- m:
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
