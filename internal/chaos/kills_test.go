package chaos_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/compare"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/schema"
)

// TestChaosProcessKills SIGKILLs the agent, the control plane, or both, at random moments (seeded) in four
// phases: during the initial load, during CDC under a steady stream of changes, during configuration
// roll-outs (mapping changes that add and remove columns, each a new revision the agent drains for and a
// re-sync of the table), and during full re-syncs (the replay position expired while everything was down).
// The control plane is restarted at once or after an outage longer than the agent's lease; the agent,
// started by hand as on another host, is restarted whenever it exits. At the end Dataverse must equal
// Salesforce, every field of every record and the deleted set.
func TestChaosProcessKills(t *testing.T) {
	e := newCPEnv(t, "kills/agent+control-plane", profile.Contacts, profile.Accounts)
	// One writer of small batches against a slow Dataverse stretches the initial load over many seconds.
	e.sb.Dataverse.Faults().Set(faults.Config{Latency: 300 * time.Millisecond, PathPrefix: "/api/data/"})
	spec := e.connectorSpec()
	spec.Tuning.BatchSize, spec.Tuning.PageSize, spec.Tuning.WriteConcurrency = 100, 1000, 1
	// A custom field and column for the roll-outs.
	if err := e.sb.Salesforce.AddField("Contact", schema.Field{Name: "Region__c", Label: "Region", Type: "string", Length: 40,
		Nillable: true, Createable: true, Updateable: true}); err != nil {
		t.Fatal(err)
	}
	if err := e.sb.Dataverse.AddColumn("contact", dataverse.CustomColumn{LogicalName: "new_region", Type: "String", MaxLength: 100}); err != nil {
		t.Fatal(err)
	}
	setRegions(t, e.sb)
	e.createConnector(spec)
	e.runAgents()

	quarter := max(1, profile.Kills/5)
	budget := map[string]int{"initial load": quarter, "cdc": profile.Kills - 3*quarter, "roll-out": quarter, "re-sync": quarter}
	byTarget := map[string]int{}
	kills := 0
	kill := func(phase string) {
		time.Sleep(time.Duration(300+e.rng.IntN(2200)) * time.Millisecond)
		st, _ := e.status()
		target := []string{"agent", "agent", "agent", "control plane", "both"}[e.rng.IntN(5)]
		switch target {
		case "agent":
			if !e.killAgent() {
				target = "none (the agent was restarting)"
			}
		case "control plane", "both":
			e.killServe()
			if target == "both" {
				e.killAgent()
			}
			// Down briefly (the agent re-attaches) or for longer than the 3 s lease (it stops, and a new
			// one takes over).
			time.Sleep(time.Duration(e.rng.IntN(5000)) * time.Millisecond)
			e.startServe()
		}
		byTarget[target]++
		kills++
		t.Logf("kill %d (%s): %s at %s", kills, phase, target, e.describe(st))
	}

	// 1. During the initial load (once it runs: the first activation backs up the destination first).
	for i := 0; i < budget["initial load"]; i++ {
		var state string
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if st, ok := e.status(); ok {
				if state = st.State; state == api.StateInitialLoad || state == api.StateStreaming {
					break
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		if state == api.StateStreaming {
			budget["cdc"] += budget["initial load"] - i
			break
		}
		kill("initial load")
	}
	e.sb.Dataverse.Faults().Reset()

	// 2. During CDC under a steady stream of changes (which go on until the end).
	cs := startChanges(t, e.sb, e.seed, 150*time.Millisecond, 1_000_000)
	waitFor(t, 3*time.Minute, "the connector to stream", func() bool {
		st, ok := e.status()
		return ok && st.State == api.StateStreaming
	})
	for i := 0; i < budget["cdc"]; i++ {
		kill("cdc")
	}

	// 3. During roll-outs: the first adds new_region, then fax is excluded and included again in turns
	// (every inclusion re-syncs the table); the last leaves fax included.
	contact := e.maps["Contact"].TableConfig
	faxExcluded := false
	for i := 0; i < budget["roll-out"] || faxExcluded; i++ {
		switch {
		case i == 0:
			contact.Columns = map[string]mapping.ColumnOverride{"new_region": {Source: "Region__c"}}
		case faxExcluded:
			contact.ExcludeColumns, faxExcluded = nil, false
		default:
			contact.ExcludeColumns, faxExcluded = []string{"fax"}, true
		}
		e.updateMapping(e.maps["Contact"].ID, contact)
		if i < budget["roll-out"] {
			kill("roll-out")
		}
	}

	// 4. During full re-syncs: everything goes down, the clock moves past the 72 h retention, everything
	// comes back and re-syncs both tables; kills land while it does. The re-sync is watched for after each
	// jump (a recovery, or a process that resumes it: phase and reason say so); the final status keeps only
	// each table's last 20 recoveries.
	resynced := false
	sawResync := func(st *api.ConnectorStatus) bool {
		for _, ts := range st.Tables {
			if slices.ContainsFunc(ts.Recoveries, func(r string) bool { return strings.Contains(r, "replay ID rejected") }) ||
				(ts.Phase == api.PhaseResync && strings.Contains(ts.Reason, "replay ID")) {
				return true
			}
		}
		return false
	}
	for i := 0; i < budget["re-sync"]; i++ {
		if i%3 == 0 {
			e.killServe()
			e.killAgent()
			e.sb.Clock.Advance(73 * time.Hour)
			e.startServe()
			byTarget["both, retention expired"]++
			kills++
			t.Logf("kill %d (re-sync): both, then the clock moved past the retention window", kills)
			for deadline := time.Now().Add(time.Minute); !resynced && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
				if st, ok := e.status(); ok {
					resynced = sawResync(st)
				}
			}
			continue
		}
		kill("re-sync")
	}

	cs.stop()
	st := e.settle(5 * time.Minute)
	reconciledCP(t, st)
	t.Logf("%d kills %v, %d agent starts, %d changes made", kills, byTarget, e.starts, cs.changes())
	if profile.Kills >= 12 && kills < profile.Kills {
		t.Errorf("%d kills, want %d", kills, profile.Kills)
	}
	resynced = resynced || sawResync(st)
	if !resynced && budget["re-sync"] > 0 {
		t.Error("no table reports a re-sync after the retention window passed")
	}
	withRegion := compare.Contact(true)
	withRegion.Columns = append(withRegion.Columns, compare.Column{Dest: "new_region", Source: "Region__c", Kind: compare.Text})
	e.finish(kills, int64(kills), compare.Account(), withRegion)
}

// updateMapping updates a mapping, retrying while the control plane is down.
func (e *cpEnv) updateMapping(id string, spec mapping.TableConfig) {
	e.t.Helper()
	var err error
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(e.t.Context(), 10*time.Second)
		_, err = e.c.UpdateMapping(ctx, id, spec)
		cancel()
		if err == nil {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	e.t.Fatalf("updating mapping %s: %v", id, err)
}

// setRegions gives every live contact a Region__c value, before the mapping knows the field.
func setRegions(t *testing.T, sb *sandbox.Sandbox) {
	t.Helper()
	ids := liveIDs(sb, "Contact", 1<<30)
	regions := []string{"EMEA", "AMER", "APAC", "LATAM"}
	var ops []salesforce.Operation
	for i, r := range regions {
		var group []string
		for j := i; j < len(ids); j += len(regions) {
			group = append(group, ids[j])
		}
		ops = append(ops, salesforce.Operation{Op: "update", Object: "Contact", IDs: group, Fields: map[string]any{"Region__c": r}})
	}
	if _, err := sb.Salesforce.Transact(salesforce.Transaction{Operations: ops}); err != nil {
		t.Fatal(fmt.Errorf("setting regions: %w", err))
	}
}
