package backup

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// A restore's progress: restore.json in the backup directory holds the report and where each table
// stands, saved atomically after every chunk, so a restore resumes from its last finished chunk.

// RestoreStateFile records a restore's progress inside the backup directory.
const RestoreStateFile = "restore.json"

// restoreState is restore.json: the report plus where each table stands.
type restoreState struct {
	Report api.Restore  `json:"report"`
	Tables []tableState `json:"tables"`
}

type tableState struct {
	ChunksDone  int  `json:"chunks_done"`
	DeletesDone bool `json:"deletes_done"`
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
