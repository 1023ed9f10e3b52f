package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/writer"
)

// safeguards runs the agent's two data checks on every streaming table, one at a time in one goroutine:
//   - the out-of-band edit detector (drift.go), every Tuning.OutOfBandInterval;
//   - the reconciliation (reconcile.go), every Tuning.ReconcileInterval after the table's last one, and on
//     request: the control plane passes requests on in heartbeat answers (RequestReconcile), and the agent
//     reports the last request it completed in Status.ReconcileRequestID, so a request survives an agent
//     restart until one agent has carried it out.
//
// Neither check runs while a table loads, and both only read, except to heal: healing re-reads records and
// writes them through the table's pipeline (reader, applier, the agent's writer), keyed by GUID, so it is as
// idempotent as the sync itself. The checks see a table only through its tableGuard: its configuration, its
// reader, its position tracker (where their results are stored) and the heal and delete functions the table
// lends them; they never touch the table's own state.
type safeguards struct {
	a *Agent

	mu       sync.Mutex
	guards   map[*table]*tableGuard
	appUser  string            // the application user (WhoAmI): the identity of the agent's own writes
	users    map[string]string // systemuser ID → full name, for reports
	pending  int64             // the newest reconciliation request not yet carried out
	done     int64             // the newest request carried out
	wake     chan struct{}
	firstRun time.Time
}

// tableGuard is what the safeguards know of one table: what the table lends them (set once), and their own
// state, reported in status (guarded by mu).
type tableGuard struct {
	name   string // the source table
	plan   *mapping.Plan
	repair bool // repair_out_of_band_edits
	rd     *reader
	pos    *positions
	log    *slog.Logger
	// heal re-reads records and writes them (counted as received by the table).
	heal func(ctx context.Context, ids []string) (writer.Outcome, error)
	// deleteRows deletes rows by key through the table's writer.
	deleteRows func(ctx context.Context, keys []string) error

	mu        sync.Mutex
	oob       api.OutOfBandStatus
	seen      recentTimes // key → modifiedon of out-of-band rows already looked at
	reconcile *api.ReconcileResult
	ids       map[string]string // Dataverse key → Salesforce Id, for rows the detector resolved
}

func (a *Agent) guards() *safeguards {
	a.sgOnce.Do(func() {
		a.sg = &safeguards{a: a, guards: map[*table]*tableGuard{}, users: map[string]string{}, wake: make(chan struct{}, 1)}
	})
	return a.sg
}

func (g *safeguards) guard(t *table) *tableGuard {
	g.mu.Lock()
	defer g.mu.Unlock()
	tg := g.guards[t]
	if tg == nil {
		tg = &tableGuard{name: t.cfg.SourceTable, plan: t.plan, repair: t.cfg.RepairOutOfBandEdits, rd: t.rd, pos: t.pos, log: t.log,
			heal: t.heal, deleteRows: t.deleteRows, ids: map[string]string{}}
		tg.oob.Repair = tg.repair
		tg.reconcile = t.pos.snapshot().LastReconcile
		g.guards[t] = tg
	}
	return tg
}

// RequestReconcile asks for a reconciliation of every streaming table (the control plane's request ID,
// from a heartbeat answer). It never blocks; a request at or below the last one carried out is ignored.
func (a *Agent) RequestReconcile(id int64) {
	g := a.guards()
	g.mu.Lock()
	if id <= g.done || id <= g.pending {
		g.mu.Unlock()
		return
	}
	g.pending = id
	g.mu.Unlock()
	select {
	case g.wake <- struct{}{}:
	default:
	}
}

// Reconcile reconciles every streaming table now and returns the results (tables still loading are left
// out).
func (a *Agent) Reconcile(ctx context.Context) []api.ReconcileResult {
	var out []api.ReconcileResult
	for _, t := range a.streamingTables() {
		out = append(out, a.guards().reconcile(ctx, a.guards().guard(t), api.ReconcileRequested, 0))
	}
	return out
}

