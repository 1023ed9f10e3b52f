package controlplane

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
)

// setActivation activates (after every preflight check passed; nothing is stored or deployed otherwise) or
// deactivates. Activating an active connector changes nothing and runs no checks: the call is idempotent.
func (s *Server) setActivation(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, store.PrefixConnector)
	if err != nil {
		return err
	}
	var req api.ActivationRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	cur, err := s.cfg.Store.GetActivation(r.Context(), id)
	if err != nil {
		return storeError(err, "id")
	}
	if req.Active == cur.Active {
		writeJSON(w, http.StatusOK, cur)
		return nil
	}
	var checks []api.PreflightCheck
	if req.Active {
		if checks, err = s.preflight(r.Context(), id); err != nil {
			return err
		}
		if err := s.beforeActivation(r.Context(), id, cur, req); err != nil {
			return err
		}
	}
	a, err := s.cfg.Store.SetActivation(r.Context(), id, req.Active, checks, actorAPI)
	if err != nil {
		return storeError(err, "id")
	}
	if !req.Active {
		s.afterDeactivation(r.Context(), id)
		if a, err = s.cfg.Store.GetActivation(r.Context(), id); err != nil {
			return storeError(err, "id")
		}
	}
	s.changed(id)
	writeJSON(w, http.StatusOK, a)
	return nil
}

// preflight runs every check and refuses activation when one failed, with all of them in details.
func (s *Server) preflight(ctx context.Context, id string) ([]api.PreflightCheck, error) {
	if s.cfg.Checker == nil {
		return nil, errorf(http.StatusServiceUnavailable, CodeUnavailable, "active", "activation is not available: this control plane runs without preflight checks")
	}
	conn, err := s.cfg.Store.GetConnector(ctx, id)
	if err != nil {
		return nil, storeError(err, "id")
	}
	ms, err := s.cfg.Store.ListMappings(ctx, id)
	if err != nil {
		return nil, storeError(err, "id")
	}
	secrets, err := s.cfg.Store.ConnectorSecrets(ctx, id)
	if err != nil {
		return nil, storeError(err, "id")
	}
	checks := s.runPreflight(ctx, conn, secrets, ms)
	if len(ms) == 0 {
		checks = append(checks, api.PreflightCheck{Name: "mappings", Message: "the connector has no table mappings: add at least one before activating"})
	}
	var failed []string
	for _, c := range checks {
		if !c.OK {
			failed = append(failed, c.Name+": "+c.Message)
		}
	}
	if len(failed) > 0 {
		return nil, errorf(http.StatusUnprocessableEntity, CodePreflightFailed, "active", "%d preflight check(s) failed: %s",
			len(failed), strings.Join(failed, "; ")).withDetails(checks)
	}
	return checks, nil
}

// runPreflight runs every preflight check of a connector with the given mappings: the one place the control
// plane asks for them (activation and changes of an active connector), so where they run can change here
// alone.
func (s *Server) runPreflight(ctx context.Context, conn api.Connector, secrets store.Secrets, ms []api.TableMapping) []api.PreflightCheck {
	pctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	return s.cfg.Checker.Preflight(pctx, conn, secrets, ms)
}

// The preflight checks a change affects: a new team must hold the privileges; changed mappings must fit the
// live schemas, have a change topic, and the team must hold the privileges on their tables and lookups.
var (
	teamChangeChecks    = []string{"team_privileges"}
	mappingChangeChecks = []string{"change_topics", "team_privileges", "mappings"}
)

// preflightChange re-runs, for an active connector, the preflight checks a change affects, on the proposed
// connector and mappings (nil: the stored ones), before the change is stored, and refuses it (422
// preflight_failed, every failing check listed, every check in details) when one fails. An inactive
// connector is checked at its next activation. When the credentials checks themselves fail (a service the
// control plane cannot reach, or a secret only the agent's host can resolve, which is a warning), the
// affected checks cannot run and the change is stored: the agent checks again when it runs it and reports
// a failure as the connector's health.
func (s *Server) preflightChange(ctx context.Context, conn api.Connector, secrets store.Secrets, ms []api.TableMapping, affected []string, field string) error {
	if s.cfg.Checker == nil {
		return nil
	}
	act, err := s.cfg.Store.GetActivation(ctx, conn.ID)
	if err != nil {
		return storeError(err, "id")
	}
	if !act.Active {
		return nil
	}
	if ms == nil {
		if ms, err = s.cfg.Store.ListMappings(ctx, conn.ID); err != nil {
			return storeError(err, "id")
		}
	}
	checks := s.runPreflight(ctx, conn, secrets, ms)
	var failed []string
	for _, c := range checks {
		if (c.Name == "salesforce_credentials" || c.Name == "dataverse_credentials") && !c.OK {
			s.log.Warn("a change of an active connector could not be checked: the control plane cannot reach a service", "connector_id", conn.ID, "check", c.Name, "message", c.Message)
			return nil
		}
		if !c.OK && slices.Contains(affected, c.Name) {
			failed = append(failed, c.Name+": "+c.Message)
		}
	}
	if len(failed) > 0 {
		return errorf(http.StatusUnprocessableEntity, CodePreflightFailed, field, "the connector is active and the change fails %d preflight check(s): %s; nothing was changed",
			len(failed), strings.Join(failed, "; ")).withDetails(checks)
	}
	return nil
}

