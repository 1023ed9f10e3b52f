package controlplane

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
)

// syncBuffer is a log sink safe for concurrent handlers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func get(t *testing.T, e *env, path string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, e.http.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSecretsAreWriteOnly(t *testing.T) {
	logs := &syncBuffer{}
	e := newEnv(t, func(c *Config) {
		c.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx := t.Context()
	key := testKey(t)
	spec := connectorSpec("secretive")
	spec.Salesforce.Auth, spec.Salesforce.Username, spec.Salesforce.PrivateKey = "jwt_bearer", "int@acme.example", key
	c, err := e.client.CreateConnector(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	e.createMapping(t, c.ID, "Contact")
	spec.Salesforce.APIVersion = "63.0" // an update that leaves the secrets out keeps them
	spec.Salesforce.ClientSecret, spec.Salesforce.PrivateKey, spec.Dataverse.ClientSecret = "", "", ""
	if _, err := e.client.UpdateConnector(ctx, c.ID, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.SetActivation(ctx, c.ID, true); err != nil {
		t.Fatal(err)
	}
	canaries := []string{"sf-canary-secret-5f2e", "dv-canary-secret-9b7c", strings.Split(key, "\n")[1], testToken}
	var answers strings.Builder
	for _, p := range []string{"/v1/connectors", "/v1/connectors/" + c.ID, "/v1/connectors?name=secretive", "/v1/connectors/" + c.ID + "/mappings",
		"/v1/connectors/" + c.ID + "/activation", "/v1/connectors/" + c.ID + "/status", "/v1/audit", "/v1/audit?connector_id=" + c.ID, "/metrics"} {
		answers.WriteString(get(t, e, p))
	}
	for _, s := range canaries {
		if strings.Contains(answers.String(), s) {
			t.Errorf("an API answer holds the secret %.20q", s)
		}
		if strings.Contains(logs.String(), s) {
			t.Errorf("the log holds the secret %.20q", s)
		}
	}
	got, err := e.client.GetConnector(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"dataverse.client_secret", "salesforce.client_secret", "salesforce.private_key"}; strings.Join(got.SecretsSet, ",") != strings.Join(want, ",") {
		t.Errorf("secrets_set %v, want %v", got.SecretsSet, want)
	}
	// The checker and the agent's lease get them decrypted.
	e.checker.mu.Lock()
	if e.checker.secrets[store.SecretDataverseClientSecret] != "dv-canary-secret-9b7c" {
		t.Errorf("preflight got secrets %v", e.checker.secrets)
	}
	e.checker.mu.Unlock()
	l, err := e.acquire(t, "a1", api.LeaseRequest{ConnectorID: c.ID, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if l.Config.Dataverse.ClientSecret != "dv-canary-secret-9b7c" || l.Config.Salesforce.PrivateKey != key || l.Config.Salesforce.ClientSecret != "sf-canary-secret-5f2e" {
		t.Errorf("the lease lacks the decrypted secrets: %+v", l.Config.Salesforce)
	}
	// The recorded revision config holds none.
	cfg, err := e.store.RevisionConfig(ctx, c.ID, got.Revision)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(cfg); bytes.Contains(b, []byte("canary")) {
		t.Errorf("the revision config holds a secret: %s", b)
	}
}

func TestASecretGivenByReferenceReplacesTheStoredOne(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Refs = policy.Refs{EnvPrefixes: []string{"CRMSYNC_"}} })
	ctx := t.Context()
	c := e.createConnector(t, "moving")
	spec := connectorSpec("moving")
	spec.Dataverse.ClientSecret, spec.Dataverse.ClientSecretEnv = "", "CRMSYNC_DV_SECRET"
	spec.Salesforce.ClientSecret = ""
	up, err := e.client.UpdateConnector(ctx, c.ID, spec)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(up.SecretsSet, ",") != "salesforce.client_secret" || up.Dataverse.ClientSecretEnv != "CRMSYNC_DV_SECRET" {
		t.Errorf("after moving to a reference: secrets_set %v, dataverse %+v", up.SecretsSet, up.Dataverse)
	}
	e.createMapping(t, c.ID, "Account")
	l, err := e.acquire(t, "a1", api.LeaseRequest{ConnectorID: c.ID, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if l.Config.Dataverse.ClientSecret != "" || l.Config.Dataverse.ClientSecretEnv != "CRMSYNC_DV_SECRET" {
		t.Errorf("the agent would use the old inline secret: %+v", l.Config.Dataverse)
	}
}

func TestEveryChangeBumpsTheRevisionAndNotifiesTheDeployer(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.createConnector(t, "revs")
	rev := func() int64 {
		t.Helper()
		got, err := e.client.GetConnector(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		return got.Revision
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"create mapping", func() error {
			_, err := e.client.CreateMapping(ctx, c.ID, mapping.TableConfig{SourceTable: "Contact", UsePredefined: true})
			return err
		}},
		{"update connector", func() error {
			s := connectorSpec("revs")
			s.TeamID = "11111111-2222-4333-8444-555555555555"
			_, err := e.client.UpdateConnector(ctx, c.ID, s)
			return err
		}},
		{"rotate a secret", func() error {
			s := connectorSpec("revs")
			s.TeamID = "11111111-2222-4333-8444-555555555555"
			s.Dataverse.ClientSecret = "rotated"
			_, err := e.client.UpdateConnector(ctx, c.ID, s)
			return err
		}},
		{"update mapping", func() error {
			ms, err := e.client.ListMappings(ctx, c.ID)
			if err != nil {
				return err
			}
			_, err = e.client.UpdateMapping(ctx, ms[0].ID, mapping.TableConfig{SourceTable: "Contact", UsePredefined: true, ExcludeColumns: []string{"fax"}})
			return err
		}},
		{"add a second mapping", func() error {
			_, err := e.client.CreateMapping(ctx, c.ID, mapping.TableConfig{SourceTable: "Account", UsePredefined: true})
			return err
		}},
		{"delete mapping", func() error {
			ms, err := e.client.ListMappings(ctx, c.ID)
			if err != nil {
				return err
			}
			return e.client.DeleteMapping(ctx, ms[0].ID)
		}},
	}
	want := int64(1)
	for _, s := range steps {
		before := e.deployer.count(c.ID)
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		want++
		if got := rev(); got != want {
			t.Errorf("after %s: revision %d, want %d", s.name, got, want)
		}
		if e.deployer.count(c.ID) <= before {
			t.Errorf("after %s: the deployer was not told", s.name)
		}
	}
	// The same spec again changes nothing: no new revision, so the agent does not roll for a retried PUT.
	s := connectorSpec("revs")
	s.TeamID = "11111111-2222-4333-8444-555555555555"
	s.Dataverse.ClientSecret, s.Salesforce.ClientSecret = "rotated", ""
	if _, err := e.client.UpdateConnector(ctx, c.ID, s); err != nil {
		t.Fatal(err)
	}
	if got := rev(); got != want {
		t.Errorf("an update that changes nothing moved the revision to %d", got)
	}
	// Every revision's agent config is recorded; the latest has the remaining mapping only.
	cfg, err := e.store.RevisionConfig(ctx, c.ID, want)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Revision != want || len(cfg.Tables) != 1 || cfg.Tables[0].SourceTable != "Contact" || cfg.TeamID != s.TeamID {
		t.Errorf("revision %d config: %+v", want, cfg)
	}
	for r := int64(1); r <= want; r++ {
		if _, err := e.store.RevisionConfig(ctx, c.ID, r); err != nil {
			t.Errorf("revision %d: %v", r, err)
		}
	}
	entries, err := e.client.Audit(ctx, c.ID, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(steps)+1 {
		t.Errorf("%d audit entries, want %d (create and one per change)", len(entries), len(steps)+1)
	}
}

func TestAStaleLeaseCannotWriteAfterANewAgentTookOver(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.LeaseTTL = 10 * time.Second })
	ctx := t.Context()
	c := e.createConnector(t, "fenced")
	e.createMapping(t, c.ID, "Contact")
	a, err := e.acquire(t, "agent-a", api.LeaseRequest{ConnectorID: c.ID, Host: "host-a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.by(a.ID).SaveCheckpoint(ctx, a.ID, api.Checkpoint{Table: "Contact", Phase: "streaming", ReplayID: []byte{1}}); err != nil {
		t.Fatal(err)
	}
	// While A's lease lives, B waits.
	if _, err := e.acquire(t, "agent-b", api.LeaseRequest{ConnectorID: c.ID, Host: "host-b"}); !errors.Is(err, client.ErrConflict) {
		t.Fatalf("B acquired a held lease: %v", err)
	}
	e.clock.Advance(11 * time.Second) // A stops renewing
	b, err := e.acquire(t, "agent-b", api.LeaseRequest{ConnectorID: c.ID, Host: "host-b"})
	if err != nil {
		t.Fatal(err)
	}
	cp, err := e.by(b.ID).Checkpoint(ctx, b.ID, "Contact")
	if err != nil || cp == nil || !bytes.Equal(cp.ReplayID, []byte{1}) {
		t.Fatalf("B reads %+v, %v; want A's checkpoint", cp, err)
	}
	if err := e.by(b.ID).SaveCheckpoint(ctx, b.ID, api.Checkpoint{Table: "Contact", Phase: "streaming", ReplayID: []byte{2}}); err != nil {
		t.Fatal(err)
	}
	// A wakes up: every write and renewal is refused.
	for name, err := range map[string]error{
		"checkpoint": e.by(a.ID).SaveCheckpoint(ctx, a.ID, api.Checkpoint{Table: "Contact", Phase: "streaming", ReplayID: []byte{1}}),
		"dead letters": e.by(a.ID).AddDeadLetters(ctx, a.ID, []api.DeadLetter{{Table: "Contact", RecordID: "003000000000001AAA",
			Operation: "upsert", Code: "x", At: e.clock.Now()}}),
		"resolve": e.by(a.ID).ResolveDeadLetter(ctx, a.ID, api.ResolveRequest{Table: "Contact", RecordID: "003000000000001AAA", Before: e.clock.Now()}),
	} {
		if !errors.Is(err, client.ErrLeaseLost) {
			t.Errorf("stale %s write: %v, want lease lost", name, err)
		}
	}
	if _, err := e.by(a.ID).Heartbeat(ctx, a.ID, api.Heartbeat{}); !errors.Is(err, client.ErrLeaseLost) {
		t.Errorf("stale heartbeat: %v, want lease lost", err)
	}
	if _, err := e.by(a.ID).Checkpoint(ctx, a.ID, "Contact"); !errors.Is(err, client.ErrLeaseLost) {
		t.Errorf("stale checkpoint read: %v, want lease lost", err)
	}
	cp, err = e.by(b.ID).Checkpoint(ctx, b.ID, "Contact")
	if err != nil || !bytes.Equal(cp.ReplayID, []byte{2}) {
		t.Errorf("B's checkpoint is %+v, %v; want B's own", cp, err)
	}
	// A stale release does not end B's lease.
	if err := e.by(a.ID).ReleaseLease(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.by(b.ID).Heartbeat(ctx, b.ID, api.Heartbeat{}); err != nil {
		t.Errorf("B lost its lease to A's release: %v", err)
	}
}

func TestAnExpiredLeaseNotTakenOverRenews(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.LeaseTTL = 10 * time.Second })
	ctx := t.Context()
	c := e.createConnector(t, "reattach")
	l, err := e.acquire(t, "agent-a", api.LeaseRequest{ConnectorID: c.ID, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute) // the control plane was down; nobody took the connector meanwhile
	hb, err := e.by(l.ID).Heartbeat(ctx, l.ID, api.Heartbeat{Status: api.Status{State: "streaming", Revision: l.Revision}})
	if err != nil {
		t.Fatalf("the agent could not re-attach: %v", err)
	}
	if !hb.ExpiresAt.After(e.clock.Now()) {
		t.Errorf("renewed until %s, before now", hb.ExpiresAt)
	}
}

func TestConcurrentUpdatesOfOneMappingLeaveAConsistentState(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.createConnector(t, "racy")
	m := e.createMapping(t, c.ID, "Contact")
	const writers = 8
	var wg sync.WaitGroup
	errs := make(chan error, writers*2)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			spec := mapping.TableConfig{SourceTable: "Contact", UsePredefined: true, Columns: map[string]mapping.ColumnOverride{
				"jobtitle": {Source: "Title"}, fmt.Sprintf("new_field%d", i): {Source: fmt.Sprintf("Field%d__c", i)}}}
			if _, err := e.client.UpdateMapping(ctx, m.ID, spec); err != nil {
				errs <- err
			}
			// Conflicting creates of one table: exactly one may win.
			if _, err := e.client.CreateMapping(ctx, c.ID, mapping.TableConfig{SourceTable: "Account", UsePredefined: true}); err != nil && !errors.Is(err, client.ErrConflict) {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ms, err := e.client.ListMappings(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Fatalf("%d mappings, want Contact and one Account", len(ms))
	}
	conn, err := e.client.GetConnector(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	// 1 create + 1 mapping + 8 updates + 1 Account.
	if conn.Revision != 1+1+writers+1 {
		t.Errorf("revision %d, want %d", conn.Revision, 1+1+writers+1)
	}
	final, err := e.client.GetMapping(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(final.Columns) != 2 {
		t.Errorf("the mapping mixes updates: %v", final.Columns)
	}
	// The latest revision's config is exactly the stored mappings.
	cfg, err := e.store.RevisionConfig(ctx, c.ID, conn.Revision)
	if err != nil {
		t.Fatal(err)
	}
	var contact mapping.TableConfig
	for _, tc := range cfg.Tables {
		if tc.SourceTable == "Contact" {
			contact = tc.TableConfig
		}
	}
	got, _ := json.Marshal(contact)
	want, _ := json.Marshal(final.TableConfig)
	var wantSpec mapping.TableConfig
	_ = json.Unmarshal(want, &wantSpec)
	wantSpec.DestinationTable = "" // the stored spec keeps the declared (empty) destination
	want, _ = json.Marshal(wantSpec)
	if len(cfg.Tables) != 2 || string(got) != string(want) {
		t.Errorf("latest revision config %s, stored mapping %s", got, want)
	}
}

func TestActivationRunsPreflightAndStoresNothingWhenItFails(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.createConnector(t, "act")
	e.createMapping(t, c.ID, "Contact")
	before := e.deployer.count(c.ID)
	e.checker.mu.Lock()
	e.checker.checks = []api.PreflightCheck{
		{Name: "salesforce_credentials", OK: true, Message: "ok"},
		{Name: "team_privileges", Message: "the team lacks prvCreatecontact, prvAppendcontact on contact"},
		{Name: "change_topics", Message: "/data/ContactChangeEvent is not subscribable"},
	}
	e.checker.mu.Unlock()
	_, err := e.client.SetActivation(ctx, c.ID, true)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 422 || !errors.Is(err, client.ErrPreflightFailed) {
		t.Fatalf("activation with failed checks: %v, want 422 preflight_failed", err)
	}
	var checks []api.PreflightCheck
	if err := json.Unmarshal(ce.Body.Details, &checks); err != nil || len(checks) != 3 {
		t.Fatalf("details %s: %v", ce.Body.Details, err)
	}
	if !strings.Contains(ce.Body.Message, "prvCreatecontact") || !strings.Contains(ce.Body.Message, "ContactChangeEvent") {
		t.Errorf("the message does not name every failure: %s", ce.Body.Message)
	}
	a, err := e.client.GetActivation(ctx, c.ID)
	if err != nil || a.Active {
		t.Errorf("after a failed preflight: %+v, %v; want inactive", a, err)
	}
	if e.deployer.count(c.ID) != before {
		t.Error("the deployer was told about a failed activation")
	}
	e.checker.mu.Lock()
	e.checker.checks = passingChecks()
	e.checker.mu.Unlock()
	a, err = e.client.SetActivation(ctx, c.ID, true)
	if err != nil || !a.Active || len(a.Preflight) != 3 || a.ActivatedAt == nil || a.DesiredRevision != 2 {
		t.Fatalf("activation: %+v, %v", a, err)
	}
	if e.deployer.count(c.ID) != before+1 {
		t.Error("the deployer was not told about the activation")
	}
	// Activating again is idempotent: no new checks.
	runs := e.checker.runs()
	if _, err := e.client.SetActivation(ctx, c.ID, true); err != nil || e.checker.runs() != runs {
		t.Errorf("re-activation ran preflight again (%v)", err)
	}
	a, err = e.client.SetActivation(ctx, c.ID, false)
	if err != nil || a.Active || a.DeactivatedAt == nil {
		t.Errorf("deactivation: %+v, %v", a, err)
	}
}

func TestActivationWithoutMappingsOrCheckerIsRefused(t *testing.T) {
	e := newEnv(t)
	c := e.createConnector(t, "empty")
	_, err := e.client.SetActivation(t.Context(), c.ID, true)
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Body.Code != CodePreflightFailed || !strings.Contains(ce.Body.Message, "no table mappings") {
		t.Errorf("activating without mappings: %v", err)
	}
	e2 := newEnv(t, func(c *Config) { c.Checker = nil })
	c2 := e2.createConnector(t, "nochecker")
	e2.createMapping(t, c2.ID, "Contact")
	if _, err := e2.client.SetActivation(t.Context(), c2.ID, true); !errors.As(err, &ce) || ce.Status != 503 || ce.Body.Code != CodeUnavailable {
		t.Errorf("activating without a checker: %v, want 503 unavailable", err)
	}
	if _, err := e2.client.ValidateMapping(t.Context(), api.ValidateRequest{ConnectorID: c2.ID, Live: true, Mapping: mapping.TableConfig{SourceTable: "Contact"}}); !errors.As(err, &ce) || ce.Status != 503 {
		t.Errorf("live validation without a checker: %v, want 503", err)
	}
}

func TestDeletingAnActiveConnectorDeactivatesItFirst(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.createConnector(t, "doomed")
	e.createMapping(t, c.ID, "Contact")
	if _, err := e.client.SetActivation(ctx, c.ID, true); err != nil {
		t.Fatal(err)
	}
	l, err := e.acquire(t, "a", api.LeaseRequest{ConnectorID: c.ID, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.client.DeleteConnector(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	entries, err := e.client.Audit(ctx, c.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 2 || entries[0].Action != "connector.delete" || entries[1].Action != "connector.deactivate" {
		t.Errorf("audit: %+v; want deactivate, then delete", entries)
	}
	if _, err := e.by(l.ID).Heartbeat(ctx, l.ID, api.Heartbeat{}); !errors.Is(err, client.ErrLeaseLost) {
		t.Errorf("the agent of a deleted connector heartbeats: %v", err)
	}
	if act, err := e.store.ListActive(ctx); err != nil || len(act) != 0 {
		t.Errorf("active after delete: %v %v", act, err)
	}
}

func TestLiveValidationUsesTheConnectorsSchemas(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.createConnector(t, "live")
	src := mapping.StandardSource("Contact")
	src.Fields = append(src.Fields, mapping.SourceField{Name: "Region__c", Type: "string", Length: 40})
	dst := mapping.StandardDestination("contact")
	dst.Columns = append(dst.Columns, mapping.DestColumn{LogicalName: "new_region", AttributeType: "String", MaxLength: 20, ValidForCreate: true, ValidForUpdate: true})
	e.checker.mu.Lock()
	e.checker.src, e.checker.dst, e.checker.count = src, dst, 4321
	e.checker.mu.Unlock()
	spec := mapping.TableConfig{SourceTable: "Contact", UsePredefined: true, Columns: map[string]mapping.ColumnOverride{
		"new_region": {Source: "Region__c"}, "new_missing": {Source: "Nope__c"}}}
	static, err := e.client.ValidateMapping(ctx, api.ValidateRequest{Mapping: spec})
	if err != nil || static.Live || static.EstimatedRecords != nil {
		t.Fatalf("static: %+v %v", static, err)
	}
	for _, p := range static.Problems {
		if p.Severity == mapping.Error {
			t.Errorf("static validation cannot know custom fields, yet: %+v", p)
		}
	}
	live, err := e.client.ValidateMapping(ctx, api.ValidateRequest{ConnectorID: c.ID, Live: true, Mapping: spec})
	if err != nil {
		t.Fatal(err)
	}
	codes := map[string]string{}
	for _, p := range live.Problems {
		codes[p.Column+"/"+p.Code] = string(p.Severity)
	}
	if live.EstimatedRecords == nil || *live.EstimatedRecords != 4321 || !live.Live {
		t.Errorf("live answer %+v", live)
	}
	if codes["new_missing/"+mapping.CodeUnknownSource] == "" && codes["new_missing/"+mapping.CodeUnknownDestination] == "" {
		t.Errorf("live validation missed the unknown column: %v", codes)
	}
	if codes["new_region/"+mapping.CodeSourceLonger] == "" {
		t.Errorf("live validation missed the 40 > 20 length: %v", codes)
	}
	e.checker.mu.Lock()
	e.checker.liveErr = errors.New("dataverse: 401")
	e.checker.mu.Unlock()
	var ce *client.Error
	if _, err := e.client.ValidateMapping(ctx, api.ValidateRequest{ConnectorID: c.ID, Live: true, Mapping: spec}); !errors.As(err, &ce) || ce.Status != 502 {
		t.Errorf("live validation with an unreachable side: %v, want 502", err)
	}
}

func TestDeadLettersCanBeRetriedAndDiscarded(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.createConnector(t, "dl")
	l, err := e.acquire(t, "a", api.LeaseRequest{ConnectorID: c.ID, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	var dls []api.DeadLetter
	for i := range 5 {
		dls = append(dls, api.DeadLetter{Table: "Contact", RecordID: fmt.Sprintf("0030000000000%02dAAA", i), Operation: "upsert", Code: "0x8004", Reason: "refused", At: now, FirstAt: now})
	}
	dls = append(dls, api.DeadLetter{Table: "Account", RecordID: "001000000000001AAA", Operation: "upsert", Code: "0x8004", Reason: "refused", At: now, FirstAt: now})
	if err := e.by(l.ID).AddDeadLetters(ctx, l.ID, dls); err != nil {
		t.Fatal(err)
	}
	// The same record again counts an attempt and keeps its first failure.
	later := now.Add(time.Minute)
	if err := e.by(l.ID).AddDeadLetters(ctx, l.ID, []api.DeadLetter{{Table: "Contact", RecordID: dls[0].RecordID, Operation: "upsert", Code: "0x8004", Reason: "again", At: later}}); err != nil {
		t.Fatal(err)
	}
	list, err := e.client.DeadLetters(ctx, c.ID, "Contact", 2)
	if err != nil || list.Total != 5 || len(list.DeadLetters) != 2 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	if d := list.DeadLetters[0]; d.RecordID != dls[0].RecordID || d.Attempts != 2 || !d.FirstAt.Equal(now) || d.Reason != "again" {
		t.Errorf("re-dead-lettered record: %+v", d)
	}
	res, err := e.client.RetryDeadLetters(ctx, c.ID, api.DeadLetterAction{Table: "Contact", RecordIDs: []string{dls[1].RecordID, dls[2].RecordID}})
	if err != nil || res.Affected != 2 {
		t.Fatalf("retry: %+v, %v", res, err)
	}
	asked, err := e.by(l.ID).RetryableDeadLetters(ctx, l.ID, "Contact", "retry_requested", time.Time{}, 100)
	if err != nil || len(asked) != 2 {
		t.Errorf("the agent sees %d dead letters to retry (%v), want 2", len(asked), err)
	}
	if err := e.by(l.ID).ResolveDeadLetter(ctx, l.ID, api.ResolveRequest{Table: "Contact", RecordID: dls[1].RecordID, Before: now}); err != nil {
		t.Fatal(err)
	}
	if list, _ := e.client.DeadLetters(ctx, c.ID, "", 0); list.Total != 6 {
		t.Errorf("a resolve with before ≤ the failure removed it: total %d", list.Total)
	}
	if err := e.by(l.ID).ResolveDeadLetter(ctx, l.ID, api.ResolveRequest{Table: "Contact", RecordID: dls[1].RecordID, Before: later}); err != nil {
		t.Fatal(err)
	}
	res, err = e.client.DiscardDeadLetters(ctx, c.ID, api.DeadLetterAction{Table: "Account"})
	if err != nil || res.Affected != 1 {
		t.Fatalf("discard: %+v, %v", res, err)
	}
	if list, _ := e.client.DeadLetters(ctx, c.ID, "", 0); list.Total != 4 {
		t.Errorf("after resolving one and discarding one: %d left, want 4", list.Total)
	}
	st, err := e.client.Status(ctx, c.ID)
	if err != nil || st.DeadLetters != 4 {
		t.Errorf("status dead letters %d, want 4 (%v)", st.DeadLetters, err)
	}
	entries, _ := e.client.Audit(ctx, c.ID, 10)
	if len(entries) == 0 || entries[0].Action != "dead_letters.discard" {
		t.Errorf("the discard is not audited: %+v", entries)
	}
}

// panickyStore fails loudly in one method, as a bug would.
type panickyStore struct{ *store.SQLite }

func (panickyStore) ListConnectors(context.Context) ([]api.Connector, error) { panic("boom") }

func TestAPanickingHandlerAnswersInternalWithoutDetail(t *testing.T) {
	logs := &syncBuffer{}
	e := newEnv(t, func(c *Config) {
		c.Store = panickyStore{c.Store.(*store.SQLite)}
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	})
	_, err := e.client.ListConnectors(t.Context())
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Status != 500 || ce.Body.Code != CodeInternal || strings.Contains(ce.Body.Message, "boom") {
		t.Errorf("a panicking handler: %v, want 500 internal without the panic's text", err)
	}
	if !strings.Contains(logs.String(), "boom") {
		t.Error("the panic is not logged")
	}
	if _, err := e.client.Health(t.Context()); err != nil {
		t.Errorf("the server does not answer after a panic: %v", err)
	}
}

func TestAgentsCanSendLargeDeadLetterBatches(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.createConnector(t, "bulky")
	l, err := e.acquire(t, "a", api.LeaseRequest{ConnectorID: c.ID, Host: "h"})
	if err != nil {
		t.Fatal(err)
	}
	row := `{"description":"` + strings.Repeat("x", 2000) + `"}`
	dls := make([]api.DeadLetter, 1000) // a whole refused Dataverse batch: well over the 1 MiB of the person-facing routes
	for i := range dls {
		dls[i] = api.DeadLetter{Table: "Contact", RecordID: fmt.Sprintf("003%012dAAA", i), Operation: "upsert", Code: "0x80040265", Reason: "refused", Payload: row, At: e.clock.Now()}
	}
	dls[0].Payload = strings.Repeat("y", 100<<10)
	if err := e.by(l.ID).AddDeadLetters(ctx, l.ID, dls); err != nil {
		t.Fatalf("a batch of 1000 dead letters: %v", err)
	}
	list, err := e.client.DeadLetters(ctx, c.ID, "Contact", 1)
	if err != nil || list.Total != 1000 {
		t.Fatalf("stored %+v, %v", list.Total, err)
	}
	if p := list.DeadLetters[0].Payload; len(p) > maxPayload+20 || !strings.HasSuffix(p, "(truncated)") {
		t.Errorf("an oversized payload is kept at %d bytes", len(p))
	}
}

func TestTheBearerSchemeIsCaseInsensitive(t *testing.T) {
	e := newEnv(t)
	for _, h := range []string{"bearer " + testToken, "BEARER " + testToken} {
		if status, _, _ := e.raw(t, http.MethodGet, "/v1/connectors", nil, map[string]string{"Authorization": h}); status != http.StatusOK {
			t.Errorf("Authorization %.8q…: %d, want 200", h, status)
		}
	}
}
