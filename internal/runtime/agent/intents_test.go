package agent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/compare"
)

// TestARevertedMappingChangeNeverResumesTheOldRevisionsLoad: a mapping change (fax ← MobilePhone,
// jobtitle ← Title) starts a re-sync that Dataverse refuses (the team lost its write privilege); the
// privilege comes back and the change is reverted. The reverted revision must reload the table with its own
// columns. Regression: it resumed the previous revision's Bulk job, whose query has no Fax, and wrote
// fax = null over every contact that has one.
func TestARevertedMappingChangeNeverResumesTheOldRevisionsLoad(t *testing.T) {
	e := newEnv(t, 200, 20)
	e.cfg.Tuning.OutOfBandInterval = agent.Duration(-1)
	e.cfg.Tuning.ReconcileInterval = agent.Duration(-1)
	r1 := e.cfg.Tables
	state := t.TempDir()
	r := e.start(t, state)
	e.settle(t, r, time.Minute)
	r.stop()

	// Revision 2, while the team cannot write contacts.
	team := e.sb.Info.Dataverse.TeamID
	if err := e.sb.Dataverse.RevokeTeamPrivileges(team, "prvWriteContact"); err != nil {
		t.Fatal(err)
	}
	e.cfg.Tables = mapping.ResolveAll([]mapping.TableConfig{r1[0].TableConfig, {SourceTable: "Contact", UsePredefined: true,
		Columns: map[string]mapping.ColumnOverride{"fax": {Source: "MobilePhone"}, "jobtitle": {Source: "Title"}}}})
	e.cfg.Revision = 2
	r = e.start(t, state)
	waitFor(t, time.Minute, "the re-sync to start and be refused", func() bool {
		cp, err := r.store.LoadCheckpoint(t.Context(), "Contact")
		ts := tableStatus(r.a.Status(), "Contact")
		return err == nil && cp != nil && cp.LoadJobID != "" && strings.Contains(ts.LastError, "prvWriteContact")
	})
	r.stop()

	// The privilege is back and the change reverted: revision 3 has revision 1's mapping.
	if err := e.sb.Dataverse.GrantTeamPrivileges(team, "", "prvWriteContact"); err != nil {
		t.Fatal(err)
	}
	e.cfg.Tables, e.cfg.Revision = r1, 3
	r = e.start(t, state)
	e.settle(t, r, time.Minute)
	e.compareAll(t, nil)
	reconciled(t, r.a.Status())
}

// TestATeamChangeReassignsEverySyncedRow: the connector's team changes to another team that holds the
// privileges. Every synced row must end owned by the new team, not only the rows written after the change.
// Regression: the team was not part of what a revision owes, so the existing rows kept the old owner while
// status said streaming (a reconciliation found every row different hours later).
func TestATeamChangeReassignsEverySyncedRow(t *testing.T) {
	e := newEnv(t, 40, 8)
	e.cfg.Tuning.OutOfBandInterval = agent.Duration(-1)
	e.cfg.Tuning.ReconcileInterval = agent.Duration(-1)
	state := t.TempDir()
	r := e.start(t, state)
	e.settle(t, r, time.Minute)
	r.stop()

	other := e.sb.Dataverse.TeamWithoutPrivilegesID()
	var privs []string
	for _, table := range []string{"Contact", "Account"} {
		for _, a := range []string{"Create", "Read", "Write", "Delete", "Append", "AppendTo", "Assign", "Share"} {
			privs = append(privs, "prv"+a+table)
		}
	}
	if err := e.sb.Dataverse.GrantTeamPrivileges(other, "", privs...); err != nil {
		t.Fatal(err)
	}
	e.cfg.TeamID, e.cfg.Revision = other, 2
	r = e.start(t, state)
	e.settle(t, r, time.Minute)
	res, err := compare.Compare(e.sb.Salesforce, e.sb.Dataverse, other, nil, compare.Account(), compare.Contact(true))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res {
		t.Log(c)
		if c.Differences() > 0 {
			t.Errorf("after the team change: %s\n  %v", c, c.Examples[:min(3, len(c.Examples))])
		}
	}
}
