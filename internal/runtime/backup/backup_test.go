package backup_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/backup"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
)

// env is a Dataverse sandbox with a client and a small dataset written the way the sync writes (as the
// application user, keys from Salesforce Ids) and the way people write (out of band, random keys).
type env struct {
	sb   *sandbox.Sandbox
	dv   *dataverse.Client
	team string
	// sfIDs are the Salesforce Ids of the rows written as the sync would, by table.
	sfIDs map[string][]string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sandbox")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	i := sb.Info.Dataverse
	dv, err := dataverse.New(dataverse.Config{EnvironmentURL: i.EnvironmentURL, AuthorityURL: i.AuthorityURL, TenantID: i.TenantID,
		ClientID: i.ClientID, ClientSecret: i.ClientSecret, CAFile: i.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	return &env{sb: sb, dv: dv, team: i.TeamID, sfIDs: map[string][]string{}}
}

// sfID returns the n-th Salesforce Id of an object (001 accounts, 003 contacts).
func sfID(prefix string, n int) string {
	id, err := sfid.To18(fmt.Sprintf("%s%012d", prefix, n))
	if err != nil {
		panic(err)
	}
	return id
}

func guidOf(id string) string {
	g, err := sfid.GUID(id)
	if err != nil {
		panic(err)
	}
	return g.String()
}

// syncWrite upserts a row as the sync does: keyed by the GUID of a Salesforce Id, owned by the team.
func (e *env) syncWrite(t *testing.T, set, id string, row dataverse.Row) {
	t.Helper()
	row["ownerid@odata.bind"] = "/teams(" + e.team + ")"
	if err := e.dv.Patch(t.Context(), set, guidOf(id), row, dataverse.Upsert); err != nil {
		t.Fatalf("writing %s %s: %v", set, id, err)
	}
}

// seed writes n accounts and 3n contacts as the sync would, plus two contacts people created.
func (e *env) seed(t *testing.T, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		id := sfID("001", i)
		e.sfIDs["account"] = append(e.sfIDs["account"], id)
		e.syncWrite(t, "accounts", id, dataverse.Row{"name": fmt.Sprintf("Account %d", i), "accountnumber": fmt.Sprintf("A-%04d", i), "numberofemployees": i * 10})
	}
	for i := 1; i <= 3*n; i++ {
		id := sfID("003", i)
		e.sfIDs["contact"] = append(e.sfIDs["contact"], id)
		row := dataverse.Row{"lastname": fmt.Sprintf("Last%d", i), "firstname": fmt.Sprintf("First%d", i), "emailaddress1": fmt.Sprintf("c%d@example.com", i)}
		if i%2 == 0 {
			row["parentcustomerid_account@odata.bind"] = "/accounts(" + guidOf(sfID("001", 1+i%n)) + ")"
		}
		if i%5 == 0 {
			row["birthdate"] = "1980-02-03"
		}
		e.syncWrite(t, "contacts", id, row)
	}
	for i := 0; i < 2; i++ {
		if _, err := e.sb.Dataverse.CreateRow("contact", "", map[string]any{"lastname": fmt.Sprintf("Person-made %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
}

func (e *env) sources() []backup.Source {
	return backup.SourcesOf(mapping.ResolveAll([]mapping.TableConfig{{SourceTable: "Account", UsePredefined: true}, {SourceTable: "Contact", UsePredefined: true}}))
}

// export runs a backup of contact and account into dir with tiny pages, so chunking and resuming show.
func (e *env) export(t *testing.T, dir string, progress func(backup.Manifest)) (*backup.Manifest, error) {
	t.Helper()
	tables, err := backup.PlanTables(t.Context(), e.dv, e.sources())
	if err != nil {
		t.Fatal(err)
	}
	return backup.Export(t.Context(), e.dv, backup.ExportOptions{Dir: dir, PageSize: 7, ChunkPages: 2, Progress: progress,
		Manifest: backup.Manifest{ID: "bak_test", ConnectorID: "con_test", ConnectorName: "test", Revision: 3, Trigger: api.BackupTriggerOnDemand, Tables: tables}})
}

// stored is a table's rows as the emulator stores them, by key.
func (e *env) stored(t *testing.T, table string) map[string]map[string]any {
	t.Helper()
	var buf bytes.Buffer
	if err := e.sb.Dataverse.ExportNDJSON(table, &buf); err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	sc := bufio.NewScanner(&buf)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		out[row[table+"id"].(string)] = row
	}
	return out
}

// backedUp reads every row of a backup's table through the chunk files.
func backedUp(t *testing.T, dir string, m *backup.Manifest, table string) (map[string]map[string]any, backup.TableManifest) {
	t.Helper()
	for _, tm := range m.Tables {
		if tm.Table != table {
			continue
		}
		out := map[string]map[string]any{}
		for _, c := range tm.Chunks {
			if err := backup.ReadChunk(dir, c, func(row map[string]any) error {
				out[row[tm.PrimaryID].(string)] = row
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}
		return out, tm
	}
	t.Fatalf("no table %s in the backup", table)
	return nil, backup.TableManifest{}
}

// equalToBackup fails the test unless the table holds exactly the backed-up rows, every backed-up column
// equal (modifiedon aside: Dataverse sets it on every write).
func (e *env) equalToBackup(t *testing.T, dir string, m *backup.Manifest, table string) {
	t.Helper()
	want, tm := backedUp(t, dir, m, table)
	got := e.stored(t, table)
	var problems []string
	for key, b := range want {
		g, ok := got[key]
		if !ok {
			problems = append(problems, "missing "+key)
			continue
		}
		for _, c := range tm.Columns {
			if c.ReadOnly {
				continue
			}
			gv := g[c.Name]
			bv := b[c.Property]
			if n, ok := bv.(json.Number); ok {
				bv = n.String()
				if f, ok := gv.(float64); ok {
					gv = fmt.Sprint(f)
				}
			}
			if s, ok := gv.(string); ok && c.Type != "String" && c.Type != "Memo" {
				gv = strings.ToLower(s)
			}
			if s, ok := bv.(string); ok && c.Type != "String" && c.Type != "Memo" {
				bv = strings.ToLower(s)
			}
			if !reflect.DeepEqual(gv, bv) {
				problems = append(problems, fmt.Sprintf("%s.%s = %v, backup has %v", key, c.Name, gv, bv))
			}
		}
	}
	for key := range got {
		if _, ok := want[key]; !ok {
			problems = append(problems, "extra "+key)
		}
	}
	sort.Strings(problems)
	if len(problems) > 0 {
		t.Errorf("%s differs from the backup in %d ways:\n%s", table, len(problems), strings.Join(problems[:min(20, len(problems))], "\n"))
	}
}

// ids lists Salesforce Ids from a fixed set: the rows the "sync" wrote.
type ids map[string][]string

func (l ids) IDs(_ context.Context, object string, fn func(string) error) error {
	for _, id := range l[strings.ToLower(object)] {
		if err := fn(id); err != nil {
			return err
		}
	}
	return nil
}

// mess changes Dataverse the way a sync and people do after a backup: updates, deletes, rows created by the
// sync (keys of Salesforce Ids) and by a person (random keys, and one with a Salesforce-shaped key).
func (e *env) mess(t *testing.T) ids {
	t.Helper()
	contacts := e.sfIDs["contact"]
	for i, id := range contacts[:10] {
		e.syncWrite(t, "contacts", id, dataverse.Row{"firstname": fmt.Sprintf("Changed%d", i), "emailaddress1": nil,
			"parentcustomerid_account@odata.bind": "/accounts(" + guidOf(e.sfIDs["account"][0]) + ")"})
	}
	for _, id := range contacts[10:14] {
		if err := e.dv.Delete(t.Context(), "contacts", guidOf(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.sb.Dataverse.EditRow("account", guidOf(e.sfIDs["account"][2]), map[string]any{"name": "Edited by a person", "numberofemployees": 1}); err != nil {
		t.Fatal(err)
	}
	created := ids{"contact": append([]string(nil), contacts...), "account": e.sfIDs["account"]}
	for i := 1; i <= 6; i++ {
		id := sfID("003", 900+i)
		created["contact"] = append(created["contact"], id)
		e.syncWrite(t, "contacts", id, dataverse.Row{"lastname": fmt.Sprintf("New%d", i)})
	}
	if _, err := e.sb.Dataverse.CreateRow("contact", "", map[string]any{"lastname": "Made by a person after the backup"}); err != nil {
		t.Fatal(err)
	}
	// A person created a row whose key looks like the sync's: kept, since the application user did not.
	if _, err := e.sb.Dataverse.CreateRow("contact", guidOf(sfID("003", 999)), map[string]any{"lastname": "Person, sync-shaped key"}); err != nil {
		t.Fatal(err)
	}
	created["contact"] = append(created["contact"], sfID("003", 999))
	return created
}

func TestRestoreBringsDataverseBackToTheBackupExactly(t *testing.T) {
	e := newEnv(t)
	e.seed(t, 8)
	dir := filepath.Join(t.TempDir(), "bak")
	m, err := e.export(t, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rows, _ := m.Rows(); rows != 8+24+2 {
		t.Fatalf("backup holds %d rows, want %d", rows, 8+24+2)
	}
	created := e.mess(t)

	rep, err := backup.Restore(t.Context(), e.dv, backup.RestoreOptions{Dir: dir, RestoreID: "rst_1", DeleteCreated: true, Source: created, BatchSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("restore: restored %d, unchanged %d, deleted %d, kept %d, failed %d", rep.Restored, rep.Unchanged, rep.Deleted, rep.Kept, rep.Failed)
	if rep.Restored != 10+4+1 || rep.Deleted != 6 || rep.Kept != 2 || rep.Failed != 0 || rep.State != api.RestoreComplete {
		t.Errorf("report %+v: want 15 restored (10 updated, 4 deleted contacts, 1 account), 6 deleted, 2 kept, 0 failed", rep)
	}
	// The two rows people created after the backup stay; everything else is the backup.
	for key, row := range e.stored(t, "contact") {
		if ln, _ := row["lastname"].(string); strings.Contains(ln, "after the backup") || strings.Contains(ln, "sync-shaped") {
			if err := e.sb.Dataverse.DeleteRow("contact", key); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.equalToBackup(t, dir, m, "contact")
	e.equalToBackup(t, dir, m, "account")

	again, err := backup.Restore(t.Context(), e.dv, backup.RestoreOptions{Dir: dir, RestoreID: "rst_2", DeleteCreated: true, Source: created})
	if err != nil {
		t.Fatal(err)
	}
	if again.Restored != 0 || again.Deleted != 0 || again.Unchanged != 8+24+2 {
		t.Errorf("a second restore changed something: %+v", again)
	}
}

func TestRestoreInterruptedHalfWayResumesToTheSameResult(t *testing.T) {
	e := newEnv(t)
	e.seed(t, 8)
	dir := filepath.Join(t.TempDir(), "bak")
	m, err := e.export(t, dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	created := e.mess(t)

	ctx, cancel := context.WithCancel(t.Context())
	steps := 0
	_, err = backup.Restore(ctx, e.dv, backup.RestoreOptions{Dir: dir, RestoreID: "rst_1", DeleteCreated: true, Source: created, BatchSize: 5,
		Progress: func(r api.Restore) {
			if steps++; steps == 4 { // a few chunks in: the process dies
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted restore returned %v, want context.Canceled", err)
	}
	rep, err := backup.Restore(t.Context(), e.dv, backup.RestoreOptions{Dir: dir, RestoreID: "rst_2", DeleteCreated: true, Source: created, BatchSize: 5})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Resumed || rep.ID != "rst_1" {
		t.Errorf("the second run did not resume the first: resumed %v, id %s", rep.Resumed, rep.ID)
	}
	if rep.Deleted != 6 || rep.Failed != 0 {
		t.Errorf("resumed report %+v: want 6 deleted, 0 failed", rep)
	}
	for key, row := range e.stored(t, "contact") {
		if ln, _ := row["lastname"].(string); strings.Contains(ln, "after the backup") || strings.Contains(ln, "sync-shaped") {
			if err := e.sb.Dataverse.DeleteRow("contact", key); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.equalToBackup(t, dir, m, "contact")
	e.equalToBackup(t, dir, m, "account")
}

func TestExportResumesAfterACrashFromTheLastFinishedChunk(t *testing.T) {
	e := newEnv(t)
	e.seed(t, 8)
	dir := filepath.Join(t.TempDir(), "bak")
	ctx, cancel := context.WithCancel(t.Context())
	chunks := 0
	tables, err := backup.PlanTables(t.Context(), e.dv, e.sources())
	if err != nil {
		t.Fatal(err)
	}
	_, err = backup.Export(ctx, e.dv, backup.ExportOptions{Dir: dir, PageSize: 7, ChunkPages: 2,
		Manifest: backup.Manifest{ID: "bak_test", ConnectorID: "con_test", Revision: 3, Tables: tables},
		Progress: func(m backup.Manifest) {
			if chunks++; chunks == 2 {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted export returned %v, want context.Canceled", err)
	}
	// A chunk written but not recorded (the crash came between the rename and the manifest) is dropped.
	partial, err := backup.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(dir, "contact", "000099.ndjson.gz")
	if err := os.WriteFile(stray, []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	reads := e.sb.Dataverse.Counters()["read"]
	m, err := backup.Export(t.Context(), e.dv, backup.ExportOptions{Dir: dir, PageSize: 7, ChunkPages: 2})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stray); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the unlisted chunk file is still there: %v", err)
	}
	var done int64
	for _, tm := range partial.Tables {
		done += tm.Rows
	}
	// 34 rows at 7 a page: a full export reads 7 pages; the resumed one only what was left.
	resumedReads := e.sb.Dataverse.Counters()["read"] - reads
	t.Logf("interrupted after %d rows; the resumed export read %d pages", done, resumedReads)
	if done == 0 || resumedReads >= 7 {
		t.Errorf("the resume read %d pages after %d rows were done; it should start after the last finished chunk", resumedReads, done)
	}
	for _, table := range []string{"contact", "account"} {
		got, _ := backedUp(t, dir, m, table)
		if want := e.stored(t, table); len(got) != len(want) {
			t.Errorf("%s: the resumed backup holds %d rows, the table %d", table, len(got), len(want))
		}
	}
	if m.CompletedAt == nil || m.Revision != 3 {
		t.Errorf("manifest %+v: want complete at revision 3", m)
	}
}
