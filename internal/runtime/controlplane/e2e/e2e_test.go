package e2e_test

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/compare"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
	sfemu "github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/schema"
)

// TestActivationDeploysAnAgentThatLoadsStreamsAndReports: a connector with Account and Contact mappings is
// activated; the supervisor of `crmsync serve` starts an agent process; the initial load completes
// (Dataverse equals Salesforce); changes flow; status and `crmsync status` report it all.
func TestActivationDeploysAnAgentThatLoadsStreamsAndReports(t *testing.T) {
	e := newEnv(t, 3000, 600)
	conn, _ := e.createConnector(e.connectorSpec("e2e-activation", e.sb.Info.Dataverse.TeamID))
	if len(agentPIDs(conn.ID)) != 0 {
		t.Fatal("an agent runs before activation")
	}
	act, err := e.c.SetActivation(t.Context(), conn.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range act.Preflight {
		if !c.OK {
			t.Errorf("preflight %s failed: %s", c.Name, c.Message)
		}
	}
	e.waitFor(30*time.Second, "an agent process for the connector", func() bool { return len(agentPIDs(conn.ID)) == 1 })
	pid := agentPIDs(conn.ID)[0]

	st := e.settle(conn.ID, 2*time.Minute)
	e.compareAll()
	if st.Agent == nil || st.Agent.PID != pid {
		t.Errorf("status names agent %+v, want the process %d", st.Agent, pid)
	}

	// Changes flow: updates, creates and deletes made in Salesforce reach Dataverse.
	if _, err := e.sb.Salesforce.Mutate("Contact", 60, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sb.Salesforce.Mutate("Account", 15, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sb.Salesforce.Generate("Contact", 25, ""); err != nil {
		t.Fatal(err)
	}
	ids := e.contactIDs()
	if _, err := e.sb.Salesforce.Transact(sfemu.Transaction{Operations: []sfemu.Operation{{Op: "delete", Object: "Contact", IDs: ids[:5]}}}); err != nil {
		t.Fatal(err)
	}
	st = e.settle(conn.ID, 2*time.Minute)
	e.compareAll()

	// Status reports it all.
	if st.DeployedRevision != st.LatestRevision || st.LatestRevision != conn.Revision+2 {
		t.Errorf("revision deployed %d, latest %d; want both %d (connector + two mappings)", st.DeployedRevision, st.LatestRevision, conn.Revision+2)
	}
	if st.SalesforceCalls == 0 || st.DataverseCalls == 0 {
		t.Errorf("API calls not reported: Salesforce %d, Dataverse %d", st.SalesforceCalls, st.DataverseCalls)
	}
	for _, ts := range st.Tables {
		if ts.Received != ts.Written+ts.DeadLettered+ts.Skipped {
			t.Errorf("%s: received %d != written %d + dead-lettered %d + skipped %d", ts.Table, ts.Received, ts.Written, ts.DeadLettered, ts.Skipped)
		}
		if ts.LoadTotal == 0 || ts.LoadDone < ts.LoadTotal {
			t.Errorf("%s: load progress %d of %d after the initial load", ts.Table, ts.LoadDone, ts.LoadTotal)
		}
		if ts.RetentionSeconds != (72*time.Hour).Seconds() || ts.ReplayAt.IsZero() || ts.ReplayAgeSeconds > 60 {
			t.Errorf("%s: replay position age %.0fs of %.0fs (at %s)", ts.Table, ts.ReplayAgeSeconds, ts.RetentionSeconds, ts.ReplayAt)
		}
	}

	list := e.crmsync("status")
	one := e.crmsync("status", conn.Name)
	js := e.crmsync("status", conn.ID, "--json")
	t.Logf("crmsync status:\n%s\ncrmsync status %s:\n%s\ncrmsync status %s --json:\n%s", list, conn.Name, one, conn.ID, js)
	for _, want := range []string{"e2e-activation", "streaming"} {
		if !strings.Contains(list, want) {
			t.Errorf("crmsync status lacks %q", want)
		}
	}
	// The revision column is the latest revision alone when the agent runs it.
	if !regexp.MustCompile(`streaming\s+3\s`).MatchString(list) {
		t.Errorf("crmsync status does not show revision 3 running:\n%s", list)
	}
	for _, want := range []string{"3 deployed, 3 latest", "Account", "Contact", "REPLAY AGE", "of 72h"} {
		if !strings.Contains(one, want) {
			t.Errorf("crmsync status %s lacks %q", conn.Name, want)
		}
	}
	var doc api.ConnectorStatus
	if err := json.Unmarshal([]byte(js), &doc); err != nil || doc.State != api.StateStreaming || len(doc.Tables) != 2 {
		t.Errorf("crmsync status --json: %v, state %q, %d tables", err, doc.State, len(doc.Tables))
	}
}

// TestTeamWithoutPrivilegesFailsPreflightAndDeploysNothing: activation reports the missing privilege names
// and leaves the connector inactive, with no lease and no agent process.
func TestTeamWithoutPrivilegesFailsPreflightAndDeploysNothing(t *testing.T) {
	e := newEnv(t, 50, 10)
	conn, _ := e.createConnector(e.connectorSpec("e2e-no-privileges", e.sb.Info.Dataverse.TeamWithoutPrivilegesID))
	_, err := e.c.SetActivation(t.Context(), conn.ID, true)
	checks := preflightChecks(t, err)
	var tp *api.PreflightCheck
	for i := range checks {
		if checks[i].Name == "team_privileges" {
			tp = &checks[i]
		} else if !checks[i].OK {
			t.Errorf("check %s failed too: %s", checks[i].Name, checks[i].Message)
		}
	}
	if tp == nil || tp.OK {
		t.Fatalf("team_privileges did not fail: %+v", checks)
	}
	for _, p := range []string{"prvCreateContact", "prvReadContact", "prvWriteContact", "prvAppendContact",
		"prvCreateAccount", "prvReadAccount", "prvWriteAccount", "prvAppendAccount", "prvAppendToAccount"} {
		if !strings.Contains(tp.Message, p) {
			t.Errorf("the failure does not name %s: %s", p, tp.Message)
		}
	}
	if !strings.Contains(err.Error(), "prvCreateContact") {
		t.Errorf("the error message does not name the missing privileges: %v", err)
	}
	act, err := e.c.GetActivation(t.Context(), conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if act.Active || act.DeployedRevision != 0 {
		t.Errorf("activation after a failed preflight: %+v", act)
	}
	// The supervisor reconciles every 5 s and on every change: two periods without an agent or a lease.
	deadline := time.Now().Add(11 * time.Second)
	for time.Now().Before(deadline) {
		if pids := agentPIDs(conn.ID); len(pids) > 0 {
			t.Fatalf("agent processes %v were started for a connector that failed preflight", pids)
		}
		if st := e.status(conn.ID); st.Agent != nil || st.State != api.StateInactive {
			t.Fatalf("status after a failed preflight: state %s, agent %+v", st.State, st.Agent)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestKilledControlPlaneAndAgentLoseNothing: the control plane is SIGKILLed during the initial load twice
// (restarted at once, so its agent re-attaches; and after the lease expired, so a new agent takes over), then
// the agent is SIGKILLed and the supervisor restarts it. Dataverse ends equal to Salesforce.
func TestKilledControlPlaneAndAgentLoseNothing(t *testing.T) {
	e := newEnv(t, 12000, 1500)
	// One writer of small batches against a slow Dataverse stretches the load over many seconds.
	e.sb.Dataverse.Faults().Set(faults.Config{Latency: 60 * time.Millisecond, PathPrefix: "/api/data/"})
	spec := e.connectorSpec("e2e-kill", e.sb.Info.Dataverse.TeamID)
	spec.Tuning.BatchSize, spec.Tuning.PageSize, spec.Tuning.WriteConcurrency = 100, 2000, 1
	conn, _ := e.createConnector(spec)
	if _, err := e.c.SetActivation(t.Context(), conn.ID, true); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 5))
	loadedAt := func(st *api.ConnectorStatus) (done, total int64) {
		for _, ts := range st.Tables {
			done, total = done+ts.LoadDone, total+ts.LoadTotal
		}
		return done, total
	}
	waitLoad := func(frac float64) {
		e.waitFor(2*time.Minute, "the initial load to progress", func() bool {
			st, ok := e.statusOK(conn.ID)
			if !ok {
				return false
			}
			done, total := loadedAt(st)
			return st.State == api.StateInitialLoad && total > 0 && float64(done) >= frac*float64(total)
		})
	}

	waitLoad(0.1 + 0.1*rng.Float64())
	t.Logf("during the initial load, crmsync status:\n%s", e.crmsync("status", conn.Name))
	before := agentPIDs(conn.ID)
	e.killServe()
	time.Sleep(500 * time.Millisecond) // the control plane is down for a moment; its agent keeps loading
	e.startServe()
	// The orphaned agent re-attaches by heartbeat within its 3 s lease: no second agent starts.
	e.waitFor(30*time.Second, "the agent to report to the restarted control plane", func() bool {
		st, ok := e.statusOK(conn.ID)
		return ok && st.Agent != nil && time.Since(st.Agent.HeartbeatAt) < 2*time.Second && (st.State == api.StateInitialLoad || st.State == api.StateStreaming)
	})
	if after := agentPIDs(conn.ID); len(before) != 1 || len(after) != 1 || after[0] != before[0] {
		t.Errorf("agents before the kill %v, after the restart %v: want the same one re-attached", before, after)
	}

	waitLoad(0.35 + 0.1*rng.Float64())
	orphan := agentPIDs(conn.ID)
	e.killServe()
	// Down for longer than the lease: the orphan stops on its own, without writing further.
	e.waitFor(20*time.Second, "the orphaned agent to stop once its lease expired", func() bool { return len(agentPIDs(conn.ID)) == 0 })
	e.startServe()
	e.waitFor(30*time.Second, "a new agent", func() bool {
		pids := agentPIDs(conn.ID)
		return len(pids) == 1 && (len(orphan) == 0 || pids[0] != orphan[0])
	})

	waitLoad(0.6 + 0.1*rng.Float64())
	victim := agentPIDs(conn.ID)
	if len(victim) != 1 {
		t.Fatalf("agents %v, want one", victim)
	}
	if err := syscall.Kill(victim[0], syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.waitFor(30*time.Second, "the supervisor to restart the killed agent", func() bool {
		pids := agentPIDs(conn.ID)
		return len(pids) == 1 && pids[0] != victim[0]
	})
	e.sb.Dataverse.Faults().Reset()

	// Changes made while the load finishes are not lost either.
	for i := 0; i < 5; i++ {
		if _, err := e.sb.Salesforce.Mutate("Contact", 20, ""); err != nil {
			t.Fatal(err)
		}
	}
	st := e.settle(conn.ID, 3*time.Minute)
	e.compareAll()
	if jobs := e.sb.Salesforce.Counters()["bulk.create_job"]; jobs > 6 {
		t.Errorf("%d Bulk jobs for 2 tables over 3 interruptions: loads started over instead of resuming", jobs)
	}
	t.Logf("after the kills, crmsync status:\n%s", e.crmsync("status", conn.Name))
	_ = st
}

// TestMappingChangeRollsTheAgentAndFillsTheAddedColumn: adding a column override to an active connector
// creates a revision; the running agent drains and exits, the supervisor starts the new revision, which
// re-syncs the table so existing records get the new column, without losing changes.
func TestMappingChangeRollsTheAgentAndFillsTheAddedColumn(t *testing.T) {
	e := newEnv(t, 1500, 300)
	conn, maps := e.createConnector(e.connectorSpec("e2e-mapping-change", e.sb.Info.Dataverse.TeamID))
	if _, err := e.c.SetActivation(t.Context(), conn.ID, true); err != nil {
		t.Fatal(err)
	}
	e.settle(conn.ID, 2*time.Minute)
	oldPIDs := agentPIDs(conn.ID)

	// A custom field and column, added through the sandbox admin APIs; existing records get values while
	// the running mapping ignores the field.
	if err := e.sb.Salesforce.AddField("Contact", schema.Field{Name: "Region__c", Label: "Region", Type: "string", Length: 40,
		Nillable: true, Createable: true, Updateable: true}); err != nil {
		t.Fatal(err)
	}
	if err := e.sb.Dataverse.AddColumn("contact", dataverse.CustomColumn{LogicalName: "new_region", Type: "String", MaxLength: 100}); err != nil {
		t.Fatal(err)
	}
	ids := e.contactIDs()
	regions := []string{"EMEA", "AMER", "APAC", "LATAM"}
	var ops []sfemu.Operation
	for i, r := range regions {
		var group []string
		for j := i; j < len(ids); j += len(regions) {
			group = append(group, ids[j])
		}
		ops = append(ops, sfemu.Operation{Op: "update", Object: "Contact", IDs: group, Fields: map[string]any{"Region__c": r}})
	}
	if _, err := e.sb.Salesforce.Transact(sfemu.Transaction{Operations: ops}); err != nil {
		t.Fatal(err)
	}

	spec := maps["Contact"].TableConfig
	spec.Columns = map[string]mapping.ColumnOverride{"new_region": {Source: "Region__c"}}
	m, err := e.c.UpdateMapping(t.Context(), maps["Contact"].ID, spec)
	if err != nil {
		t.Fatal(err)
	}
	// Changes made during the rollout are kept.
	if _, err := e.sb.Salesforce.Mutate("Contact", 30, ""); err != nil {
		t.Fatal(err)
	}
	var resynced bool
	e.waitFor(2*time.Minute, "the new revision to be deployed", func() bool {
		st, ok := e.statusOK(conn.ID)
		if !ok {
			return false
		}
		for _, ts := range st.Tables {
			for _, r := range ts.Recoveries {
				if ts.Table == "Contact" && strings.Contains(r, "mapping change") && strings.Contains(r, "new_region") {
					resynced = true
				}
			}
		}
		return st.DeployedRevision == m.Revision && st.LatestRevision == m.Revision
	})
	if pids := agentPIDs(conn.ID); len(pids) != 1 || (len(oldPIDs) == 1 && pids[0] == oldPIDs[0]) {
		t.Errorf("agents before %v and after %v the change: want a new process at the new revision", oldPIDs, pids)
	}
	st := e.settle(conn.ID, 2*time.Minute)
	for _, ts := range st.Tables {
		for _, r := range ts.Recoveries {
			if ts.Table == "Contact" && strings.Contains(r, "mapping change") {
				resynced = true
			}
		}
	}
	if !resynced {
		t.Error("status never reported the Contact re-sync for the added column")
	}
	contact := compare.Contact(true)
	contact.Columns = append(contact.Columns, compare.Column{Dest: "new_region", Source: "Region__c", Kind: compare.Text})
	e.compareAll(compare.Account(), contact)
	filled := 0
	for _, id := range ids[:40] {
		rec, _ := e.sb.Salesforce.Record("Contact", id)
		if rec["Region__c"] != nil {
			filled++
		}
	}
	if filled == 0 {
		t.Error("the test set no Region__c values")
	}
}

// TestReactivationAfterTheRetentionWindowResyncsAndSaysSo: deactivating stops the agent and keeps its
// checkpoints; reactivating once the stored replay position is older than Salesforce's 72 h retention
// re-syncs every table (applying the changes and deletions made meanwhile) and status says why.
func TestReactivationAfterTheRetentionWindowResyncsAndSaysSo(t *testing.T) {
	e := newEnv(t, 800, 200)
	conn, _ := e.createConnector(e.connectorSpec("e2e-reactivation", e.sb.Info.Dataverse.TeamID))
	if _, err := e.c.SetActivation(t.Context(), conn.ID, true); err != nil {
		t.Fatal(err)
	}
	e.settle(conn.ID, 2*time.Minute)
	if _, err := e.c.SetActivation(t.Context(), conn.ID, false); err != nil {
		t.Fatal(err)
	}
	e.waitFor(30*time.Second, "the agent to drain and exit", func() bool { return len(agentPIDs(conn.ID)) == 0 })
	if st := e.status(conn.ID); st.State != api.StateInactive || len(st.Tables) != 2 {
		t.Errorf("after deactivation: state %s with %d tables reported", st.State, len(st.Tables))
	}

	// Changes while inactive, then four days pass.
	if _, err := e.sb.Salesforce.Mutate("Contact", 40, ""); err != nil {
		t.Fatal(err)
	}
	ids := e.contactIDs()
	if _, err := e.sb.Salesforce.Transact(sfemu.Transaction{Operations: []sfemu.Operation{{Op: "delete", Object: "Contact", IDs: ids[:7]}}}); err != nil {
		t.Fatal(err)
	}
	e.sb.Clock.Advance(80 * time.Hour)

	if _, err := e.c.SetActivation(t.Context(), conn.ID, true); err != nil {
		t.Fatal(err)
	}
	st := e.settle(conn.ID, 2*time.Minute)
	e.compareAll()
	for _, ts := range st.Tables {
		said := false
		for _, r := range ts.Recoveries {
			said = said || strings.Contains(r, "replay ID rejected") && strings.Contains(r, "full re-sync")
		}
		if !said {
			t.Errorf("%s: status does not say the expired replay position forced a re-sync: %q", ts.Table, ts.Recoveries)
		}
	}
	out := e.crmsync("status", conn.Name)
	t.Logf("after reactivation past the retention window, crmsync status:\n%s", out)
	if !strings.Contains(out, "full re-sync") {
		t.Error("crmsync status does not show the re-sync")
	}
}

// TestSIGTERMStopsTheControlPlaneAfterItsAgentsDrained: SIGTERM to `crmsync serve` makes its agents drain
// and commit (none is killed), then the service exits 0; started again, the agent resumes from the committed
// checkpoints instead of loading again.
func TestSIGTERMStopsTheControlPlaneAfterItsAgentsDrained(t *testing.T) {
	e := newEnv(t, 1000, 200)
	conn, _ := e.createConnector(e.connectorSpec("e2e-sigterm", e.sb.Info.Dataverse.TeamID))
	if _, err := e.c.SetActivation(t.Context(), conn.ID, true); err != nil {
		t.Fatal(err)
	}
	e.settle(conn.ID, 2*time.Minute)
	jobs := e.sb.Salesforce.Counters()["bulk.create_job"]
	if _, err := e.sb.Salesforce.Mutate("Contact", 50, ""); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := e.stopServe(45 * time.Second); err != nil {
		t.Fatalf("crmsync serve after SIGTERM: %v", err)
	}
	t.Logf("crmsync serve stopped %s after SIGTERM", time.Since(began).Round(time.Millisecond))
	if pids := agentPIDs(conn.ID); len(pids) != 0 {
		t.Errorf("agents %v outlived the control plane", pids)
	}
	log := e.serveLog()
	for _, bad := range []string{"did not stop in time", "agent died"} {
		if strings.Contains(log, bad) {
			t.Errorf("the control plane's log says %q", bad)
		}
	}
	if !strings.Contains(log, "agent stopped") {
		t.Error("the agent did not log a drained stop")
	}

	e.startServe()
	e.settle(conn.ID, 2*time.Minute)
	e.compareAll()
	if now := e.sb.Salesforce.Counters()["bulk.create_job"]; now != jobs {
		t.Errorf("%d new Bulk jobs after the restart: the agent loaded again instead of resuming", now-jobs)
	}
}

// TestAStaleAgentGivesWayToItsSuccessor: agents started by hand (a control plane without local agents) share
// a connector through its lease. A second agent waits while the first holds it; when the first stops
// renewing (frozen with SIGSTOP, as a partitioned host), the second takes over; the first, thawed, is refused
// with lease_lost and exits non-zero at once, and Dataverse ends equal to Salesforce.
func TestAStaleAgentGivesWayToItsSuccessor(t *testing.T) {
	e := newEnv(t, 1000, 200, "--local-agents=false")
	conn, _ := e.createConnector(e.connectorSpec("e2e-by-hand", e.sb.Info.Dataverse.TeamID))
	if _, err := e.c.SetActivation(t.Context(), conn.ID, true); err != nil {
		t.Fatal(err)
	}
	first := e.startAgent(conn.ID)
	firstDone := make(chan error, 1)
	go func() { firstDone <- first.Wait() }()
	e.settle(conn.ID, 2*time.Minute)

	second := e.startAgent(conn.ID)
	secondDone := make(chan error, 1)
	go func() { secondDone <- second.Wait() }()
	t.Cleanup(func() {
		_ = first.Process.Kill()
		_ = second.Process.Kill()
	})
	// Three lease periods: the second agent waits without taking over.
	deadline := time.Now().Add(9 * time.Second)
	for time.Now().Before(deadline) {
		if st := e.status(conn.ID); st.Agent == nil || st.Agent.PID != first.Process.Pid {
			t.Fatalf("the lease moved to %+v while agent %d renewed it", st.Agent, first.Process.Pid)
		}
		select {
		case err := <-secondDone:
			t.Fatalf("the waiting agent exited: %v", err)
		default:
		}
		time.Sleep(500 * time.Millisecond)
	}

	if err := first.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sb.Salesforce.Mutate("Contact", 30, ""); err != nil {
		t.Fatal(err)
	}
	e.waitFor(time.Minute, "the second agent to take over", func() bool {
		st, ok := e.statusOK(conn.ID)
		return ok && st.Agent != nil && st.Agent.PID == second.Process.Pid
	})
	e.settle(conn.ID, 2*time.Minute)

	if err := first.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-firstDone:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() == 0 {
			t.Errorf("the stale agent exited with %v, want a non-zero exit", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stale agent did not stop within 20 s of being thawed")
	}
	if !strings.Contains(e.serveLog(), "the lease is lost: stopping at once") {
		t.Error("the stale agent did not say it lost its lease")
	}
	e.settle(conn.ID, 2*time.Minute)
	e.compareAll()
	if st := e.status(conn.ID); st.Agent == nil || st.Agent.PID != second.Process.Pid {
		t.Errorf("after the stale agent stopped, status names agent %+v", st.Agent)
	}
}
