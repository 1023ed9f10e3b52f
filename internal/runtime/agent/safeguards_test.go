package agent_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/compare"
)

// dvClient is a Dataverse client with the agent's own credentials: what it writes carries the agent's
// identity, so the out-of-band detector does not see it.
func (e *env) dvClient(t *testing.T) *dataverse.Client {
	t.Helper()
	i := e.sb.Info.Dataverse
	dv, err := dataverse.New(dataverse.Config{EnvironmentURL: i.EnvironmentURL, AuthorityURL: i.AuthorityURL, TenantID: i.TenantID,
		ClientID: i.ClientID, ClientSecret: i.ClientSecret, CAFile: i.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	return dv
}

func keyOf(t *testing.T, id string) string {
	t.Helper()
	g, err := sfid.GUID(id)
	if err != nil {
		t.Fatal(err)
	}
	return g.String()
}

func tableStatus(s agent.Status, table string) agent.TableStatus {
	for _, ts := range s.Tables {
		if ts.Table == table {
			return ts
		}
	}
	return agent.TableStatus{}
}

// firstIDs returns the first n live Ids of an object.
func firstIDs(t *testing.T, e *env, object string, n int) []string {
	t.Helper()
	var buf bytes.Buffer
	if err := e.sb.Salesforce.Export(&buf, object); err != nil {
		t.Fatal(err)
	}
	var ids []string
	dec := json.NewDecoder(&buf)
	for len(ids) < n {
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
	if len(ids) < n {
		t.Fatalf("the sandbox has %d %s records, want %d", len(ids), object, n)
	}
	return ids
}

func TestOutOfBandEditsAreReportedWithWhoAndColumnsAndRepairedWhenAsked(t *testing.T) {
	e := newEnv(t, 30, 10)
	e.cfg.Tables = mapping.ResolveAll([]mapping.TableConfig{
		{SourceTable: "Account", UsePredefined: true},
		{SourceTable: "Contact", UsePredefined: true, RepairOutOfBandEdits: true},
	})
	e.cfg.Tuning.OutOfBandInterval = agent.Duration(time.Second) // the shortest the table of bounds accepts
	e.cfg.Tuning.ReconcileInterval = agent.Duration(-1)
	r := e.start(t, "")
	e.settle(t, r, time.Minute)

	contact, account := firstIDs(t, e, "Contact", 1)[0], firstIDs(t, e, "Account", 1)[0]
	dv := e.sb.Dataverse
	if err := dv.EditRow("contact", keyOf(t, contact), map[string]any{"firstname": "Edited", "telephone1": "555-0000"}); err != nil {
		t.Fatal(err)
	}
	if err := dv.EditRow("account", keyOf(t, account), map[string]any{"name": "Renamed in Dataverse"}); err != nil {
		t.Fatal(err)
	}
	// An edit of a column the mapping does not write is nobody's business.
	other := firstIDs(t, e, "Contact", 2)[1]
	if err := dv.EditRow("contact", keyOf(t, other), map[string]any{"jobtitle": "Not synced"}); err != nil {
		t.Fatal(err)
	}
	// The agent's own writes meanwhile are not edits.
	if _, err := e.sb.Salesforce.Mutate("Contact", 5, ""); err != nil {
		t.Fatal(err)
	}

	waitFor(t, 30*time.Second, "both edits to be reported", func() bool {
		s := r.a.Status()
		c, a := tableStatus(s, "Contact").OutOfBand, tableStatus(s, "Account").OutOfBand
		return c != nil && a != nil && c.Detected >= 1 && a.Detected >= 1 && c.Repaired >= 1
	})
	e.settle(t, r, time.Minute)
	// A few more checks: nothing is reported twice, and the agent's writes are never reported.
	checked := tableStatus(r.a.Status(), "Contact").OutOfBand.CheckedAt
	waitFor(t, 10*time.Second, "three more checks", func() bool {
		return tableStatus(r.a.Status(), "Contact").OutOfBand.CheckedAt.After(checked.Add(500 * time.Millisecond))
	})
	s := r.a.Status()
	c, a := tableStatus(s, "Contact").OutOfBand, tableStatus(s, "Account").OutOfBand
	t.Logf("contact: %+v\naccount: %+v", *c, *a)
	if c.Detected != 1 || c.Repaired != 1 || !c.Repair || len(c.Examples) != 1 {
		t.Fatalf("contact out-of-band status %+v: want exactly one edit, repaired", *c)
	}
	ex := c.Examples[0]
	if ex.RecordID != contact || ex.Key != keyOf(t, contact) || !slices.Equal(ex.Columns, []string{"firstname", "telephone1"}) ||
		ex.ModifiedBy != strings.ToLower(dv.PersonUserID()) || ex.ModifiedByName == "" || ex.ModifiedAt.IsZero() || !ex.Repaired {
		t.Errorf("contact edit %+v: want record %s, columns [firstname telephone1], modified by %s (named), repaired", ex, contact, dv.PersonUserID())
	}
	if a.Detected != 1 || a.Repaired != 0 || a.Repair || len(a.Examples) != 1 || !slices.Equal(a.Examples[0].Columns, []string{"name"}) {
		t.Errorf("account out-of-band status %+v: want one edit of name, reported and not repaired", *a)
	}
	// Repaired: the contact equals Salesforce again; the account keeps the person's edit.
	e.compareAll(t, nil, compare.Contact(true))
	row, err := dv.Row("account", keyOf(t, account))
	if err != nil {
		t.Fatal(err)
	}
	if row["name"] != "Renamed in Dataverse" {
		t.Errorf("the account was rewritten (name %v) though its mapping does not ask for repairs", row["name"])
	}
	reconciled(t, s)
}

func TestReconciliationFindsAndHealsADeletedRowAndASilentlyAlteredColumn(t *testing.T) {
	e := newEnv(t, 40, 10)
	e.cfg.Tuning.OutOfBandInterval = agent.Duration(-1)
	e.cfg.Tuning.ReconcileInterval = agent.Duration(-1)
	r := e.start(t, "")
	e.settle(t, r, time.Minute)

	ids := firstIDs(t, e, "Contact", 2)
	deleted, altered := ids[0], ids[1]
	if err := e.sb.Dataverse.DeleteRow("contact", keyOf(t, deleted)); err != nil {
		t.Fatal(err)
	}
	// Altered with the agent's own identity: no trace the out-of-band detector could see.
	if err := e.dvClient(t).Patch(t.Context(), "contacts", keyOf(t, altered), dataverse.Row{"telephone1": "000-SILENT"}, dataverse.UpdateOnly); err != nil {
		t.Fatal(err)
	}
	if err := r.a.CheckOutOfBand(t.Context()); err != nil {
		t.Fatal(err)
	}
	if oob := tableStatus(r.a.Status(), "Contact").OutOfBand; oob == nil || oob.Detected != 0 {
		t.Fatalf("the out-of-band detector saw the silent change: %+v", oob)
	}

	results := r.a.Reconcile(t.Context())
	if len(results) != 2 {
		t.Fatalf("%d results, want one per table", len(results))
	}
	var con api.ReconcileResult
	for _, res := range results {
		t.Logf("%+v", res)
		if res.Error != "" {
			t.Fatalf("reconciliation failed: %s", res.Error)
		}
		if res.SourceChecksum == "" || res.SourceRows == 0 || res.SalesforceCalls == 0 || res.DataverseCalls == 0 {
			t.Errorf("result %+v lacks counts, checksums or costs", res)
		}
		if res.Examples == nil && res.Match {
			continue
		}
		con = res
	}
	if con.Missing != 1 || con.Different != 1 || con.Extra != 0 || con.Healed != 2 || con.Match || con.DestinationRows != con.SourceRows-1 {
		t.Fatalf("contact reconciliation %+v: want 1 missing, 1 different, 2 healed", con)
	}
	kinds := map[string]api.ReconcileDifference{}
	for _, d := range con.Examples {
		kinds[d.Kind] = d
	}
	if d := kinds[api.DiffMissing]; d.RecordID != deleted || d.Key != keyOf(t, deleted) {
		t.Errorf("missing example %+v, want %s", d, deleted)
	}
	if d := kinds[api.DiffDifferent]; d.RecordID != altered || !slices.Equal(d.Columns, []string{"telephone1"}) {
		t.Errorf("different example %+v, want %s with telephone1", d, altered)
	}
	if con.DifferingRanges == 0 || con.DifferingRanges > 2 || con.Ranges < 2 {
		t.Errorf("%d of %d ranges differed; two changes touch at most two", con.DifferingRanges, con.Ranges)
	}
	e.compareAll(t, nil)
	st := tableStatus(r.a.Status(), "Contact")
	if st.Reconcile == nil || st.Reconcile.Healed != 2 || st.Reconcile.FinishedAt.IsZero() {
		t.Errorf("status does not show the last reconciliation: %+v", st.Reconcile)
	}
	for _, res := range r.a.Reconcile(t.Context()) {
		if !res.Match || res.DifferingRanges != 0 {
			t.Errorf("after healing, the reconciliation of %d rows still differs: %+v", res.SourceRows, res)
		}
	}
	reconciled(t, r.a.Status())
}

// TestReconcileOf100kUnchangedRowsCost measures the API calls of reconciling 100,000 unchanged rows (set
// CRMSYNC_RECONCILE_ROWS to try another size). It prints the figure; it is not timed.
func TestReconcileOf100kUnchangedRowsCost(t *testing.T) {
	n := 100_000
	if v := os.Getenv("CRMSYNC_RECONCILE_ROWS"); v != "" {
		_, _ = fmt.Sscan(v, &n)
	}
	if testing.Short() {
		n = 5_000
	}
	e := newEnv(t, n, 0)
	e.liftExecutionBudget() // 100,000 rows are more than one application user's first window: the test counts calls
	e.cfg.Tables = mapping.ResolveAll([]mapping.TableConfig{{SourceTable: "Contact", UsePredefined: true}})
	e.cfg.Tuning.OutOfBandInterval = agent.Duration(-1)
	e.cfg.Tuning.ReconcileInterval = agent.Duration(-1)
	e.cfg.Tuning.BatchSize = 1000
	r := e.start(t, "")
	waitFor(t, 5*time.Minute, "the load", func() bool { return streaming(r.a.Status()) })
	sf0, dv0 := e.sb.Salesforce.Counters(), e.sb.Dataverse.Counters()
	res := r.a.Reconcile(t.Context())
	if len(res) != 1 || !res[0].Match || res[0].SourceRows != int64(n) || res[0].DestinationRows != int64(n) {
		t.Fatalf("reconciliation of %d unchanged rows: %+v", n, res)
	}
	sfSeen, dvSeen := int64(0), int64(0)
	for k, v := range e.sb.Salesforce.Counters() {
		t.Logf("salesforce %s: %d", k, v-sf0[k])
		if strings.HasPrefix(k, "bulk.") || strings.HasPrefix(k, "rest.") {
			sfSeen += v - sf0[k]
		}
	}
	for k, v := range e.sb.Dataverse.Counters() {
		if k == "read" || k == "metadata" || k == "whoami" {
			dvSeen += v - dv0[k]
		}
	}
	t.Logf("reconciling %d unchanged rows: %d Salesforce calls and %d Dataverse requests (the sandboxes counted %d and %d), %d key ranges",
		n, res[0].SalesforceCalls, res[0].DataverseCalls, sfSeen, dvSeen, res[0].Ranges)
	if max := int64(n/5000) + 2; res[0].DataverseCalls > max {
		t.Errorf("%d Dataverse requests for %d rows; pages of 5,000 need %d", res[0].DataverseCalls, n, max)
	}
}
