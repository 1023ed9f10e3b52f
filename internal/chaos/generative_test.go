package chaos_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/chaos"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/compare"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
)

// The generative test of change: random sequences, from a printed seed, of the routine changes an
// operator makes to a running connector, the failures around them and the writes of both services. After
// each sequence the faults are undone and the system settles; then the oracle (package compare) must find
// Dataverse equal to Salesforce under the final mapping. Throughout, a monitor reads the status and the
// oracle every half second: a moment at which status said healthy (streaming at the latest revision, every
// table streaming with nothing owed) while a difference had lasted longer than the bound through that
// healthy stretch is a "healthy while wrong" failure.
//
// The oracle expects the rows owned by the team in force (a team change reassigns every row).
//
// Sequences run one after another on one environment (a sandbox, `crmsync serve`, one agent process
// restarted whenever it exits), so each starts from the state the previous one settled in; several
// environments share the profile's sequences. CHAOS_SEED repeats a run.

// healthyWrongBound is the documented bound (docs/reliability.md): status reflects a permanent error, and a
// difference the sync should have fixed, within 30 s.
const healthyWrongBound = 30 * time.Second

// generativeSpec sizes the test per profile: environments × sequences each.
func generativeSpec() (envs, perEnv int) {
	if profile.Long {
		return 10, 50
	}
	return 1, 8
}

// contactVariants are the Contact mappings a sequence moves between (reverts included: any variant can
// follow any other), with what the oracle expects of each.
var contactVariants = []struct {
	name    string
	columns map[string]mapping.ColumnOverride
	exclude []string
}{
	{name: "predefined"},
	{name: "+jobtitle", columns: map[string]mapping.ColumnOverride{"jobtitle": {Source: "Title"}}},
	{name: "fax<-MobilePhone", columns: map[string]mapping.ColumnOverride{"fax": {Source: "MobilePhone"}}},
	{name: "-fax", exclude: []string{"fax"}},
	{name: "fax<-MobilePhone+jobtitle", columns: map[string]mapping.ColumnOverride{"fax": {Source: "MobilePhone"}, "jobtitle": {Source: "Title"}}},
}

// contactTable is the oracle's expectation of Contact under a variant.
func contactTable(variant int) compare.Table {
	t := compare.Contact(true)
	v := contactVariants[variant]
	var cols []compare.Column
	for _, c := range t.Columns {
		if slices.Contains(v.exclude, c.Dest) {
			continue
		}
		if o, ok := v.columns[c.Dest]; ok {
			c.Source = o.Source
		}
		cols = append(cols, c)
	}
	if o, ok := v.columns["jobtitle"]; ok {
		cols = append(cols, compare.Column{Dest: "jobtitle", Source: o.Source, Kind: compare.Text})
	}
	t.Columns = cols
	return t
}

// genEnv is one environment of the generative test and the model of what the test has done to it.
type genEnv struct {
	*cpEnv
	spec    api.ConnectorSpec
	variant int // the Contact mapping variant in force
	// Faults in force, undone before settling.
	revoked     bool   // create and write on contact revoked from revokedTeam
	revokedTeam string //
	// onOther: the connector's team is the sandbox's second team; otherGranted: that team holds every
	// privilege on contact and account (it holds none at first).
	onOther, otherGranted bool
	inactive              bool
	backups               []string // complete backups, newest last
	deleted               []string // Salesforce contacts the test deleted (for undeletes)
	// edited are the records whose Dataverse row the test edited since the last settling. The out-of-band
	// detector repairs such an edit within its interval, unless a later write of the sync to the same row
	// (another column) made the agent the row's last modifier first: then only a reconciliation finds it.
	// Settling asks for one and waits for its result; until then the monitor leaves those rows out (status
	// cannot know of an edit nobody has looked at; docs/reliability.md states this bound apart).
	edited map[string]bool

	monMu     sync.Mutex
	healthyAt time.Time            // start of the current healthy stretch (zero when not healthy)
	firstSeen map[string]time.Time // differences seen during the current healthy stretch
	worst     time.Duration        // the longest difference seen while healthy
	violation string               // the first "healthy while wrong" moment
	checks    int
}

