package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/backup"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
)

func guid(t *testing.T, id string) string {
	t.Helper()
	g, err := sfid.GUID(id)
	if err != nil {
		t.Fatal(err)
	}
	return g.String()
}

// liveIDs lists the live Ids of an object in the sandbox.
func (e *env) liveIDs(object string) []string {
	e.t.Helper()
	var buf bytes.Buffer
	if err := e.sb.Salesforce.Export(&buf, object); err != nil {
		e.t.Fatal(err)
	}
	var ids []string
	dec := json.NewDecoder(&buf)
	for {
		var rec struct {
			ID        string `json:"Id"`
			IsDeleted bool   `json:"IsDeleted"`
		}
		if err := dec.Decode(&rec); err != nil {
			break
		}
		if !rec.IsDeleted {
			ids = append(ids, rec.ID)
		}
	}
	return ids
}

// dvRows is a Dataverse table as the emulator stores it, by key.
func (e *env) dvRows(table string) map[string]map[string]any {
	e.t.Helper()
	var buf bytes.Buffer
	if err := e.sb.Dataverse.ExportNDJSON(table, &buf); err != nil {
		e.t.Fatal(err)
	}
	out := map[string]map[string]any{}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			e.t.Fatal(err)
		}
		out[row[table+"id"].(string)] = row
	}
	return out
}

// equalsBackup fails the test unless every table of the backup holds exactly the backed-up rows with every
// backed-up column equal (modifiedon aside: Dataverse sets it on every write and it cannot be restored).
func (e *env) equalsBackup(path string) {
	e.t.Helper()
	m, err := backup.ReadManifest(path)
	if err != nil {
		e.t.Fatal(err)
	}
	norm := func(c backup.Column, v any) any {
		switch x := v.(type) {
		case json.Number:
			return x.String()
		case float64:
			return fmt.Sprint(x)
		case string:
			if c.Type != "String" && c.Type != "Memo" {
				return strings.ToLower(x)
			}
		}
		return v
	}
	for _, tm := range m.Tables {
		got := e.dvRows(tm.Table)
		var problems []string
		seen := map[string]bool{}
		for _, c := range tm.Chunks {
			err := backup.ReadChunk(path, c, func(b map[string]any) error {
				key := b[tm.PrimaryID].(string)
				seen[key] = true
				g, ok := got[key]
				if !ok {
					problems = append(problems, "missing "+key)
					return nil
				}
				for _, col := range tm.Columns {
					if col.ReadOnly {
						continue
					}
					if gv, bv := norm(col, g[col.Name]), norm(col, b[col.Property]); !reflect.DeepEqual(gv, bv) {
						problems = append(problems, fmt.Sprintf("%s.%s = %v, the backup has %v", key, col.Name, gv, bv))
					}
				}
				return nil
			})
			if err != nil {
				e.t.Fatal(err)
			}
		}
		for key := range got {
			if !seen[key] {
				problems = append(problems, "extra row "+key)
			}
		}
		sort.Strings(problems)
		if len(problems) > 0 {
			e.t.Errorf("%s differs from the backup (%d rows backed up) in %d ways:\n%s", tm.Table, tm.Rows, len(problems), strings.Join(problems[:min(len(problems), 20)], "\n"))
		} else {
			e.t.Logf("%s equals the backup: %d rows", tm.Table, tm.Rows)
		}
	}
}

