package agent

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// Intents: what a table still owes, kept in its checkpoint (api.Intent). The rules:
//   - An intent is stored before the work it stands for starts, and removed only once that work is done: a
//     load intent when a load with the current mapping finished, a reconcile intent when a reconciliation
//     finished. The catch-up since a time, the deletions since a time and the records to re-read are owed
//     work of the same kind, kept in their own checkpoint fields (CatchUpSince, DeletesSince, RefetchIDs)
//     and cleared only once applied.
//   - A new revision merges what it needs with what is owed: the destination columns whose source changed
//     since the revision that last ran are added to the load intent, so a change that is reverted before its
//     re-sync finished still re-syncs what it may have touched. Columns no longer mapped drop out (their data
//     stays and is no longer updated, as documented for removed columns).
//   - A load is resumed only by an agent with the mapping that started it (LoadMappingHash); any other
//     mapping starts a new Bulk job, whose query has its own columns.
//   - Intents the control plane adds (a restore owes a full re-sync, the deletions since the backup and a
//     reconciliation) carry a sequence number; the agent takes them in when it starts, and the store keeps
//     any an agent had not seen when that agent saves (store.SQLite.SaveCheckpoint).

// planCheckpoint turns the stored checkpoint (nil for a table never synced) into the one this agent runs
// with: intents taken in and merged with what the current mapping needs, phase and load job set to match.
// notes are the recoveries to list.
func (p *positions) planCheckpoint(stored *Checkpoint, now time.Time) (c Checkpoint, notes []string) {
	if stored == nil {
		return Checkpoint{Table: p.table, Phase: PhaseInitialLoad, LoadReason: "initial load", MappingHash: p.mapping.hash,
			MappingColumns: p.mapping.columns, LoadMappingHash: p.mapping.hash, Intents: []api.Intent{{Kind: api.IntentLoad, Reason: "initial load", At: now}}}, nil
	}
	c = *stored
	c.Intents = slices.Clone(stored.Intents)
	loadHash := c.LoadMappingHash
	if loadHash == "" {
		// A checkpoint written before LoadMappingHash existed: the mapping hash was set when the load began.
		loadHash = c.MappingHash
	}
	if c.Phase != PhaseStreaming && !hasIntent(c.Intents, api.IntentLoad) {
		// A load in progress from before intents were kept: it is owed in full.
		c.Intents = append(c.Intents, api.Intent{Kind: api.IntentLoad, Reason: cmp.Or(c.LoadReason, "load"), At: now})
	}
	notes = takeInIntents(&c)
	notes = append(notes, p.followMapping(&c, now)...)
	notes = append(notes, p.planLoad(&c, loadHash)...)
	return c, notes
}

// takeInIntents takes in the intents the control plane added since this table's agents last looked: a
// catch-up or deletions window widens the checkpoint's, any other stays owed.
func takeInIntents(c *Checkpoint) (notes []string) {
	kept := c.Intents[:0]
	for _, in := range c.Intents {
		if in.Seq == 0 || in.Seq <= c.IntentSeq {
			kept = append(kept, in)
			continue
		}
		c.IntentSeq = max(c.IntentSeq, in.Seq)
		notes = append(notes, "owed: "+in.Kind+" ("+in.Reason+")")
		switch in.Kind {
		case api.IntentCatchUp:
			if c.CatchUpSince.IsZero() || in.Since.Before(c.CatchUpSince) {
				c.CatchUpSince = in.Since
			}
		case api.IntentDeletes:
			if c.DeletesSince.IsZero() || in.Since.Before(c.DeletesSince) {
				c.DeletesSince = in.Since
			}
		default:
			kept = append(kept, in)
		}
	}
	c.Intents = kept
	return notes
}

// followMapping brings the checkpoint to the current mapping: columns whose source changed since the
// revision that last ran on this table are owed a load (their values may differ), and a load owed for
// columns the current mapping no longer has is owed no more.
func (p *positions) followMapping(c *Checkpoint, now time.Time) (notes []string) {
	if c.MappingHash != p.mapping.hash {
		if added := p.mapping.addedSince(c); len(added) > 0 {
			c.Intents = mergeLoad(c.Intents, api.Intent{Kind: api.IntentLoad, Reason: "mapping changed: added " + strings.Join(added, ", "), Columns: added, At: now})
			notes = append(notes, "mapping change re-sync ("+strings.Join(added, ", ")+")")
		}
		c.MappingHash, c.MappingColumns = p.mapping.hash, p.mapping.columns
	}
	mapped := map[string]bool{}
	for _, col := range p.mapping.columns {
		mapped[strings.SplitN(col, "<-", 2)[0]] = true
	}
	c.Intents = slices.DeleteFunc(c.Intents, func(in api.Intent) bool {
		return in.Kind == api.IntentLoad && len(in.Columns) > 0 && !slices.ContainsFunc(in.Columns, func(col string) bool { return mapped[col] })
	})
	return notes
}

