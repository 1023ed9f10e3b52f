package backup

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/jsonrow"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/writer"
)

// RestoreStateFile records a restore's progress inside the backup directory.
const RestoreStateFile = "restore.json"

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

// restoreState is restore.json: the report plus where each table stands.
type restoreState struct {
	Report api.Restore  `json:"report"`
	Tables []tableState `json:"tables"`
}

type tableState struct {
	ChunksDone  int  `json:"chunks_done"`
	DeletesDone bool `json:"deletes_done"`
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

func (r *restorer) loadState() error {
	b, err := os.ReadFile(r.statePath)
	if err == nil {
		var st restoreState
		if jerr := json.Unmarshal(b, &st); jerr == nil && st.Report.State != api.RestoreComplete &&
			st.Report.DeleteCreated == r.opts.DeleteCreated && len(st.Tables) == len(r.m.Tables) {
			r.st = st
			r.st.Report.Resumed, r.st.Report.State, r.st.Report.Error = true, api.RestoreRunning, ""
			r.st.Report.UpdatedAt = r.opts.Now().UTC()
			r.opts.Logger.Info("resuming an interrupted restore", "backup", r.m.ID, "restore", st.Report.ID)
			return nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	now := r.opts.Now().UTC()
	r.st = restoreState{
		Report: api.Restore{ID: r.opts.RestoreID, BackupID: r.m.ID, ConnectorID: r.m.ConnectorID, DeleteCreated: r.opts.DeleteCreated,
			State: api.RestoreRunning, CreatedAt: now, UpdatedAt: now},
		Tables: make([]tableState, len(r.m.Tables)),
	}
	for _, t := range r.m.Tables {
		r.st.Report.Tables = append(r.st.Report.Tables, api.RestoreTable{Table: t.Table, Rows: t.Rows})
	}
	for i := range r.m.Tables {
		_ = os.Remove(r.createdPath(i))
	}
	return r.save()
}

// save records the progress (atomically) and reports it.
func (r *restorer) save() error {
	rep := &r.st.Report
	rep.Restored, rep.Unchanged, rep.Deleted, rep.Kept, rep.Failed = 0, 0, 0, 0, 0
	for _, t := range rep.Tables {
		rep.Restored += t.Restored
		rep.Unchanged += t.Unchanged
		rep.Deleted += t.Deleted
		rep.Kept += t.Kept
		rep.Failed += t.Failed
	}
	rep.UpdatedAt = r.opts.Now().UTC()
	if err := writeJSONAtomic(r.statePath, r.st); err != nil {
		return fmt.Errorf("recording the restore's progress: %w", err)
	}
	if r.opts.Progress != nil {
		r.opts.Progress(*rep)
	}
	return nil
}

func (r *restorer) fail(err error) error {
	r.st.Report.State, r.st.Report.Error = api.RestoreFailed, err.Error()
	if serr := r.save(); serr != nil {
		r.opts.Logger.Warn("recording the failed restore", "err", serr)
	}
	return err
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

func (r *restorer) createdPath(i int) string {
	return filepath.Join(r.opts.Dir, "restore-created-"+r.m.Tables[i].Table+".keys")
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
		if r.opts.DeleteCreated && syncShaped(key) && strings.EqualFold(by, r.appUser) {
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

// syncShaped reports whether a key can be the GUID of a Salesforce Id: crmsync's GUIDs are UUIDv5.
func syncShaped(key string) bool {
	u, err := uuid.Parse(key)
	return err == nil && u.Version() == 5 && u.Variant() == uuid.RFC4122
}

// equal compares the writable columns of a backed-up row and a current one (both as the Web API returns
// them, so the same value has the same JSON form).
func (r *restorer) equal(t *TableManifest, b, c map[string]any) bool {
	for _, col := range t.Columns {
		if col.ReadOnly {
			continue
		}
		if canon(b[col.Property], isLookup(col.Type)) != canon(c[col.Property], isLookup(col.Type)) {
			return false
		}
	}
	return true
}

func canon(v any, fold bool) string {
	switch x := v.(type) {
	case nil:
		return "\x00"
	case string:
		if fold {
			return strings.ToLower(x)
		}
		return x
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// body is the upsert body of a backed-up row: writable columns as they were, lookups as binds.
func (r *restorer) body(ctx context.Context, t *TableManifest, b map[string]any, key string, exists bool) (dataverse.Row, error) {
	out := dataverse.Row{t.PrimaryID: key}
	for _, c := range t.Columns {
		if c.ReadOnly || (c.State && !exists) {
			continue
		}
		v := b[c.Property]
		if !isLookup(c.Type) {
			out[c.Name] = v
			continue
		}
		s, _ := v.(string)
		switch c.Type {
		case "Owner":
			if s == "" {
				continue // a row always has an owner: leave the current one
			}
			bind, err := r.ownerBind(ctx, s)
			if err != nil {
				return nil, err
			}
			out["ownerid@odata.bind"] = bind
		default:
			target, err := r.lookupTarget(ctx, c, s)
			if err != nil {
				return nil, err
			}
			nav := c.Name
			if c.Type == "Customer" {
				nav = c.Name + "_" + target
			}
			if s == "" {
				out[nav+"@odata.bind"] = nil
				continue
			}
			set, err := r.entitySet(ctx, target)
			if err != nil {
				return nil, err
			}
			out[nav+"@odata.bind"] = "/" + set + "(" + s + ")"
		}
	}
	return out, nil
}

// stateBody is the update that gives a recreated row its backed-up state (a create cannot set statecode);
// nil when the row has no state columns or the default state.
func stateBody(t *TableManifest, b map[string]any, key string) dataverse.Row {
	var out dataverse.Row
	for _, c := range t.Columns {
		if !c.State {
			continue
		}
		if out == nil {
			out = dataverse.Row{t.PrimaryID: key}
		}
		out[c.Name] = b[c.Property]
	}
	if out == nil || canon(out["statecode"], false) == "0" {
		return nil
	}
	return out
}

// ownerBind tells a team from a user by reading the team (one request per distinct owner).
func (r *restorer) ownerBind(ctx context.Context, id string) (string, error) {
	id = strings.ToLower(id)
	if b, ok := r.owners[id]; ok {
		return b, nil
	}
	if !validKey(id) {
		return "", fmt.Errorf("owner %q is not a GUID", id)
	}
	bind := "/teams(" + id + ")"
	if _, err := r.dv.Team(ctx, id); err != nil {
		if !dataverse.IsNotFound(err) {
			return "", err
		}
		bind = "/systemusers(" + id + ")"
	}
	r.owners[id] = bind
	return bind, nil
}

// lookupTarget says which table a lookup value points at: the column's only target; else the backed-up
// table holding the key; else the target where a row with that key exists now (read once per value).
func (r *restorer) lookupTarget(ctx context.Context, c Column, v string) (string, error) {
	if len(c.Targets) == 0 {
		return "", fmt.Errorf("lookup column %s has no target tables in the backup's metadata", c.Name)
	}
	if len(c.Targets) == 1 || v == "" {
		return c.Targets[0], nil
	}
	u, err := uuid.Parse(v)
	if err != nil {
		return "", fmt.Errorf("lookup %s value %q is not a GUID", c.Name, v)
	}
	for _, target := range c.Targets {
		set, err := r.keyset(target)
		if err != nil {
			return "", err
		}
		if set[u] {
			return target, nil
		}
	}
	if t, ok := r.probed[strings.ToLower(v)]; ok {
		return t, nil
	}
	for _, target := range c.Targets {
		es, err := r.entitySet(ctx, target)
		if err != nil {
			return "", err
		}
		if _, err := r.dv.Get(ctx, es, strings.ToLower(v), ""); err == nil {
			r.probed[strings.ToLower(v)] = target
			return target, nil
		} else if !dataverse.IsNotFound(err) {
			return "", err
		}
	}
	// The target is gone everywhere: the write will fail on this row alone and say so.
	return c.Targets[0], nil
}

// keyset loads the backed-up keys of a table (nil when the table is not in the backup).
func (r *restorer) keyset(table string) (map[uuid.UUID]bool, error) {
	if s, ok := r.keysets[table]; ok {
		return s, nil
	}
	var set map[uuid.UUID]bool
	for _, t := range r.m.Tables {
		if t.Table != table {
			continue
		}
		set = make(map[uuid.UUID]bool, t.Rows)
		for _, c := range t.Chunks {
			err := ReadChunk(r.opts.Dir, c, func(row map[string]any) error {
				if k, ok := row[t.PrimaryID].(string); ok {
					if u, err := uuid.Parse(k); err == nil {
						set[u] = true
					}
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	r.keysets[table] = set
	return set, nil
}

func (r *restorer) entitySet(ctx context.Context, table string) (string, error) {
	if s, ok := r.sets[table]; ok {
		return s, nil
	}
	for _, t := range r.m.Tables {
		if t.Table == table {
			r.sets[table] = t.EntitySet
			return t.EntitySet, nil
		}
	}
	schema, err := r.dv.Table(ctx, table)
	if err != nil {
		return "", fmt.Errorf("reading the metadata of lookup target %s: %w", table, err)
	}
	r.sets[table] = schema.EntitySetName
	return schema.EntitySetName, nil
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

// appendCreated records keys of rows the sync may have created, before the chunk counts as done, so a
// resumed restore still deletes them (duplicates are harmless).
func (r *restorer) appendCreated(i int, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	f, err := os.OpenFile(r.createdPath(i), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, k := range keys {
		_, _ = w.WriteString(k + "\n") // a failed write surfaces at Flush
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// deleteCreated deletes the recorded candidates whose key is the GUID of an Id of the mapped Salesforce
// object (one Bulk query of Ids), and keeps the others.
func (r *restorer) deleteCreated(ctx context.Context, i int) error {
	st, rep, t := &r.st.Tables[i], &r.st.Report.Tables[i], &r.m.Tables[i]
	if st.DeletesDone {
		return nil
	}
	candidates := map[uuid.UUID]bool{}
	f, err := os.Open(r.createdPath(i))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	default:
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if u, err := uuid.Parse(strings.TrimSpace(sc.Text())); err == nil {
				candidates[u] = true
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return err
		}
	}
	if len(candidates) > 0 {
		var confirmed []dataverse.Row
		err := r.opts.Source.IDs(ctx, t.SourceTable, func(id string) error {
			g, err := sfid.GUID(id)
			if err != nil {
				return nil //nolint:nilerr // not an Id: nothing of ours
			}
			if candidates[g] {
				confirmed = append(confirmed, dataverse.Row{t.PrimaryID: g.String()})
				delete(candidates, g)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("listing %s Ids: %w", t.SourceTable, err)
		}
		failed, err := r.write(ctx, t, writer.Delete, confirmed)
		if err != nil {
			return err
		}
		rep.Deleted += int64(len(confirmed) - len(failed))
		r.recordFailures(rep, failed)
		rep.Kept += int64(len(candidates))
	}
	st.DeletesDone, rep.Complete = true, true
	return r.save()
}

var objectName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,79}$`)

// SalesforceIDs lists Ids with one Bulk API queryAll job per object (deleted records in the recycle bin
// included): a few calls however large the object.
func SalesforceIDs(sf *salesforce.Client) IDLister { return sfIDs{sf} }

type sfIDs struct{ sf *salesforce.Client }

func (s sfIDs) IDs(ctx context.Context, object string, fn func(id string) error) error {
	if !objectName.MatchString(object) {
		return fmt.Errorf("%q is not a Salesforce object name", object)
	}
	job, err := s.sf.CreateQueryJob(ctx, "SELECT Id FROM "+object, true)
	if err != nil {
		return err
	}
	defer func() { _ = s.sf.DeleteQueryJob(context.WithoutCancel(ctx), job.ID) }()
	if _, err := s.sf.WaitQueryJob(ctx, job.ID); err != nil {
		return err
	}
	locator := ""
	for {
		page, err := s.sf.QueryResults(ctx, job.ID, locator, 0, func(rec salesforce.Record) error { return fn(rec.ID()) })
		if err != nil {
			return err
		}
		if page.Next == "" {
			return nil
		}
		locator = page.Next
	}
}