// genStats adds up a profile's sequences for the report.
type genStats struct {
	sequences, ops, refused int
	byOp                    map[string]int
	worst                   time.Duration
	settle                  []time.Duration
}

func TestChaosGenerativeChangeSequences(t *testing.T) {
	skipShort(t)
	envs, perEnv := generativeSpec()
	seed := scenarioSeed(t)
	t.Logf("generative test: seed %d (CHAOS_SEED=%d repeats it), %d environment(s) × %d sequences, bound %s", seed, seed, envs, perEnv, healthyWrongBound)
	began := time.Now()
	st := genStats{byOp: map[string]int{}}
	var compared, differences, duplicates int
	for i := range envs {
		ok := t.Run(fmt.Sprintf("env%d", i), func(t *testing.T) {
			c, d, dup := runGenerativeEnv(t, seed+uint64(i)*1_000_003, perEnv, &st)
			compared, differences, duplicates = compared+c, differences+d, duplicates+dup
		})
		if !ok {
			break
		}
	}
	settle := slices.Clone(st.settle)
	slices.Sort(settle)
	p := func(q float64) time.Duration {
		if len(settle) == 0 {
			return 0
		}
		return settle[min(len(settle)-1, int(q*float64(len(settle))))].Round(100 * time.Millisecond)
	}
	var ops []string
	for op, n := range st.byOp {
		ops = append(ops, fmt.Sprintf("%s %d", op, n))
	}
	sort.Strings(ops)
	t.Logf("generative: %d sequences, %d operations (%d refused by the API), settle p50 %s p95 %s max %s, longest difference while healthy %s; operations: %s",
		st.sequences, st.ops, st.refused, p(0.5), p(0.95), p(1), st.worst.Round(100*time.Millisecond), strings.Join(ops, ", "))
	r := chaos.Result{Scenario: "generative/change-sequences", Iterations: st.sequences, Faults: int64(st.ops), Compared: compared,
		Differences: differences, Duplicates: duplicates, Seed: seed, Elapsed: time.Since(began)}
	t.Log(r.Line())
	resultsMu.Lock()
	results = append(results, r)
	resultsMu.Unlock()
}

