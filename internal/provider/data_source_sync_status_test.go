package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
)

// safeguardsConfig declares two connectors on the sandbox: "acc-safeguards" syncs Contact, repairs out-of-band
// edits, checks for them every second and is activated with the default backup option; "acc-no-backup" syncs
// Account and is activated with backup_before_first_sync = false. A check block reports out-of-band edits
// with their details, and outputs expose the activations' backups (no output reads the data source: its values
// change, and a changed output would make the plan non-empty).
func safeguardsConfig(env *syncEnv) string {
	team := env.sb.Info.Dataverse.TeamID
	noBackup := strings.Replace(env.connectorHCL("acc-no-backup", team),
		`resource "crmsync_connector" "sandbox"`, `resource "crmsync_connector" "nobackup"`, 1)
	withTuning := strings.Replace(env.connectorHCL("acc-safeguards", team), "  salesforce = {", `  tuning = {
    out_of_band_interval = "1s"
  }
  salesforce = {`, 1)
	return env.providerBlock() + withTuning + noBackup + `
resource "crmsync_table_mapping" "contact" {
  connector_id             = crmsync_connector.sandbox.id
  source_table             = "Contact"
  repair_out_of_band_edits = true
}
resource "crmsync_activation" "sandbox" {
  connector_id = crmsync_connector.sandbox.id
  depends_on   = [crmsync_table_mapping.contact]
}

resource "crmsync_table_mapping" "account" {
  connector_id = crmsync_connector.nobackup.id
  source_table = "Account"
}
resource "crmsync_activation" "nobackup" {
  connector_id             = crmsync_connector.nobackup.id
  backup_before_first_sync = false
  depends_on               = [crmsync_table_mapping.account]
}

data "crmsync_sync_status" "sandbox" {
  connector_id = crmsync_activation.sandbox.connector_id
}

check "no_out_of_band_edits" {
  assert {
    condition = data.crmsync_sync_status.sandbox.out_of_band_edits == 0
    error_message = "${data.crmsync_sync_status.sandbox.out_of_band_edits_repaired} of ${data.crmsync_sync_status.sandbox.out_of_band_edits} repaired: ${join("; ", flatten([for t in data.crmsync_sync_status.sandbox.tables : [
      for e in(t.out_of_band == null ? [] : t.out_of_band.examples) :
      "${t.table} ${e.record_id} ${join("+", e.columns)} by ${e.modified_by} repaired=${e.repaired}"
    ]]))}"
  }
}

output "backup" {
  value = crmsync_activation.sandbox.backup
}
output "no_backup" {
  value = crmsync_activation.nobackup.backup
}
output "backup_options" {
  value = [crmsync_activation.sandbox.backup_before_first_sync, crmsync_activation.nobackup.backup_before_first_sync]
}
`
}

