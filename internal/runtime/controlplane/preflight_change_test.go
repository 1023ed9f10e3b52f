package controlplane

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// TestChangesOfAnActiveConnectorRerunTheAffectedPreflightChecks: a team or mapping change of an active
// connector is checked (the proposed team and mappings) before it is stored; one that fails an affected
// check is refused with every failing check listed and changes nothing. Regression: a team without write
// privileges given to an active connector was accepted with no check, and the agent retried 403s forever.
// Inactive connectors are checked at activation, as before; a failing check the change does not affect (the
// service is unreachable from the control plane) does not block it.
func TestChangesOfAnActiveConnectorRerunTheAffectedPreflightChecks(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.createConnector(t, "guarded")
	m := e.createMapping(t, c.ID, "Contact")
	if _, err := e.client.SetActivation(ctx, c.ID, true); err != nil {
		t.Fatal(err)
	}
	const weakTeam = "0b0b0b0b-1111-4222-8333-944445555666"
	unreachable := false
	e.checker.mu.Lock()
	e.checker.decide = func(conn api.Connector, ms []api.TableMapping) []api.PreflightCheck {
		checks := passingChecks()
		if unreachable {
			checks[1] = api.PreflightCheck{Name: "dataverse_credentials", Message: "cannot reach the environment: connection refused"}
		}
		if conn.TeamID == weakTeam {
			checks[2] = api.PreflightCheck{Name: "team_privileges", Message: "team Weak (" + weakTeam + ") is missing 2 privilege(s): prvCreateContact, prvWriteContact"}
		}
		for _, m := range ms {
			if _, ok := m.Columns["new_nowhere"]; ok {
				checks = append(checks, api.PreflightCheck{Name: "mappings", Message: "Contact → contact: columns.new_nowhere: contact has no column new_nowhere"})
			}
		}
		return checks
	}
	e.checker.mu.Unlock()
	refused := func(what string, err error, want ...string) {
		t.Helper()
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != 422 || !errors.Is(err, client.ErrPreflightFailed) {
			t.Fatalf("%s: %v, want 422 preflight_failed", what, err)
		}
		var checks []api.PreflightCheck
		if err := json.Unmarshal(ce.Body.Details, &checks); err != nil || len(checks) == 0 {
			t.Fatalf("%s: details %s: %v", what, ce.Body.Details, err)
		}
		for _, w := range want {
			if !strings.Contains(ce.Body.Message, w) {
				t.Errorf("%s: the refusal %q does not name %q", what, ce.Body.Message, w)
			}
		}
	}

	// What the provider asks at plan: the checks the team change would fail.
	vt, err := e.client.ValidateTeam(ctx, api.ValidateTeamRequest{ConnectorID: c.ID, TeamID: weakTeam})
	if err != nil || !vt.Active {
		t.Fatalf("validate team: %+v, %v", vt, err)
	}
	failing := 0
	for _, ch := range vt.Checks {
		if !ch.OK {
			failing++
			if ch.Name != "team_privileges" || !strings.Contains(ch.Message, "prvWriteContact") {
				t.Errorf("validate team: failing check %+v", ch)
			}
		}
	}
	if failing != 1 {
		t.Errorf("validate team: %d failing checks in %+v, want team_privileges", failing, vt.Checks)
	}
	spec := connectorSpec("guarded")
	spec.TeamID = weakTeam
	_, err = e.client.UpdateConnector(ctx, c.ID, spec)
	refused("team change", err, "team_privileges", "prvCreateContact, prvWriteContact")
	mspec := m.TableConfig
	mspec.Columns = map[string]mapping.ColumnOverride{"new_nowhere": {Source: "Title"}}
	_, err = e.client.UpdateMapping(ctx, m.ID, mspec)
	refused("mapping change", err, "mappings", "new_nowhere")
	_, err = e.client.CreateMapping(ctx, c.ID, mapping.TableConfig{SourceTable: "Account", UsePredefined: true, Columns: mspec.Columns})
	refused("mapping creation", err, "new_nowhere")
	got, err := e.client.GetConnector(ctx, c.ID)
	if err != nil || got.TeamID != teamID || got.Revision != c.Revision+1 {
		t.Errorf("after refused changes the connector is %+v, %v; want the team and revision of before", got, err)
	}

	// A failing check the change does not affect does not block it.
	e.checker.mu.Lock()
	unreachable = true
	e.checker.mu.Unlock()
	spec.TeamID = "0c0c0c0c-1111-4222-8333-944445555666"
	if _, err := e.client.UpdateConnector(ctx, c.ID, spec); err != nil {
		t.Errorf("a team change while the control plane cannot reach Dataverse: %v", err)
	}
	e.checker.mu.Lock()
	unreachable = false
	e.checker.mu.Unlock()

	// Inactive: checked at the next activation.
	if _, err := e.client.SetActivation(ctx, c.ID, false); err != nil {
		t.Fatal(err)
	}
	spec.TeamID = weakTeam
	if vt, err := e.client.ValidateTeam(ctx, api.ValidateTeamRequest{ConnectorID: c.ID, TeamID: weakTeam}); err != nil || vt.Active || len(vt.Checks) != 0 {
		t.Errorf("validate team of an inactive connector: %+v, %v; want no checks", vt, err)
	}
	if _, err := e.client.UpdateConnector(ctx, c.ID, spec); err != nil {
		t.Errorf("a team change of an inactive connector: %v", err)
	}
	_, err = e.client.SetActivation(ctx, c.ID, true)
	refused("activation with the weak team", err, "prvWriteContact")
}

// TestLiveValidationOfAnActiveConnectorsMappingShowsTheChecksTheChangeWouldFail: what the API would refuse a
// mapping change for (the team's privileges on the tables it touches) comes back from the live validation the
// provider runs at plan, as an error problem naming the check; an inactive connector's validation does not run
// the checks (activation does).
func TestLiveValidationOfAnActiveConnectorsMappingShowsTheChecksTheChangeWouldFail(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	c := e.createConnector(t, "plan-time")
	e.createMapping(t, c.ID, "Contact")
	e.checker.mu.Lock()
	e.checker.src, e.checker.dst, e.checker.count = mapping.StandardSource("Account"), mapping.StandardDestination("account"), 10
	e.checker.decide = func(conn api.Connector, ms []api.TableMapping) []api.PreflightCheck {
		checks := passingChecks()
		for _, m := range ms {
			if m.SourceTable == "Account" {
				checks[2] = api.PreflightCheck{Name: "team_privileges", Message: "team T is missing 1 privilege(s): prvCreateAccount"}
			}
		}
		return checks
	}
	e.checker.mu.Unlock()
	spec := mapping.TableConfig{SourceTable: "Account", UsePredefined: true}
	preflightProblems := func() []string {
		t.Helper()
		res, err := e.client.ValidateMapping(ctx, api.ValidateRequest{ConnectorID: c.ID, Live: true, Mapping: spec})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range res.Problems {
			if strings.HasPrefix(p.Code, "preflight_") {
				out = append(out, string(p.Severity)+" "+p.Code+": "+p.Message)
			}
		}
		return out
	}
	if got := preflightProblems(); len(got) != 0 {
		t.Errorf("inactive connector: %q", got)
	}
	if _, err := e.client.SetActivation(ctx, c.ID, true); err != nil {
		t.Fatal(err)
	}
	got := preflightProblems()
	if len(got) != 1 || !strings.HasPrefix(got[0], "error preflight_team_privileges") || !strings.Contains(got[0], "prvCreateAccount") {
		t.Errorf("active connector: %q; want the team_privileges failure", got)
	}
}
