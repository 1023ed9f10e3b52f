package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
)

const cliToken = "cli-test-token-0123456789"

// cpFixture is an in-process control plane over a store the test fills directly (as agents would through
// the agent protocol).
type cpFixture struct {
	t     *testing.T
	st    *store.SQLite
	url   string
	conn  api.Connector
	lease api.Lease
}

func newCPFixture(t *testing.T) *cpFixture {
	t.Helper()
	st, err := store.OpenSQLite(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv, err := controlplane.New(controlplane.Config{Store: st, Token: cliToken, LeaseTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	f := &cpFixture{t: t, st: st, url: hs.URL}
	ctx := t.Context()
	f.conn, err = st.CreateConnector(ctx, api.ConnectorSpec{Name: "salesforce-prod", TeamID: "6b1a4c1e-2f0d-4d5e-9a51-3f5d0c6a7b10",
		Salesforce: api.SalesforceSettings{LoginURL: "https://login.salesforce.com", Auth: "client_credentials", ClientID: "cid"},
		Dataverse:  api.DataverseSettings{EnvironmentURL: "https://acme.crm.dynamics.com", TenantID: "t", ClientID: "c"}}, nil, "test")
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// activate activates the connector and gives it an agent at the connector's revision.
func (f *cpFixture) activate() {
	f.t.Helper()
	ctx := f.t.Context()
	if _, err := f.st.SetActivation(ctx, f.conn.ID, true, nil, "test"); err != nil {
		f.t.Fatal(err)
	}
	l, err := f.st.AcquireLease(ctx, api.LeaseRequest{ConnectorID: f.conn.ID, AgentID: "agent-1", Host: "box", PID: 42}, time.Hour)
	if err != nil {
		f.t.Fatal(err)
	}
	f.lease = l
}

func (f *cpFixture) report(st api.Status) {
	f.t.Helper()
	st.Revision = f.lease.Revision
	if _, err := f.st.RenewLease(f.t.Context(), f.lease.ID, time.Hour, st); err != nil {
		f.t.Fatal(err)
	}
}

// cli runs crmsync with args against the fixture and returns its exit status and output.
func (f *cpFixture) cli(args ...string) (int, string, string) {
	f.t.Helper()
	f.t.Setenv("CRMSYNC_ENDPOINT", f.url)
	f.t.Setenv("CRMSYNC_TOKEN", cliToken)
	var out, errOut bytes.Buffer
	code := run(f.t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// The reason of a refused write names the missing privilege at its very end; `crmsync status` cut it at 70
// characters ("Principal team (Id=5722e3d8-…-48…").
const longReason = "Contact: writing contact: Dataverse refused the write (HTTP 403, 0x80040220): Principal team " +
	"(Id=5722e3d8-8d9a-4b0e-9f51-3f5d0c6a7b48, type=9, roleCount=1, privilegeCount=812, accessMode=0) is missing " +
	"prvAppendTocontact privilege (Id=8a1c3f0e-...) on OTC=2 for entity 'contact'"

func degradedReport() api.Status {
	now := time.Now().UTC()
	return api.Status{State: api.StateDegraded, Reason: longReason, Tables: []api.TableStatus{
		{Table: "Contact", Destination: "contact", Phase: api.PhaseFailed, Reason: longReason, Received: 10, Written: 9, DeadLettered: 1},
		{Table: "Account", Destination: "account", Phase: api.PhaseStreaming, Received: 5, Written: 5,
			OutOfBand: &api.OutOfBandStatus{Detected: 3, Repaired: 2, Repair: true, CheckedAt: now.Add(-time.Minute),
				Examples: []api.OutOfBandEdit{{RecordID: "001000000000001AAA", Key: "k1", Columns: []string{"telephone1"}, ModifiedByName: "Jane Doe", ModifiedAt: now.Add(-2 * time.Minute), Repaired: true}}},
			Reconcile: &api.ReconcileResult{Trigger: api.ReconcileScheduled, StartedAt: now.Add(-5 * time.Minute), FinishedAt: now.Add(-4 * time.Minute),
				SourceRows: 2000, DestinationRows: 1999, Missing: 1, Healed: 1, SalesforceCalls: 3, DataverseCalls: 7,
				Examples: []api.ReconcileDifference{{Kind: api.DiffMissing, RecordID: "001000000000002AAA", Key: "k2"}}}},
	}}
}

// `status` exited 0 whatever the health and every failure exited 1. It exits 0 healthy, 1 degraded
// or failed, 2 when it cannot run; the list shows the whole reason.
func TestStatusExitsByHealthAndShowsTheWholeReason(t *testing.T) {
	f := newCPFixture(t)
	f.activate()
	f.report(api.Status{State: api.PhaseStreaming, Tables: []api.TableStatus{{Table: "Contact", Destination: "contact", Phase: api.PhaseStreaming}}})
	if code, out, errOut := f.cli("status"); code != exitOK {
		t.Errorf("healthy: exit %d, want 0\n%s%s", code, out, errOut)
	}
	if code, out, errOut := f.cli("status", "salesforce-prod"); code != exitOK {
		t.Errorf("healthy connector: exit %d, want 0\n%s%s", code, out, errOut)
	}

	f.report(degradedReport())
	code, out, errOut := f.cli("status")
	t.Log("\n" + out)
	if code != exitFailed {
		t.Errorf("degraded: exit %d, want 1\n%s", code, errOut)
	}
	if !strings.Contains(out, "for entity 'contact'") {
		t.Errorf("the list cut the reason before the privilege:\n%s", out)
	}
	if errOut != "" {
		t.Errorf("an unhealthy status printed an error besides itself: %q", errOut)
	}
	if code, _, _ := f.cli("status", "--json", "salesforce-prod"); code != exitFailed {
		t.Errorf("degraded, --json: exit %d, want 1", code)
	}

	// Usage and connection errors: 2.
	if code, _, errOut := f.cli("status", "no-such-connector"); code != exitUsage || !strings.Contains(errOut, "no-such-connector") {
		t.Errorf("unknown connector: exit %d (%q), want 2", code, errOut)
	}
	if code, _, _ := f.cli("status", "--no-such-flag"); code != exitUsage {
		t.Errorf("unknown flag: exit %d, want 2", code)
	}
	if code, _, _ := f.cli("status", "a", "b"); code != exitUsage {
		t.Errorf("two arguments: exit %d, want 2", code)
	}
	if code, _, _ := f.cli("no-such-command"); code != exitUsage {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	t.Setenv("CRMSYNC_TOKEN", "wrong")
	var o, e bytes.Buffer
	if code := run(t.Context(), []string{"status"}, &o, &e); code != exitUsage {
		t.Errorf("refused token: exit %d, want 2 (%s)", code, e.String())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()
	t.Setenv("CRMSYNC_TOKEN", cliToken)
	t.Setenv("CRMSYNC_ENDPOINT", closed)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if code := run(ctx, []string{"status"}, &o, &e); code != exitUsage {
		t.Errorf("control plane unreachable: exit %d, want 2 (%s)", code, e.String())
	}
}

// Out-of-band edits and the last reconciliation were only in --json.
func TestStatusShowsOutOfBandEditsAndTheLastReconciliation(t *testing.T) {
	f := newCPFixture(t)
	f.activate()
	f.report(degradedReport())
	_, out, _ := f.cli("status", "salesforce-prod")
	t.Log("\n" + out)
	for _, want := range []string{
		"Out-of-band edits", "Account: 3 found, 2 repaired", "by Jane Doe: telephone1 [repaired]",
		"Last reconciliation", "Account: differed: 2,000 rows in Salesforce, 1,999 in Dataverse", "missing 1", "healed 1",
		"missing k2 (001000000000002AAA)", "3 Salesforce calls, 7 Dataverse requests",
		"prvAppendTocontact privilege (Id=8a1c3f0e-...) on OTC=2 for entity 'contact'",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the connector view lacks %q", want)
		}
	}
}

// After deactivation the revision read "0/8"; WRITTEN restarted at each revision.
func TestStatusAfterDeactivationAndAcrossRevisions(t *testing.T) {
	f := newCPFixture(t)
	ctx := t.Context()
	f.activate()
	f.report(api.Status{State: api.PhaseStreaming, Tables: []api.TableStatus{{Table: "Contact", Destination: "contact", Phase: api.PhaseStreaming, Received: 700, Written: 700}}})
	if err := f.st.ReleaseLease(ctx, f.lease.ID); err != nil {
		t.Fatal(err)
	}
	// A new revision's agent counts from zero.
	changed := f.conn.ConnectorSpec
	changed.TeamID = "0f6c1f9e-7a2b-4c3d-8e4f-5a6b7c8d9e0f"
	if _, err := f.st.UpdateConnector(ctx, f.conn.ID, changed, nil, "test"); err != nil {
		t.Fatal(err)
	}
	l, err := f.st.AcquireLease(ctx, api.LeaseRequest{ConnectorID: f.conn.ID, AgentID: "agent-2", Host: "box", PID: 43}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	f.lease = l
	f.report(api.Status{State: api.PhaseStreaming, Tables: []api.TableStatus{{Table: "Contact", Destination: "contact", Phase: api.PhaseStreaming, Received: 30, Written: 30}}})
	_, out, _ := f.cli("status", "--json", "salesforce-prod")
	var st api.ConnectorStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Tables) != 1 || st.Tables[0].Written != 730 {
		t.Errorf("written after the second revision: %+v, want 730 (700 + 30)", st.Tables)
	}
	// Deactivated: no agent runs.
	if _, err := f.st.SetActivation(ctx, f.conn.ID, false, nil, "test"); err != nil {
		t.Fatal(err)
	}
	if err := f.st.ReleaseLease(ctx, f.lease.ID); err != nil {
		t.Fatal(err)
	}
	_, list, _ := f.cli("status")
	_, view, _ := f.cli("status", "salesforce-prod")
	t.Log("\n" + list + "\n" + view)
	for _, out := range []string{list, view} {
		if strings.Contains(out, "0/2") || strings.Contains(out, "0 deployed") {
			t.Errorf("the revision reads as if revision 0 were deployed:\n%s", out)
		}
	}
	if !strings.Contains(list, "2 (inactive)") || !strings.Contains(view, "2 latest; no agent runs (inactive)") {
		t.Errorf("the inactive connector's revision is not shown as such:\n%s\n%s", list, view)
	}
}

// `crmsync dead-letters`: list, show (reason and payload whole), retry and discard.
func TestDeadLettersCommands(t *testing.T) {
	f := newCPFixture(t)
	f.activate()
	ctx := t.Context()
	now := time.Now().UTC()
	reason := "Dataverse refused the row (HTTP 400, 0x80044331): A validation error occurred. The length of the 'firstname' attribute of the 'contact' entity exceeded the maximum allowed length of '50'."
	dls := []api.DeadLetter{
		{Table: "Contact", RecordID: "003000000000001AAA", Operation: "upsert", Code: "0x80044331", Reason: reason,
			Payload: `{"firstname":"` + strings.Repeat("x", 60) + `","lastname":"Doe"}`, At: now, FirstAt: now.Add(-time.Hour), Attempts: 2},
		{Table: "Contact", RecordID: "003000000000002AAA", Operation: "upsert", Code: "lookup_missing", Reason: "account 001... not synced yet", At: now, FirstAt: now, Attempts: 1},
		{Table: "Account", RecordID: "001000000000003AAA", Operation: "update", Code: "0x80040220", Reason: "missing privilege", At: now, FirstAt: now, Attempts: 1},
	}
	if err := f.st.AddDeadLetters(ctx, f.lease.ID, dls); err != nil {
		t.Fatal(err)
	}

	code, out, errOut := f.cli("dead-letters", "list", "salesforce-prod")
	t.Log("\n" + out)
	if code != exitOK || !strings.Contains(out, "003000000000001AAA") || !strings.Contains(out, "001000000000003AAA") || !strings.Contains(out, "3 dead letter(s)") {
		t.Errorf("list: exit %d (%s)\n%s", code, errOut, out)
	}
	code, out, _ = f.cli("dead-letters", "list", "salesforce-prod", "--table", "Account")
	if code != exitOK || strings.Contains(out, "003000000000001AAA") || !strings.Contains(out, "001000000000003AAA") {
		t.Errorf("list --table Account: exit %d\n%s", code, out)
	}

	code, out, errOut = f.cli("dead-letters", "show", "salesforce-prod", "003000000000001AAA")
	t.Log("\n" + out)
	if code != exitOK || !strings.Contains(out, "maximum allowed length of '50'.") || !strings.Contains(out, `"firstname": "xxxxxxxxxx`) ||
		!strings.Contains(out, "Attempts   1, first failed") {
		t.Errorf("show: exit %d (%s)\n%s", code, errOut, out)
	}
	if code, _, errOut := f.cli("dead-letters", "show", "salesforce-prod", "003000000000009AAA"); code != exitUsage {
		t.Errorf("show of a record with no dead letter: exit %d (%s), want 2", code, errOut)
	}

	if code, _, _ := f.cli("dead-letters", "retry", "salesforce-prod"); code != exitUsage {
		t.Errorf("retry without a selection: exit %d, want 2", code)
	}
	code, out, errOut = f.cli("dead-letters", "retry", "salesforce-prod", "003000000000001AAA")
	if code != exitOK || !strings.Contains(out, "1 dead letter(s) marked for retry") {
		t.Errorf("retry: exit %d (%s) %s", code, errOut, out)
	}
	l, _, err := f.st.ListDeadLetters(ctx, f.conn.ID, store.DeadLetterFilter{RecordIDs: []string{"003000000000001AAA"}})
	if err != nil || len(l) != 1 || l[0].Code != "retry_requested" {
		t.Errorf("after retry: %+v, %v; want code retry_requested", l, err)
	}
	code, out, errOut = f.cli("dead-letters", "discard", "salesforce-prod", "--table", "Account")
	if code != exitOK || !strings.Contains(out, "1 dead letter(s) discarded") {
		t.Errorf("discard --table: exit %d (%s) %s", code, errOut, out)
	}
	code, out, _ = f.cli("dead-letters", "discard", "salesforce-prod", "--all")
	if code != exitOK || !strings.Contains(out, "2 dead letter(s) discarded") {
		t.Errorf("discard --all: exit %d %s", code, out)
	}
	if _, n, _ := f.st.ListDeadLetters(ctx, f.conn.ID, store.DeadLetterFilter{}); n != 0 {
		t.Errorf("%d dead letters left after discard --all", n)
	}
}

// `crmsync version` of a test binary says where it comes from; --json is one document.
func TestVersionCommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"version", "--json"}, &out, &errOut); code != exitOK {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var info struct {
		Version   string `json:"version"`
		GoVersion string `json:"go_version"`
		Platform  string `json:"platform"`
	}
	if err := json.Unmarshal(out.Bytes(), &info); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if info.Version == "" || info.Version == "unknown" || info.GoVersion == "" || info.Platform == "" {
		t.Errorf("version --json: %+v", info)
	}
	out.Reset()
	if code := run(t.Context(), []string{"version"}, &out, &errOut); code != exitOK || !strings.HasPrefix(out.String(), "crmsync ") {
		t.Errorf("version: exit %d, %q", code, out.String())
	}
}
