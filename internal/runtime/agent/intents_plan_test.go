package agent

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

func planTable(cols ...string) *positions {
	return &positions{table: "Contact", mapping: mappingID{columns: cols, hash: "hash:" + strings.Join(cols, ",")}}
}

var (
	r1 = []string{"fax<-fax", "lastname<-lastname"}                                                // predefined
	r2 = []string{"fax<-mobilephone", "jobtitle<-title", "lastname<-lastname"}                     // re-pointed and added
	r4 = []string{"fax<-fax", "jobtitle<-title", "lastname<-lastname", "mobilephone<-mobilephone"} // added again
)

func owed(c Checkpoint) []string {
	var out []string
	for _, in := range c.Intents {
		out = append(out, in.Kind+":"+strings.Join(in.Columns, "+"))
	}
	return out
}

// TestIntentsMergeAcrossRevisions walks the rules of planCheckpoint (intents.go) through a sequence of
// revisions whose owed work used to be lost: each revision's intents survive the next.
func TestIntentsMergeAcrossRevisions(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// A table never synced owes its initial load.
	c, _ := planTable(r1...).planCheckpoint(nil, now)
	if c.Phase != PhaseInitialLoad || !slices.Equal(owed(c), []string{"load:"}) || c.LoadMappingHash != planTable(r1...).mapping.hash {
		t.Fatalf("first start: %+v", c)
	}
	// Loaded and streaming with revision 1.
	streaming := Checkpoint{Table: "Contact", Phase: PhaseStreaming, ReplayID: []byte{1}, MappingHash: planTable(r1...).mapping.hash, MappingColumns: r1}
	c, _ = planTable(r1...).planCheckpoint(&streaming, now)
	if c.Phase != PhaseStreaming || len(c.Intents) != 0 {
		t.Fatalf("a restart with the same mapping owes nothing: %+v", c)
	}

	// Revision 2 re-points fax and adds jobtitle: a re-sync of both is owed, stored before it starts.
	c2, notes := planTable(r2...).planCheckpoint(&streaming, now)
	if c2.Phase != PhaseResync || !slices.Equal(owed(c2), []string{"load:fax+jobtitle"}) || len(notes) != 1 ||
		!slices.Equal(c2.MappingColumns, r2) || c2.LoadMappingHash != planTable(r2...).mapping.hash || string(c2.ReplayID) != "\x01" {
		t.Fatalf("revision 2: %+v, notes %q", c2, notes)
	}
	// Its Bulk job started, then it stopped (refused writes, a kill, a new revision).
	c2.LoadJobID, c2.LoadLocator, c2.LoadDone = "750J2", "page2", 100

	// A restart of revision 2 resumes its own job.
	c, _ = planTable(r2...).planCheckpoint(&c2, now)
	if c.LoadJobID != "750J2" || c.LoadLocator != "page2" || c.Phase != PhaseResync {
		t.Fatalf("revision 2 restarted: %+v", c)
	}
	// Revision 3 reverts to revision 1: fax may hold MobilePhone values on the rows already written, so
	// the re-sync is still owed (jobtitle too, though no longer mapped, stays listed until a load ran),
	// and revision 2's job is never resumed.
	c3, notes := planTable(r1...).planCheckpoint(&c2, now)
	if c3.Phase != PhaseResync || c3.LoadJobID != "" || c3.LoadLocator != "" || c3.LoadDone != 0 || c3.LoadMappingHash != planTable(r1...).mapping.hash ||
		!slices.Equal(owed(c3), []string{"load:fax+jobtitle"}) || !slices.Equal(c3.MappingColumns, r1) {
		t.Fatalf("revision 3 (revert): %+v", c3)
	}
	if len(notes) < 2 {
		t.Errorf("revision 3 notes %q: want the re-sync and the restarted load", notes)
	}

	// A revision whose owed columns are all unmapped owes nothing more and streams from its position.
	onlyName := []string{"lastname<-lastname"}
	c4 := Checkpoint{Table: "Contact", Phase: PhaseResync, ReplayID: []byte{1}, MappingHash: planTable(r2...).mapping.hash, MappingColumns: onlyName,
		LoadJobID: "750J2", LoadMappingHash: planTable(r2...).mapping.hash, Intents: []api.Intent{{Kind: api.IntentLoad, Columns: []string{"jobtitle"}}}}
	c, _ = planTable(onlyName...).planCheckpoint(&c4, now)
	if c.Phase != PhaseStreaming || len(c.Intents) != 0 || c.LoadJobID != "" {
		t.Fatalf("nothing owed under the current mapping: %+v", c)
	}

	// Columns added again merge into what is owed.
	c, _ = planTable(r4...).planCheckpoint(&c3, now)
	if !slices.Equal(owed(c), []string{"load:fax+jobtitle+mobilephone"}) {
		t.Fatalf("revision 4: %v", owed(c))
	}

	// Intents the control plane added (a restore) are taken in: the load and the reconciliation stay owed,
	// the deletions move to DeletesSince; IntentSeq remembers them.
	since := now.Add(-time.Hour)
	restored := streaming
	restored.Intents = []api.Intent{{Kind: api.IntentLoad, Reason: "restored", Seq: 1}, {Kind: api.IntentDeletes, Since: since, Seq: 2},
		{Kind: api.IntentReconcile, Seq: 3}}
	c, notes = planTable(r1...).planCheckpoint(&restored, now)
	if c.Phase != PhaseResync || !slices.Equal(owed(c), []string{"load:", "reconcile:"}) || !c.DeletesSince.Equal(since) || c.IntentSeq != 3 || len(notes) != 3 {
		t.Fatalf("after a restore: %+v, notes %q", c, notes)
	}
	// A checkpoint stored before intents existed, mid re-sync, owes that re-sync.
	legacy := Checkpoint{Table: "Contact", Phase: PhaseResync, LoadReason: "replay ID expired", LoadJobID: "750L", MappingHash: planTable(r1...).mapping.hash, MappingColumns: r1}
	c, _ = planTable(r1...).planCheckpoint(&legacy, now)
	if c.LoadJobID != "750L" || !slices.Equal(owed(c), []string{"load:"}) {
		t.Fatalf("legacy load: %+v", c)
	}
}
