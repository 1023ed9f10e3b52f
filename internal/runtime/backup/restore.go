package backup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/jsonrow"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/writer"
)

// IDLister lists every record Id of a Salesforce object, deleted ones still in the recycle bin included.
type IDLister interface {
	IDs(ctx context.Context, object string, fn func(id string) error) error
}

// RestoreOptions configures Restore.
type RestoreOptions struct {
	// Dir is the backup's directory.
	Dir string
	// RestoreID names the run in the report (a resumed run keeps the ID it started with).
	RestoreID     string
	DeleteCreated bool
	// Source lists Salesforce Ids, to prove a row was created by the sync; required with DeleteCreated.
	Source IDLister
	// BatchSize is the number of rows per write (at most 1,000); 1,000 when zero.
	BatchSize int
	// Progress is called after every finished step with the report so far.
	Progress func(api.Restore)
	Logger   *slog.Logger
	Now      func() time.Time
}

// subRange is how many backed-up rows are compared and written at a time: one Dataverse page, so a chunk is
// restored with flat memory.
const subRange = DefaultPageSize

// Restore writes a backup back into Dataverse (see the package comment) and returns what it did. Called
// again after an interruption, it resumes from the last finished chunk; called again after it finished, it
// starts over and finds everything unchanged.
func Restore(ctx context.Context, dv *dataverse.Client, opts RestoreOptions) (*api.Restore, error) {
	if opts.BatchSize <= 0 || opts.BatchSize > dataverse.MaxBatchOps {
		opts.BatchSize = dataverse.MaxBatchOps
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DeleteCreated && opts.Source == nil {
		return nil, errors.New("restore: deleting created rows needs a Salesforce Id lister")
	}
	m, err := ReadManifest(opts.Dir)
	if err != nil {
		return nil, err
	}
	if m.CompletedAt == nil {
		return nil, fmt.Errorf("backup %s is not complete; only a complete backup can be restored", m.ID)
	}
	r := &restorer{dv: dv, opts: opts, m: m, statePath: filepath.Join(opts.Dir, RestoreStateFile),
		w:    writer.New(writer.Config{Client: dv, BatchSize: opts.BatchSize, Concurrency: 1}),
		sets: map[string]string{}, owners: map[string]string{}, keysets: map[string]map[uuid.UUID]bool{}, probed: map[string]string{}}
	if err := r.loadState(); err != nil {
		return nil, err
	}
	who, err := dv.WhoAmI(ctx)
	if err != nil {
		return &r.st.Report, fmt.Errorf("reading the application user (WhoAmI): %w", err)
	}
	r.appUser = strings.ToLower(who.UserID)
	for _, i := range r.order() {
		if err := r.restoreTable(ctx, i); err != nil {
			return &r.st.Report, r.fail(fmt.Errorf("restoring %s: %w", m.Tables[i].Table, err))
		}
	}
	if opts.DeleteCreated {
		for _, i := range r.order() {
			if err := r.deleteCreated(ctx, i); err != nil {
				return &r.st.Report, r.fail(fmt.Errorf("deleting rows created in %s since the backup: %w", m.Tables[i].Table, err))
			}
		}
	}
	now := opts.Now().UTC()
	r.st.Report.State, r.st.Report.CompletedAt, r.st.Report.Error = api.RestoreComplete, &now, ""
	if err := r.save(); err != nil {
		return &r.st.Report, err
	}
	for _, i := range r.order() {
		_ = os.Remove(r.createdPath(i))
	}
	return &r.st.Report, nil
}

type restorer struct {
	dv        *dataverse.Client
	opts      RestoreOptions
	m         *Manifest
	st        restoreState
	statePath string
	appUser   string
	w         *writer.Writer

	sets    map[string]string             // table → entity set
	owners  map[string]string             // owner id → "/teams(id)" or "/systemusers(id)"
	keysets map[string]map[uuid.UUID]bool // backed-up keys of a table, for multi-target lookups
	probed  map[string]string             // lookup value → table, found by reading the row
}

// order restores tables that lookups point at first, so binds find their targets.
func (r *restorer) order() []int {
	idx := make([]int, len(r.m.Tables))
	for i := range idx {
		idx[i] = i
	}
	points := func(t TableManifest) int {
		n := 0
		for _, c := range t.Columns {
			if c.Type == "Lookup" || c.Type == "Customer" {
				for _, o := range r.m.Tables {
					if o.Table != t.Table && slices.Contains(c.Targets, o.Table) {
						n++
					}
				}
			}
		}
		return n
	}
	slices.SortStableFunc(idx, func(a, b int) int { return points(r.m.Tables[a]) - points(r.m.Tables[b]) })
	return idx
}

// restoreTable restores every chunk not yet done; a table backed up empty is one open range.
func (r *restorer) restoreTable(ctx context.Context, i int) error {
	t := &r.m.Tables[i]
	st, rep := &r.st.Tables[i], &r.st.Report.Tables[i]
	ranges := max(1, len(t.Chunks))
	for st.ChunksDone < ranges {
		c := st.ChunksDone
		after, upTo := "", ""
		if c > 0 {
			after = t.Chunks[c-1].LastKey
		}
		if c < len(t.Chunks)-1 {
			upTo = t.Chunks[c].LastKey
		}
		var created []string
		flush := func(rows []map[string]any, lo, hi string) error {
			cr, err := r.restoreRange(ctx, t, rep, rows, lo, hi)
			created = append(created, cr...)
			return err
		}
		if len(t.Chunks) == 0 {
			if err := flush(nil, "", ""); err != nil {
				return err
			}
		} else {
			// Sub-ranges of one page of backed-up rows each: (lo, last key of the page], and a last one up to
			// the chunk's upper bound (open for the last chunk, where rows created since may follow).
			var pending []map[string]any
			lo := after
			err := ReadChunk(r.opts.Dir, t.Chunks[c], func(row map[string]any) error {
				pending = append(pending, row)
				if len(pending) < subRange {
					return nil
				}
				hi, _ := pending[len(pending)-1][t.PrimaryID].(string)
				if err := flush(pending, lo, hi); err != nil {
					return err
				}
				pending, lo = nil, hi
				return nil
			})
			if err != nil {
				return err
			}
			if len(pending) > 0 || upTo == "" {
				if err := flush(pending, lo, upTo); err != nil {
					return err
				}
			}
		}
		if err := r.appendCreated(i, created); err != nil {
			return err
		}
		st.ChunksDone++
		rep.Done = min(rep.Rows, rep.Done+chunkRows(t, c))
		rep.Complete = st.ChunksDone == ranges && !r.opts.DeleteCreated
		if err := r.save(); err != nil {
			return err
		}
	}
	return nil
}

func chunkRows(t *TableManifest, c int) int64 {
	if c < len(t.Chunks) {
		return t.Chunks[c].Rows
	}
	return 0
}

// restoreRange settles the backed-up rows of one key range (lo, hi] against what Dataverse holds there now,
// and returns the keys of rows in the range that the backup does not hold and the sync may have created.
func (r *restorer) restoreRange(ctx context.Context, t *TableManifest, rep *api.RestoreTable, rows []map[string]any, lo, hi string) ([]string, error) {
	cur := map[string]dataverse.Row{}
	err := r.dv.Query(ctx, rangeQuery(t, lo, hi, "_createdby_value"), DefaultPageSize, func(row dataverse.Row) error {
		if k, ok := row[t.PrimaryID].(string); ok {
			cur[strings.ToLower(k)] = row
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var writes, stateFix []dataverse.Row
	backed := make(map[string]bool, len(rows))
	for _, b := range rows {
		key, _ := b[t.PrimaryID].(string)
		key = strings.ToLower(key)
		if !validKey(key) {
			return nil, fmt.Errorf("a backed-up row of %s has the key %q, not a GUID", t.Table, key)
		}
		backed[key] = true
		c, exists := cur[key]
		if exists && r.equal(t, b, c) {
			rep.Unchanged++
			continue
		}
		body, err := r.body(ctx, t, b, key, exists)
		if err != nil {
			return nil, err
		}
		writes = append(writes, body)
		if !exists {
			if fix := stateBody(t, b, key); fix != nil {
				stateFix = append(stateFix, fix)
			}
		}
	}
	var created []string
	for key, c := range cur {
		if backed[key] {
			continue
		}
		by, _ := c["_createdby_value"].(string)
		if r.opts.DeleteCreated && sfid.IsSyncGUID(key) && strings.EqualFold(by, r.appUser) {
			created = append(created, key)
			continue
		}
		rep.Kept++
	}
	failed, err := r.write(ctx, t, writer.Upsert, writes)
	if err != nil {
		return nil, err
	}
	rep.Restored += int64(len(writes) - len(failed))
	r.recordFailures(rep, failed)
	fixFailed, err := r.write(ctx, t, writer.Update, stateFix)
	if err != nil {
		return nil, err
	}
	r.recordFailures(rep, fixFailed)
	return created, nil
}

func (r *restorer) recordFailures(rep *api.RestoreTable, failed []string) {
	rep.Failed += int64(len(failed))
	for _, f := range failed {
		if len(rep.Examples) < 10 {
			rep.Examples = append(rep.Examples, f)
		}
	}
}

// write settles rows through the writer the agent uses (package writer): upserts, updates (of rows that must
// exist) or deletes, BatchSize at a time. It returns the rows Dataverse refused ("key: reason"); an error
// means the restore cannot go on (it resumes from the last finished chunk).
func (r *restorer) write(ctx context.Context, t *TableManifest, kind writer.Kind, rows []dataverse.Row) ([]string, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	ops := make([]writer.Op, len(rows))
	for i, row := range rows {
		key, _ := row[t.PrimaryID].(string)
		ops[i] = writer.Op{Kind: kind, RecordID: key, Key: key, Changes: 1}
		if kind == writer.Delete {
			continue
		}
		body := make(dataverse.Row, len(row))
		for k, v := range row {
			if k != t.PrimaryID {
				body[k] = v
			}
		}
		// Never nil: a row with nothing but its key is still written (as {}).
		m, err := jsonrow.AppendMembers(make([]byte, 0, 256), body)
		if err != nil {
			return nil, fmt.Errorf("encoding row %s of %s: %w", key, t.Table, err)
		}
		ops[i].Body = m
	}
	var mu sync.Mutex
	var failed []string
	target := writer.Target{Table: t.Table, EntitySet: t.EntitySet, PrimaryID: t.PrimaryID,
		OnRefused: func(_ context.Context, rf writer.Refusal) error {
			msg := rf.Err.Error()
			var ae *dataverse.APIError
			if errors.As(rf.Err, &ae) {
				msg = ae.Message
			}
			mu.Lock()
			failed = append(failed, rf.Op.Key+": "+msg)
			mu.Unlock()
			return nil
		}}
	out, err := r.w.Write(ctx, target, ops)
	if err != nil {
		return failed, err
	}
	for _, key := range out.Missing {
		failed = append(failed, key+": the row to update does not exist")
	}
	return failed, nil
}