// planLoad sets the phase and load job to what the intents owe: streaming when no load is owed, a re-sync
// when a streaming table owes one, and a load another mapping started (loadHash) starts over.
func (p *positions) planLoad(c *Checkpoint, loadHash string) (notes []string) {
	load := loadIntents(c.Intents)
	switch {
	case len(load) == 0:
		if c.Phase != PhaseStreaming {
			// Nothing is owed any more (the columns of an unfinished re-sync were all unmapped again): stream
			// from the stored position.
			c.Phase, c.LoadReason, c.LoadJobID, c.LoadLocator, c.LoadDone, c.LoadMappingHash = PhaseStreaming, "", "", "", 0, ""
		}
	case c.Phase == PhaseStreaming:
		c.Phase, c.LoadReason = PhaseResync, loadReason(load)
		c.LoadJobID, c.LoadLocator, c.LoadDone, c.LoadMappingHash = "", "", 0, p.mapping.hash
	default:
		c.LoadReason = loadReason(load)
		if loadHash != p.mapping.hash {
			// Never resume a load another mapping started: its query lacks this mapping's columns, and its
			// written pages hold the other mapping's values. Start over with this mapping.
			if c.LoadJobID != "" {
				notes = append(notes, "load restarted with the current mapping (the stored load had another)")
			}
			c.LoadJobID, c.LoadLocator, c.LoadDone = "", "", 0
		}
		c.LoadMappingHash = p.mapping.hash
	}
	return notes
}

func hasIntent(ins []api.Intent, kind string) bool {
	return slices.ContainsFunc(ins, func(in api.Intent) bool { return in.Kind == kind })
}

func loadIntents(ins []api.Intent) []api.Intent {
	var out []api.Intent
	for _, in := range ins {
		if in.Kind == api.IntentLoad {
			out = append(out, in)
		}
	}
	return out
}

// mergeLoad adds a load intent, merging its columns into an owed load of some columns (a load owed for
// every column already covers them).
func mergeLoad(ins []api.Intent, add api.Intent) []api.Intent {
	for i, in := range ins {
		if in.Kind != api.IntentLoad || in.Seq != 0 {
			continue
		}
		if len(in.Columns) == 0 {
			return ins // a full load is owed already
		}
		if len(add.Columns) == 0 {
			ins[i] = add
			return ins
		}
		for _, col := range add.Columns {
			if !slices.Contains(in.Columns, col) {
				ins[i].Columns = append(ins[i].Columns, col)
			}
		}
		slices.Sort(ins[i].Columns)
		ins[i].Reason = "mapping changed: added " + strings.Join(ins[i].Columns, ", ")
		return ins
	}
	return append(ins, add)
}

// loadReason says why the owed loads run.
func loadReason(load []api.Intent) string {
	var rs []string
	for _, in := range load {
		if !slices.Contains(rs, in.Reason) {
			rs = append(rs, in.Reason)
		}
	}
	return strings.Join(rs, "; ")
}

// withoutIntents returns ins without the intents of kind (the work they stood for is done).
func withoutIntents(ins []api.Intent, kind string) []api.Intent {
	var out []api.Intent
	for _, in := range ins {
		if in.Kind != kind {
			out = append(out, in)
		}
	}
	return out
}

// owedList describes what a checkpoint owes, for status.
func owedList(cp Checkpoint) []string {
	var out []string
	for _, in := range cp.Intents {
		what := in.Kind
		if in.Kind == api.IntentLoad && len(in.Columns) > 0 {
			what += " of " + strings.Join(in.Columns, ", ")
		}
		out = append(out, what+": "+in.Reason)
	}
	if !cp.CatchUpSince.IsZero() {
		out = append(out, "catch_up: rows modified since "+cp.CatchUpSince.UTC().Format(time.RFC3339))
	}
	if !cp.DeletesSince.IsZero() {
		out = append(out, "deletes: deletions since "+cp.DeletesSince.UTC().Format(time.RFC3339))
	}
	if n := len(cp.RefetchIDs); n > 0 {
		out = append(out, fmt.Sprintf("refetch: %d records changed during the load", n))
	}
	return out
}

// addedSince names the destination columns of m that old's mapping did not write from the same source.
func (m mappingID) addedSince(old *Checkpoint) []string {
	stored := map[string]bool{}
	ownerKnown := false
	for _, c := range old.MappingColumns {
		stored[c] = true
		ownerKnown = ownerKnown || strings.HasPrefix(c, ownerColumn+"<-")
	}
	var added []string
	for _, c := range m.columns {
		dest := strings.SplitN(c, "<-", 2)[0]
		if dest == ownerColumn && !ownerKnown {
			// A checkpoint from before the owner was recorded: its rows carry the team of the time, which
			// was this one unless it changed during the upgrade; re-syncing every table for it is not owed.
			continue
		}
		if !stored[c] {
			added = append(added, dest)
		}
	}
	return added
}