// runGenerativeEnv runs perEnv sequences on a fresh environment and returns what the last comparison saw.
func runGenerativeEnv(t *testing.T, seed uint64, perEnv int, st *genStats) (compared, differences, duplicates int) {
	t.Setenv("CHAOS_SEED", fmt.Sprint(seed)) // the environment's sandbox and rng follow the sequence seed
	e := &genEnv{cpEnv: newCPEnv(t, fmt.Sprintf("generative-%d", seed%100000), 30, 8), firstSeen: map[string]time.Time{}, edited: map[string]bool{}}
	e.spec = e.connectorSpec()
	e.spec.Tuning.OutOfBandInterval = api.Duration(time.Second)
	e.spec.Tuning.ReconcileInterval = api.Duration(-1)
	e.createConnector(e.spec)
	for _, src := range []string{"Account", "Contact"} {
		m := e.maps[src]
		m.RepairOutOfBandEdits = true
		e.updateMapping(m.ID, m.TableConfig)
		e.maps[src] = m
	}
	e.runAgents()
	e.settleAll(t, 3*time.Minute)
	// The first activation's backup (of the environment before the sync) is one a sequence may restore.
	if bs, err := e.c.ListBackups(t.Context(), e.conn.ID); err == nil {
		for _, b := range bs {
			if b.State == api.BackupComplete {
				e.backups = append(e.backups, b.ID)
			}
		}
	}

	ctx, stopMonitor := context.WithCancel(t.Context())
	monitorDone := make(chan struct{})
	go func() { defer close(monitorDone); e.monitor(ctx) }()
	defer func() { stopMonitor(); <-monitorDone }()

	for seq := range perEnv {
		rng := rand.New(rand.NewPCG(seed, uint64(seq))) //nolint:gosec // a repeatable test sequence
		n := 3 + rng.IntN(5)
		var done []string
		for range n {
			op := e.randomOp(t, rng)
			done = append(done, time.Now().UTC().Format("15:04:05.000")+" "+op)
			st.ops++
			st.byOp[strings.SplitN(op, " ", 2)[0]]++ // the operation's first word
			if strings.Contains(op, "refused") {
				st.refused++
			}
			time.Sleep(time.Duration(rng.IntN(500)) * time.Millisecond)
		}
		t.Logf("sequence %d (seed %d): %s", seq, seed, strings.Join(done, "; "))
		settled := time.Now()
		e.settleAll(t, 3*time.Minute)
		st.settle = append(st.settle, time.Since(settled))
		res := e.compareFinal(t)
		compared, differences, duplicates = 0, 0, 0
		for _, r := range res {
			compared += r.Compared + r.Deleted
			differences += r.Missing + r.Extra + r.Mismatched
			duplicates += r.Duplicates
			if r.Differences() > 0 {
				t.Errorf("sequence %d: after settling, %s\n  %s", seq, r, strings.Join(r.Examples, "\n  "))
			}
		}
		st.sequences++
		e.monMu.Lock()
		violation, worst := e.violation, e.worst
		e.monMu.Unlock()
		st.worst = max(st.worst, worst)
		if violation != "" {
			t.Errorf("sequence %d: healthy while wrong: %s", seq, violation)
		}
		if t.Failed() {
			t.Logf("operations of the failing sequence: %s", strings.Join(done, "; "))
			return compared, differences, duplicates
		}
	}
	return compared, differences, duplicates
}