// changeProblems are, for the live validation of a mapping of an active connector, the preflight checks the
// change would fail beyond the mapping rules the validation already reports (the team's privileges on the
// mapping's tables and lookups, the change topic): what the API would refuse the change for, shown at plan.
func (s *Server) changeProblems(ctx context.Context, conn api.Connector, secrets store.Secrets, spec mapping.TableConfig) ([]mapping.Problem, error) {
	act, err := s.cfg.Store.GetActivation(ctx, conn.ID)
	if err != nil {
		return nil, storeError(err, "connector_id")
	}
	if !act.Active {
		return nil, nil
	}
	stored, err := s.cfg.Store.ListMappings(ctx, conn.ID)
	if err != nil {
		return nil, storeError(err, "connector_id")
	}
	proposed := []api.TableMapping{{ConnectorID: conn.ID, TableConfig: spec}}
	for _, m := range stored {
		if !strings.EqualFold(m.SourceTable, spec.SourceTable) {
			proposed = append(proposed, m)
		}
	}
	var out []mapping.Problem
	for _, c := range s.runPreflight(ctx, conn, secrets, proposed) {
		if (c.Name == "salesforce_credentials" || c.Name == "dataverse_credentials") && !c.OK {
			return nil, nil // the checks cannot run from here; the API checks again when the change is made
		}
		if !c.OK && c.Name != "mappings" && slices.Contains(mappingChangeChecks, c.Name) {
			out = append(out, mapping.Problem{Severity: mapping.Error, Code: "preflight_" + c.Name,
				Message: "the connector is active and this change fails its " + c.Name + " preflight check: " + c.Message})
		}
	}
	return out, nil
}

// validateTeam answers whether a team change of an active connector would pass the checks it affects (what
// the provider asks at plan): every check, the failing ones with OK false.
func (s *Server) validateTeam(w http.ResponseWriter, r *http.Request) error {
	var req api.ValidateTeamRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if !store.ValidID(store.PrefixConnector, req.ConnectorID) {
		return invalid("connector_id", "%q is not a connector ID", truncate(req.ConnectorID, 80))
	}
	if fe := api.CheckGUID("team_id", req.TeamID); fe != nil {
		return refused(fe)
	}
	conn, err := s.cfg.Store.GetConnector(r.Context(), req.ConnectorID)
	if err != nil {
		return storeError(err, "connector_id")
	}
	act, err := s.cfg.Store.GetActivation(r.Context(), conn.ID)
	if err != nil {
		return storeError(err, "connector_id")
	}
	resp := api.ValidateTeamResponse{Active: act.Active, Checks: []api.PreflightCheck{}}
	if !act.Active {
		writeJSON(w, http.StatusOK, resp)
		return nil
	}
	if s.cfg.Checker == nil {
		return errorf(http.StatusServiceUnavailable, CodeUnavailable, "team_id", "team validation is not available: this control plane runs without preflight checks")
	}
	secrets, err := s.cfg.Store.ConnectorSecrets(r.Context(), conn.ID)
	if err != nil {
		return storeError(err, "connector_id")
	}
	ms, err := s.cfg.Store.ListMappings(r.Context(), conn.ID)
	if err != nil {
		return storeError(err, "connector_id")
	}
	conn.TeamID = req.TeamID
	for _, c := range s.runPreflight(r.Context(), conn, secrets, ms) {
		if c.Name == "salesforce_credentials" || c.Name == "dataverse_credentials" || slices.Contains(teamChangeChecks, c.Name) {
			resp.Checks = append(resp.Checks, c)
		}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// preflightMappings is preflightChange for a connector's proposed mappings.
func (s *Server) preflightMappings(ctx context.Context, connID string, proposed []api.TableMapping) error {
	conn, err := s.cfg.Store.GetConnector(ctx, connID)
	if err != nil {
		return storeError(err, "id")
	}
	secrets, err := s.cfg.Store.ConnectorSecrets(ctx, connID)
	if err != nil {
		return storeError(err, "id")
	}
	return s.preflightChange(ctx, conn, secrets, proposed, mappingChangeChecks, "columns")
}