// outputs runs `terraform output -json` and decodes each output's value into the matching pointer of into. A
// null output is left out by Terraform, so its pointer keeps its zero value.
func (w *tfWorkdir) outputs(into map[string]any) {
	w.t.Helper()
	run := w.run(0, "output", "-json")
	var outs map[string]struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal([]byte(run.Output), &outs); err != nil {
		w.t.Fatalf("terraform output -json: %v\n%s", err, run.Output)
	}
	for name, ptr := range into {
		o, ok := outs[name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(o.Value, ptr); err != nil {
			w.t.Fatalf("output %s: %v", name, err)
		}
	}
}

// TestAccSafeguards_backupUnlessOptedOutAndOutOfBandEditsReportedAndRepaired applies two connectors with real
// agents: the first activation backs up the destination table by default (the backup is in the activation's
// state and on the control plane) and takes no backup with backup_before_first_sync = false. Then a contact
// edited by a person through the sandbox's Dataverse admin API shows in crmsync_sync_status, with the record,
// the column and who, in a check block's assertion, and is rewritten from Salesforce because the mapping sets
// repair_out_of_band_edits; the plan stays empty throughout.
func TestAccSafeguards_backupUnlessOptedOutAndOutOfBandEditsReportedAndRepaired(t *testing.T) {
	env := startSyncEnv(t, syncOptions{contacts: 20, accounts: 5})
	cfg := safeguardsConfig(env)
	w := newTFWorkdir(t)
	w.Apply(cfg)
	run := w.Plan(cfg)
	if run.Changes || run.Has("warning", "no_out_of_band_edits") {
		t.Fatalf("the plan after apply has changes (%v) or an out-of-band edit:\n%s", run.Changes, run.Output)
	}

	// The backup: by default on the first activation, in state and on the control plane; none when opted out.
	var backup *struct {
		ID     string           `json:"id"`
		State  string           `json:"state"`
		Tables map[string]int64 `json:"tables"`
		Path   string           `json:"path"`
	}
	var noBackup any
	var options []bool
	w.outputs(map[string]any{"backup": &backup, "no_backup": &noBackup, "backup_options": &options})
	if len(options) != 2 || !options[0] || options[1] {
		t.Errorf("backup_before_first_sync = %v, want [true (the default) false]", options)
	}
	if backup == nil || backup.State != api.BackupComplete || backup.Path == "" {
		t.Fatalf("the first activation's backup in state: %+v", backup)
	}
	if _, ok := backup.Tables["contact"]; !ok {
		t.Errorf("the backup does not hold contact: %v", backup.Tables)
	}
	if noBackup != nil {
		t.Errorf("backup_before_first_sync = false has a backup in state: %v", noBackup)
	}
	backupsOf := func(name string) []api.Backup {
		c, err := env.Client.FindConnector(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		bs, err := env.Client.ListBackups(t.Context(), c.ID)
		if err != nil {
			t.Fatal(err)
		}
		return bs
	}
	if bs := backupsOf("acc-safeguards"); len(bs) != 1 || bs[0].ID != backup.ID || bs[0].Trigger != api.BackupTriggerActivation {
		t.Errorf("backups of acc-safeguards on the control plane: %+v, want only %s", bs, backup.ID)
	}
	if bs := backupsOf("acc-no-backup"); len(bs) != 0 {
		t.Errorf("backup_before_first_sync = false, yet the control plane took backups: %+v", bs)
	}

	// A person edits a synced contact in Dataverse.
	ids := contactIDs(t, env)
	g, err := sfid.GUID(ids[0])
	if err != nil {
		t.Fatal(err)
	}
	key := g.String()
	before, err := env.sb.Dataverse.Row("contact", key)
	if err != nil {
		t.Fatalf("the synced contact %s (%s): %v", ids[0], key, err)
	}
	if err := env.sb.Dataverse.EditRow("contact", key, map[string]any{"firstname": "Edited in Dataverse"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "the agent to report the edit repaired", func() bool {
		for _, tb := range env.statusOf(t, "acc-safeguards").Tables {
			if o := tb.OutOfBand; o != nil && o.Repaired >= 1 {
				return true
			}
		}
		return false
	})
	after, err := env.sb.Dataverse.Row("contact", key)
	if err != nil {
		t.Fatal(err)
	}
	if after["firstname"] != before["firstname"] {
		t.Errorf("the edited contact was not repaired: firstname %v, was %v before the edit", after["firstname"], before["firstname"])
	}

	// The status data source reports it: the check block's assertion names the record, the column and who.
	run = w.Plan(cfg)
	person := strings.ToLower(env.sb.Dataverse.PersonUserID())
	want := fmt.Sprintf("1 of 1 repaired: Contact %s firstname by %s repaired=true", ids[0], person)
	if run.Changes || !run.Has("warning", want) {
		t.Fatalf("after the edit the plan has changes (%v) or no check warning %q: %v", run.Changes, want, run.Diagnostics)
	}
	w.Destroy(cfg)
}

// TestWaitForAgent_timeoutWhileBackingUpNamesTheBackup: when the first activation's backup is what holds the
// agent back, the timeout says so, with the backup's progress and how to go on.
func TestWaitForAgent_timeoutWhileBackingUpNamesTheBackup(t *testing.T) {
	st := api.ConnectorStatus{ConnectorID: "con_1", Active: true, State: api.StateBackingUp,
		Reason: "backing up the destination tables before the first sync (backup bak_1): 1,200 rows exported",
		Backup: &api.Backup{ID: "bak_1", State: api.BackupRunning, Blocking: true, Rows: 1200,
			Tables: []api.BackupTable{{Table: "contact", Rows: 1200, Estimated: 4800}}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/connectors/con_1/status" {
			http.Error(w, `{"error":{"code":"not_found","message":"unexpected request"}}`, http.StatusNotFound)
			t.Errorf("unexpected request %s %s", r.Method, r.URL)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	}))
	defer srv.Close()
	c, err := client.New(client.Config{Endpoint: srv.URL, Token: "t"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = waitForAgent(context.Background(), c, "con_1", 1, waitForRunning, 200*time.Millisecond, 1)
	if err == nil {
		t.Fatal("waiting for an agent held back by a backup did not time out")
	}
	for _, want := range []string{"waiting for the backup before the first sync of connector con_1",
		"the backup before the first sync (bak_1) is running: 1200 of about 4800 rows exported (25%)", "apply again to keep waiting"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the timeout lacks %q:\n%v", want, err)
		}
	}
}