// CheckOutOfBand runs the out-of-band edit detector on every streaming table now.
func (a *Agent) CheckOutOfBand(ctx context.Context) error {
	var errs []error
	for _, t := range a.streamingTables() {
		errs = append(errs, a.guards().checkOutOfBand(ctx, a.guards().guard(t)))
	}
	return errors.Join(errs...)
}

func (a *Agent) streamingTables() []*table {
	var out []*table
	for _, t := range a.tableList() {
		if t.st.streamingQuietly() && t.pos.snapshot().Phase == PhaseStreaming {
			out = append(out, t)
		}
	}
	return out
}

// run drives both checks until ctx ends.
func (g *safeguards) run(ctx context.Context) {
	tun := g.a.tuning
	oobEvery, recEvery := time.Duration(tun.OutOfBandInterval), time.Duration(tun.ReconcileInterval)
	g.firstRun = time.Now()
	// A tick at the finer of the two intervals (bounded to [1 s, 1 min]) decides what is due.
	step := time.Minute
	if oobEvery > 0 {
		step = min(step, oobEvery)
	}
	if recEvery > 0 {
		step = min(step, recEvery)
	}
	tick := time.NewTicker(max(step, 100*time.Millisecond))
	defer tick.Stop()
	lastOOB := map[*table]time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-g.wake:
		}
		g.mu.Lock()
		req := g.pending
		g.mu.Unlock()
		if req > 0 {
			g.carryOut(ctx, req)
			continue
		}
		now := time.Now()
		for _, t := range g.a.streamingTables() {
			if ctx.Err() != nil {
				return
			}
			tg := g.guard(t)
			if hasIntent(tg.pos.snapshot().Intents, api.IntentReconcile) {
				g.owedReconcile(ctx, tg)
				continue
			}
			if oobEvery > 0 && now.Sub(lastOOB[t]) >= oobEvery {
				lastOOB[t] = now
				if err := g.checkOutOfBand(ctx, tg); err != nil && ctx.Err() == nil {
					tg.log.Warn("checking for out-of-band edits", "err", err)
				}
			}
			if recEvery > 0 && g.reconcileDue(tg, now, recEvery) {
				g.reconcile(ctx, tg, api.ReconcileScheduled, 0)
			}
		}
	}
}

// carryOut reconciles every streaming table for a request; the tables not streaming yet get a result that
// says so. The request counts as carried out (and is reported) once every table has a result.
func (g *safeguards) carryOut(ctx context.Context, req int64) {
	streaming := g.a.streamingTables()
	for _, t := range g.a.tableList() {
		if slices.Contains(streaming, t) {
			g.reconcile(ctx, g.guard(t), api.ReconcileRequested, req)
			continue
		}
		now := time.Now().UTC()
		g.setResult(ctx, g.guard(t), &api.ReconcileResult{Trigger: api.ReconcileRequested, RequestID: req, StartedAt: now, FinishedAt: now,
			Error: "not reconciled: the table is not streaming yet (" + t.status().Phase + ")"})
	}
	if ctx.Err() != nil {
		return
	}
	g.mu.Lock()
	g.done = max(g.done, req)
	if g.pending == req {
		g.pending = 0
	}
	g.mu.Unlock()
	g.a.report(ctx)
}

// owedReconcile runs the reconciliation a table owes (after a restore) and, once one finished, removes the
// intent: a failed one is tried again at the next tick.
func (g *safeguards) owedReconcile(ctx context.Context, tg *tableGuard) {
	res := g.reconcile(ctx, tg, api.ReconcileRequested, 0)
	if res.Error != "" || ctx.Err() != nil {
		return
	}
	if err := tg.pos.owedReconcileDone(ctx); err != nil && ctx.Err() == nil {
		tg.log.Warn("storing the finished reconciliation", "err", err)
	}
}