// TestBackupSyncRestoreRollsDataverseBackExactly: a backup taken on the first
// activation, a full sync with updates and deletes, then deactivation and a restore that is interrupted
// half-way (the control plane killed) and run again: Dataverse equals the backup exactly.
func TestBackupSyncRestoreRollsDataverseBackExactly(t *testing.T) {
	e := newEnv(t, 40, 12)
	ctx := t.Context()
	dv := e.sb.Dataverse
	accounts, contacts := e.liveIDs("Account"), e.liveIDs("Contact")

	// What Dataverse held before crmsync: rows a migration left under the keys the sync will use, with other
	// values, owned by a person; and rows people made that the sync never touches.
	for i, id := range accounts[:3] {
		if _, err := dv.CreateRow("account", guid(t, id), map[string]any{"name": fmt.Sprintf("Before crmsync %d", i), "accountnumber": fmt.Sprintf("OLD-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i, id := range contacts[:8] {
		vals := map[string]any{"lastname": fmt.Sprintf("Before%d", i), "firstname": "Old", "telephone1": fmt.Sprintf("555-01%02d", i)}
		if i%2 == 0 {
			vals["parentcustomerid"] = map[string]any{"table": "account", "id": guid(t, accounts[i%3])}
		}
		if _, err := dv.CreateRow("contact", guid(t, id), vals); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 2 {
		if _, err := dv.CreateRow("contact", "", map[string]any{"lastname": fmt.Sprintf("Made by a person %d", i),
			"parentcustomerid": map[string]any{"table": "account", "id": guid(t, accounts[0])}}); err != nil {
			t.Fatal(err)
		}
	}

	conn, _ := e.createConnector(e.connectorSpec("e2e-safeguards", e.sb.Info.Dataverse.TeamID))
	act, err := e.c.SetActivation(ctx, conn.ID, true)
	if err != nil {
		t.Fatal(err)
	}
	if act.Backup == nil || act.Backup.Trigger != api.BackupTriggerActivation || !act.BackupBeforeFirstSync {
		t.Fatalf("the first activation took no backup: %+v", act)
	}
	e.settle(conn.ID, 2*time.Minute)
	act, err = e.c.GetActivation(ctx, conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	bak := act.Backup
	if bak.State != api.BackupComplete || bak.Rows != 3+8+2 || bak.Bytes == 0 {
		t.Fatalf("first activation's backup %+v: want complete with 13 rows", bak)
	}
	t.Logf("crmsync backup list:\n%s", e.crmsync("backup", "list", "e2e-safeguards"))

	// The sync overwrites the pre-existing rows, then Salesforce changes: updates, deletes (of records whose
	// rows existed before the sync, among others) and creates.
	if _, err := e.sb.Salesforce.Mutate("Contact", 10, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sb.Salesforce.Transact(salesforce.Transaction{Operations: []salesforce.Operation{
		{Op: "delete", Object: "Contact", IDs: []string{contacts[1], contacts[2], contacts[20]}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sb.Salesforce.Generate("Contact", 5, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sb.Salesforce.Mutate("Account", 3, ""); err != nil {
		t.Fatal(err)
	}
	e.settle(conn.ID, 2*time.Minute)
	if row := e.dvRows("contact")[guid(t, contacts[1])]; row != nil {
		t.Fatalf("the sync did not delete the row of a deleted record: %v", row)
	}

	_, err = e.c.RestoreBackup(ctx, bak.ID, api.RestoreRequest{DeleteCreated: true})
	var ce *client.Error
	if !errors.As(err, &ce) || !errors.Is(err, client.ErrConflict) || !strings.Contains(ce.Body.Message, "deactivate it first") {
		t.Fatalf("a restore while active answered %v; want a conflict saying to deactivate first", err)
	}
	if _, err := e.c.SetActivation(ctx, conn.ID, false); err != nil {
		t.Fatal(err)
	}

	// The restore, slowed down so it can be killed half-way: after the account table, before the contacts.
	dv.Faults().Set(faults.Config{Latency: 150 * time.Millisecond, PathPrefix: "/api/data/"})
	var rs *api.Restore
	e.waitFor(30*time.Second, "the agent to stop and the restore to start", func() bool {
		rs, err = e.c.RestoreBackup(ctx, bak.ID, api.RestoreRequest{DeleteCreated: true})
		return err == nil
	})
	e.waitFor(60*time.Second, "the restore to finish the account table", func() bool {
		r, err := e.c.GetRestore(ctx, rs.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.State != api.RestoreRunning {
			t.Fatalf("the restore ended (%s: %s) before it could be interrupted", r.State, r.Error)
		}
		for _, tb := range r.Tables {
			if tb.Table == "account" && tb.Done == tb.Rows {
				return true
			}
		}
		return false
	})
	e.killServe()
	dv.Faults().Set(faults.Config{})
	e.startServe()
	if r, err := e.c.GetRestore(ctx, rs.ID); err != nil || r.State != api.RestoreFailed || !strings.Contains(r.Error, "interrupted") {
		t.Errorf("the killed restore reads %+v, %v; want failed, interrupted", r, err)
	}

	out := e.crmsync("backup", "restore", bak.ID, "--delete-created")
	t.Logf("crmsync backup restore:\n%s", out)
	if !strings.Contains(out, "complete (resumed an interrupted run)") {
		t.Errorf("the second restore did not resume the first:\n%s", out)
	}
	e.equalsBackup(bak.Path)

	// Running it once more changes nothing.
	again := e.crmsync("backup", "restore", bak.ID, "--delete-created", "--json")
	var r2 api.Restore
	if err := json.Unmarshal([]byte(again), &r2); err != nil {
		t.Fatalf("%v: %s", err, again)
	}
	if r2.Restored != 0 || r2.Deleted != 0 || r2.Failed != 0 || r2.Unchanged != bak.Rows {
		t.Errorf("a restore of a restored table changed something: %+v", r2)
	}
	e.equalsBackup(bak.Path)
	// Stopped here, not by the env's cleanup: the restarted process's log file closes first there.
	if err := e.stopServe(60 * time.Second); err != nil {
		t.Error(err)
	}
}

// TestReconcileOnDemandHealsThroughTheAgent asks a running connector's agent to reconcile (crmsync
// reconcile, through the heartbeat answer) after a row was deleted in Dataverse and another silently altered,
// and reports edits made by a person.
func TestReconcileOnDemandHealsThroughTheAgent(t *testing.T) {
	e := newEnv(t, 30, 8)
	ctx := t.Context()
	spec := e.connectorSpec("e2e-reconcile", e.sb.Info.Dataverse.TeamID)
	spec.Tuning.OutOfBandInterval = api.Duration(time.Second)
	conn, maps := e.createConnector(spec)
	m := maps["Contact"]
	m.RepairOutOfBandEdits = true
	if _, err := e.c.UpdateMapping(ctx, m.ID, m.TableConfig); err != nil {
		t.Fatal(err)
	}
	no := false
	if _, err := e.c.Activate(ctx, conn.ID, api.ActivationRequest{Active: true, BackupBeforeFirstSync: &no}); err != nil {
		t.Fatal(err)
	}
	e.settle(conn.ID, 2*time.Minute)

	ids := e.liveIDs("Contact")
	dv := e.sb.Dataverse
	if err := dv.DeleteRow("contact", guid(t, ids[0])); err != nil {
		t.Fatal(err)
	}
	if err := dv.EditRow("contact", guid(t, ids[1]), map[string]any{"firstname": "Edited by a person"}); err != nil {
		t.Fatal(err)
	}
	e.waitFor(30*time.Second, "the out-of-band edit to be reported and repaired", func() bool {
		st, ok := e.statusOK(conn.ID)
		if !ok {
			return false
		}
		for _, tb := range st.Tables {
			if o := tb.OutOfBand; tb.Table == "Contact" && o != nil && o.Repaired == 1 && len(o.Examples) == 1 && o.Examples[0].RecordID == ids[1] &&
				o.Examples[0].ModifiedBy == strings.ToLower(dv.PersonUserID()) && reflect.DeepEqual(o.Examples[0].Columns, []string{"firstname"}) {
				return true
			}
		}
		return false
	})

	out := e.crmsync("reconcile", "e2e-reconcile")
	t.Logf("crmsync reconcile:\n%s", out)
	if !strings.Contains(out, "missing "+guid(t, ids[0])) {
		t.Errorf("the reconciliation does not report the deleted row:\n%s", out)
	}
	if _, err := dv.Row("contact", guid(t, ids[0])); err != nil {
		t.Errorf("the deleted row was not healed: %v", err)
	}
	e.compareAll()
}