// randomOp applies one random operation and says what it did.
func (e *genEnv) randomOp(t *testing.T, rng *rand.Rand) string {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	sf, dv := e.sb.Salesforce, e.sb.Dataverse
	object := []string{"Contact", "Contact", "Account"}[rng.IntN(3)]
	switch k := rng.IntN(100); {
	case k < 12:
		n := 1 + rng.IntN(3)
		if _, err := sf.Generate(object, n, ""); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("create %d %s", n, object)
	case k < 26:
		n := 1 + rng.IntN(5)
		if _, err := sf.Mutate(object, n, ""); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("update %d %s", n, object)
	case k < 31:
		// One transaction updating several records alike: one change event listing every record.
		ids := liveIDs(e.sb, "Contact", 3)
		if _, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{{Op: "update", Object: "Contact", IDs: ids,
			Fields: map[string]any{"Department": fmt.Sprintf("Dept %d", rng.IntN(1000))}}}}); err != nil {
			t.Fatal(err)
		}
		return "merged-update 3 Contact"
	case k < 37:
		ids := liveIDs(e.sb, "Contact", 20)
		id := ids[rng.IntN(len(ids))]
		if _, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{{Op: "delete", Object: "Contact", ID: id}}}); err != nil {
			t.Fatal(err)
		}
		e.deleted = append(e.deleted, id)
		return "delete Contact " + id
	case k < 40 && len(e.deleted) > 0:
		id := e.deleted[len(e.deleted)-1]
		e.deleted = e.deleted[:len(e.deleted)-1]
		if _, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{{Op: "undelete", Object: "Contact", ID: id}}}); err != nil {
			t.Fatal(err)
		}
		return "undelete Contact " + id
	case k < 44:
		ids := liveIDs(e.sb, "Contact", 20)
		id := ids[rng.IntN(len(ids))]
		if _, err := sf.InjectGap(salesforce.GapRequest{Object: "Contact", ChangeType: "GAP_UPDATE", IDs: []string{id}, Apply: true,
			Fields: map[string]any{"Title": fmt.Sprintf("Gap %d", rng.IntN(1000))}}); err != nil {
			t.Fatal(err)
		}
		return "gap-update Contact " + id
	case k < 52:
		// A person edits a synced row in Dataverse (the out-of-band detector repairs it).
		ids := liveIDs(e.sb, "Contact", 20)
		id := ids[rng.IntN(len(ids))]
		err := dv.EditRow("contact", sfid.MustGUID(id).String(), map[string]any{"telephone1": fmt.Sprintf("OOB-%d", rng.IntN(1000))})
		e.monMu.Lock()
		e.edited[id] = true
		e.monMu.Unlock()
		return fmt.Sprintf("dataverse-edit contact %s (%v)", id, errOrOK(err))
	case k < 62:
		v := rng.IntN(len(contactVariants))
		m := e.maps["Contact"]
		m.Columns, m.ExcludeColumns = contactVariants[v].columns, contactVariants[v].exclude
		if _, err := e.c.UpdateMapping(ctx, m.ID, m.TableConfig); err != nil {
			return fmt.Sprintf("mapping %s refused (%v)", contactVariants[v].name, err)
		}
		e.maps["Contact"] = m
		e.monMu.Lock()
		e.variant = v
		e.monMu.Unlock()
		return "mapping " + contactVariants[v].name
	case k < 64:
		// The connector's team moves between the sandbox's two teams; a team that lacks the privileges is
		// refused while the connector is active (its activation is refused while inactive).
		spec := e.spec
		if !e.onOther {
			spec.TeamID = e.sb.Dataverse.TeamWithoutPrivilegesID()
		}
		if _, err := e.c.UpdateConnector(ctx, e.conn.ID, spec); err != nil {
			return fmt.Sprintf("team change refused (%v)", oneLine(err))
		}
		e.monMu.Lock()
		e.onOther = !e.onOther
		e.monMu.Unlock()
		return fmt.Sprintf("team change (to the second team: %v, which holds the privileges: %v)", e.onOther, e.otherGranted)
	case k < 67:
		other := e.sb.Dataverse.TeamWithoutPrivilegesID()
		var err error
		if e.otherGranted {
			err = dv.RevokeTeamPrivileges(other, allPrivileges()...)
		} else {
			err = dv.GrantTeamPrivileges(other, "", allPrivileges()...)
		}
		if err != nil {
			t.Fatal(err)
		}
		e.otherGranted = !e.otherGranted
		return fmt.Sprintf("second team's privileges (granted: %v; in force: %v)", e.otherGranted, e.onOther)
	case k < 73:
		team := e.team()
		var err error
		if e.revoked {
			err = dv.GrantTeamPrivileges(e.revokedTeam, "", "prvCreateContact", "prvWriteContact")
		} else {
			err = dv.RevokeTeamPrivileges(team, "prvCreateContact", "prvWriteContact")
			e.revokedTeam = team
		}
		if err != nil {
			t.Fatal(err)
		}
		e.revoked = !e.revoked
		return fmt.Sprintf("privileges (revoked: %v)", e.revoked)
	case k < 79:
		if err := e.setActive(t, e.inactive); err != nil {
			return fmt.Sprintf("activation refused (%s)", oneLine(err))
		}
		return fmt.Sprintf("activation (active: %v)", !e.inactive)
	case k < 83:
		b, err := e.c.CreateBackup(ctx, e.conn.ID)
		if err != nil {
			return fmt.Sprintf("backup refused (%v)", oneLine(err))
		}
		waitFor(t, 2*time.Minute, "the backup to complete", func() bool {
			got, err := e.c.GetBackup(ctx, b.ID)
			return err == nil && (got.State == api.BackupComplete || got.State == api.BackupCancelled)
		})
		if got, err := e.c.GetBackup(ctx, b.ID); err == nil && got.State == api.BackupComplete {
			e.backups = append(e.backups, b.ID)
		}
		return "backup " + b.ID
	case k < 87 && len(e.backups) > 0:
		return e.restore(t, rng)
	case k < 94:
		if e.killAgent() {
			return "kill agent"
		}
		return "kill agent (none ran)"
	default:
		e.killServe()
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Millisecond)
		e.startServe()
		return "kill control plane"
	}
}