// reconcileDue: interval after the last reconciliation (persisted in the checkpoint), or after the agent
// started when there was none.
func (g *safeguards) reconcileDue(tg *tableGuard, now time.Time, every time.Duration) bool {
	tg.mu.Lock()
	last := tg.reconcile
	tg.mu.Unlock()
	from := g.firstRun
	if last != nil && !last.FinishedAt.IsZero() {
		from = last.FinishedAt
	}
	return now.Sub(from) >= every
}

// decorate adds the safeguards' part of the status.
func (g *safeguards) decorate(s *Status) {
	g.mu.Lock()
	s.ReconcileRequestID = g.done
	byName := map[string]*tableGuard{}
	for _, tg := range g.guards {
		byName[tg.name] = tg
	}
	g.mu.Unlock()
	for i := range s.Tables {
		tg := byName[s.Tables[i].Table]
		if tg == nil {
			continue
		}
		tg.mu.Lock()
		if !tg.oob.CheckedAt.IsZero() {
			o := tg.oob
			o.Examples = slices.Clone(o.Examples)
			s.Tables[i].OutOfBand = &o
		}
		if tg.reconcile != nil {
			r := *tg.reconcile
			r.Examples = slices.Clone(r.Examples)
			s.Tables[i].Reconcile = &r
		}
		tg.mu.Unlock()
	}
}

// whoAmI returns the application user's ID (read once).
func (g *safeguards) whoAmI(ctx context.Context) (string, error) {
	g.mu.Lock()
	u := g.appUser
	g.mu.Unlock()
	if u != "" {
		return u, nil
	}
	who, err := g.a.dv.WhoAmI(ctx)
	if err != nil {
		return "", fmt.Errorf("reading the application user (WhoAmI): %w", err)
	}
	if _, err := uuid.Parse(who.UserID); err != nil {
		return "", fmt.Errorf("WhoAmI answered the user ID %q, not a GUID", who.UserID)
	}
	g.mu.Lock()
	g.appUser = strings.ToLower(who.UserID)
	g.mu.Unlock()
	return strings.ToLower(who.UserID), nil
}

// userName returns a systemuser's full name (read once per user; "" when it cannot be read).
func (g *safeguards) userName(ctx context.Context, id string) string {
	g.mu.Lock()
	name, ok := g.users[id]
	g.mu.Unlock()
	if ok {
		return name
	}
	if _, err := uuid.Parse(id); err != nil {
		return ""
	}
	row, err := g.a.dv.Get(ctx, "systemusers", id, "fullname")
	if err == nil {
		name, _ = row["fullname"].(string)
	}
	g.mu.Lock()
	if len(g.users) < 1000 {
		g.users[id] = name
	}
	g.mu.Unlock()
	return name
}

// resolveIDs finds the Salesforce Ids of Dataverse keys: from the table's memory of keys resolved before,
// else with one Bulk query of the object's Ids (a key is the GUID of its Id, which cannot be inverted). Keys
// without a live record are absent from the answer.
func (g *safeguards) resolveIDs(ctx context.Context, tg *tableGuard, keys []string) (map[string]string, error) {
	out := map[string]string{}
	want := map[uuid.UUID]string{}
	tg.mu.Lock()
	for _, k := range keys {
		if id, ok := tg.ids[k]; ok {
			out[k] = id
			continue
		}
		if u, err := uuid.Parse(k); err == nil {
			want[u] = k
		}
	}
	tg.mu.Unlock()
	if len(want) == 0 {
		return out, nil
	}
	err := tg.rd.liveIDs(ctx, func(id string) error {
		if u, err := sfid.GUID(id); err == nil {
			if k, ok := want[u]; ok {
				out[k] = to18(id)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	tg.mu.Lock()
	if len(tg.ids) > recentLimit {
		tg.ids = map[string]string{}
	}
	for k, id := range out {
		tg.ids[k] = id
	}
	tg.mu.Unlock()
	return out, nil
}

// callCounts snapshots the clients' call counters, to report what a check cost.
func (a *Agent) callCounts() (sf, dv int64) {
	return a.sf.Stats.Total(), a.dv.Stats.Get("requests")
}