func errOrOK(err error) string {
	if err != nil {
		return oneLine(err)
	}
	return "ok"
}

func oneLine(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// setActive activates or deactivates the connector. A fresh agent process takes the lease at once after an
// activation (the one waiting for it may be in a long backoff). An activation the preflight checks refuse
// (the team lacks privileges) is returned: the connector stays inactive.
func (e *genEnv) setActive(t *testing.T, active bool) error {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := e.c.SetActivation(ctx, e.conn.ID, active)
		cancel()
		if err == nil {
			break
		}
		if errors.Is(err, client.ErrPreflightFailed) {
			return err
		}
		if time.Now().After(deadline) {
			t.Fatalf("setting the activation to %v: %v", active, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.inactive = !active
	if active {
		e.killAgent()
	}
	return nil
}

// restore rolls Dataverse back to a backup: deactivate, restore (deleting created rows or not), and leave the
// connector inactive or reactivate it.
func (e *genEnv) restore(t *testing.T, rng *rand.Rand) string {
	ctx := t.Context()
	id := e.backups[rng.IntN(len(e.backups))]
	deleteCreated := rng.IntN(2) == 0
	_ = e.setActive(t, false) // a deactivation runs no check
	var rs *api.Restore
	waitFor(t, time.Minute, "the agent to stop and the restore to start", func() bool {
		var err error
		rs, err = e.c.RestoreBackup(ctx, id, api.RestoreRequest{DeleteCreated: deleteCreated})
		return err == nil
	})
	var final *api.Restore
	waitFor(t, 2*time.Minute, "the restore to finish", func() bool {
		r, err := e.c.GetRestore(ctx, rs.ID)
		if err != nil || r.State == api.RestoreRunning {
			return false
		}
		final = r
		return true
	})
	if rng.IntN(2) == 0 {
		if err := e.setActive(t, true); err != nil {
			return fmt.Sprintf("restore %s delete_created=%v (%s), reactivation refused (%s)", id, deleteCreated, final.State, oneLine(err))
		}
	}
	return fmt.Sprintf("restore %s delete_created=%v (%s: restored %d, deleted %d)", id, deleteCreated, final.State, final.Restored, final.Deleted)
}

// settleAll undoes the faults in force and waits until the connector streams at its latest revision with
// nothing owed, every change written and no dead letter.
func (e *genEnv) settleAll(t *testing.T, timeout time.Duration) {
	t.Helper()
	if e.revoked {
		if err := e.sb.Dataverse.GrantTeamPrivileges(e.revokedTeam, "", "prvCreateContact", "prvWriteContact"); err != nil {
			t.Fatal(err)
		}
		e.revoked = false
	}
	if e.onOther && !e.otherGranted {
		// The team in force lacks the privileges: give them (the connector stays on it).
		if err := e.sb.Dataverse.GrantTeamPrivileges(e.sb.Dataverse.TeamWithoutPrivilegesID(), "", allPrivileges()...); err != nil {
			t.Fatal(err)
		}
		e.otherGranted = true
	}
	if e.inactive {
		if err := e.setActive(t, true); err != nil {
			t.Fatalf("reactivating after the faults were undone: %v", err)
		}
	}
	e.settle(timeout)
	settled := func() bool {
		st, ok := e.status()
		if !ok || !streamingAll(st) {
			return false
		}
		for _, ts := range st.Tables {
			if len(ts.Owed) > 0 {
				return false
			}
		}
		return st.DeadLetters == 0
	}
	waitFor(t, timeout, "nothing owed and no dead letter", settled)
	e.monMu.Lock()
	edited := len(e.edited) > 0
	e.monMu.Unlock()
	if edited {
		var req *api.ReconcileRequest
		waitFor(t, time.Minute, "a reconciliation request to be recorded", func() bool {
			var err error
			req, err = e.c.Reconcile(t.Context(), e.conn.ID)
			return err == nil
		})
		waitFor(t, timeout, "the reconciliation to finish", func() bool {
			st, ok := e.status()
			if !ok || len(st.Tables) == 0 {
				return false
			}
			for _, ts := range st.Tables {
				if ts.Reconcile == nil || ts.Reconcile.RequestID < req.RequestID || ts.Reconcile.FinishedAt.IsZero() {
					return false
				}
			}
			return true
		})
		e.monMu.Lock()
		e.edited = map[string]bool{}
		e.monMu.Unlock()
		waitFor(t, timeout, "nothing owed and no dead letter after the reconciliation", settled)
	}
}

// compareFinal compares the whole dataset under the final mapping.
func (e *genEnv) compareFinal(t *testing.T) []compare.Result {
	t.Helper()
	res, err := compare.Compare(e.sb.Salesforce, e.sb.Dataverse, e.team(), nil, compare.Account(), contactTable(e.variantNow()))
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (e *genEnv) variantNow() int {
	e.monMu.Lock()
	defer e.monMu.Unlock()
	return e.variant
}

// healthy is what the test counts as status saying all is well.
func healthy(st *api.ConnectorStatus) bool {
	if !streamingAll(st) || st.DeadLetters > 0 {
		return false
	}
	for _, ts := range st.Tables {
		if len(ts.Owed) > 0 {
			return false
		}
	}
	return true
}

// monitor checks, every half second, that status never says healthy while a difference lasts longer than
// the bound through the healthy stretch.
func (e *genEnv) monitor(ctx context.Context) {
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := e.c.Status(sctx, e.conn.ID)
		cancel()
		now := time.Now()
		e.monMu.Lock()
		if err != nil || !healthy(st) {
			e.healthyAt, e.firstSeen = time.Time{}, map[string]time.Time{}
			e.monMu.Unlock()
			continue
		}
		if e.healthyAt.IsZero() {
			e.healthyAt = now
		}
		variant := e.variant
		e.monMu.Unlock()
		res, err := compare.Compare(e.sb.Salesforce, e.sb.Dataverse, e.team(), nil, compare.Account(), contactTable(variant))
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				e.t.Logf("monitor: comparing: %v", err)
			}
			continue
		}
		e.monMu.Lock()
		e.checks++
		seen := map[string]bool{}
		for _, r := range res {
			for _, k := range r.Keys {
				if f := strings.Fields(k); len(f) > 1 && e.edited[f[1]] {
					continue // edited out of band: see genEnv.edited
				}
				seen[k] = true
				first, ok := e.firstSeen[k]
				if !ok {
					e.firstSeen[k] = now
					continue
				}
				age := now.Sub(first)
				e.worst = max(e.worst, age)
				if age > healthyWrongBound && e.violation == "" {
					e.violation = fmt.Sprintf("status said %s (revision %d) for %s while %q lasted %s", st.State, st.DeployedRevision,
						now.Sub(e.healthyAt).Round(time.Second), k, age.Round(time.Second))
				}
			}
		}
		for k := range e.firstSeen {
			if !seen[k] {
				delete(e.firstSeen, k)
			}
		}
		e.monMu.Unlock()
	}
}

// team is the team the connector's rows must be owned by: the one in force.
func (e *genEnv) team() string {
	e.monMu.Lock()
	defer e.monMu.Unlock()
	if e.onOther {
		return e.sb.Dataverse.TeamWithoutPrivilegesID()
	}
	return e.sb.Info.Dataverse.TeamID
}

// allPrivileges are every privilege on the synced tables.
func allPrivileges() []string {
	var out []string
	for _, table := range []string{"Contact", "Account"} {
		for _, a := range []string{"Create", "Read", "Write", "Delete", "Append", "AppendTo", "Assign", "Share"} {
			out = append(out, "prv"+a+table)
		}
	}
	return out
}
