package controlplane

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
)

// actorAPI names API callers in the audit log (there is one token, so one identity).
const actorAPI = "api"

// Timeouts of the calls that reach Salesforce and Dataverse through the Checker.
const (
	preflightTimeout = 2 * time.Minute
	liveTimeout      = time.Minute
)

// changed tells the deployer a connector's desired state may have changed.
func (s *Server) changed(connectorID string) {
	if s.cfg.Deployer != nil {
		s.cfg.Deployer.Changed(connectorID)
	}
}

// pathID reads and checks the {id} path value.
func pathID(r *http.Request, prefix string) (string, error) {
	id := r.PathValue("id")
	if !store.ValidID(prefix, id) {
		return "", invalid("id", "%q is not a valid ID (%s followed by 32 hex digits)", truncate(id, 80), prefix)
	}
	return id, nil
}

func queryLimit(r *http.Request, def, maxLimit int) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxLimit {
		return 0, invalid("limit", "limit must be a number from 1 to %d", maxLimit)
	}
	return n, nil
}

// Connectors.

func (s *Server) createConnector(w http.ResponseWriter, r *http.Request) error {
	var spec api.ConnectorSpec
	if err := decodeJSON(r, &spec); err != nil {
		return err
	}
	if err := s.validateConnector(spec, nil); err != nil {
		return err
	}
	c, err := s.cfg.Store.CreateConnector(r.Context(), spec, secretChanges(spec), actorAPI)
	if err != nil {
		return storeError(err, "name")
	}
	s.changed(c.ID)
	writeJSON(w, http.StatusCreated, c)
	return nil
}

func (s *Server) listConnectors(w http.ResponseWriter, r *http.Request) error {
	if name := r.URL.Query().Get("name"); name != "" || r.URL.Query().Has("name") {
		if err := text("name", name, maxName, true); err != nil {
			return err
		}
		c, err := s.cfg.Store.FindConnector(r.Context(), name)
		switch {
		case errors.Is(err, store.ErrNotFound):
			writeJSON(w, http.StatusOK, api.ConnectorList{Connectors: []api.Connector{}})
			return nil
		case err != nil:
			return err
		}
		writeJSON(w, http.StatusOK, api.ConnectorList{Connectors: []api.Connector{c}})
		return nil
	}
	cs, err := s.cfg.Store.ListConnectors(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.ConnectorList{Connectors: cs})
	return nil
}

func (s *Server) updateConnector(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, store.PrefixConnector)
	if err != nil {
		return err
	}
	var spec api.ConnectorSpec
	if err := decodeJSON(r, &spec); err != nil {
		return err
	}
	cur, err := s.cfg.Store.GetConnector(r.Context(), id)
	if err != nil {
		return storeError(err, "id")
	}
	// A secret now given by reference no longer counts as stored: its inline value is dropped.
	changes := secretChanges(spec)
	var kept []string
	for _, name := range cur.SecretsSet {
		if _, dropped := changes[name]; !dropped {
			kept = append(kept, name)
		}
	}
	if err := s.validateConnector(spec, kept); err != nil {
		return err
	}
	if !strings.EqualFold(spec.TeamID, cur.TeamID) {
		proposed := cur
		proposed.ConnectorSpec = spec
		secrets, err := s.cfg.Store.ConnectorSecrets(r.Context(), id)
		if err != nil {
			return storeError(err, "id")
		}
		for name, v := range changes {
			if v == "" {
				delete(secrets, name)
			} else {
				secrets[name] = v
			}
		}
		if err := s.preflightChange(r.Context(), proposed, secrets, nil, teamChangeChecks, "team_id"); err != nil {
			return err
		}
	}
	c, err := s.cfg.Store.UpdateConnector(r.Context(), id, spec, changes, actorAPI)
	if err != nil {
		return storeError(err, "name")
	}
	if c.Revision != cur.Revision {
		s.changed(id)
	}
	writeJSON(w, http.StatusOK, c)
	return nil
}

// deleteConnector deactivates the connector first (the supervisor stops its agent), then deletes it with
// everything it owns. Data already written to Dataverse stays.
func (s *Server) deleteConnector(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, store.PrefixConnector)
	if err != nil {
		return err
	}
	a, err := s.cfg.Store.GetActivation(r.Context(), id)
	if err != nil {
		return storeError(err, "id")
	}
	if a.Active {
		if _, err := s.cfg.Store.SetActivation(r.Context(), id, false, nil, actorAPI); err != nil {
			return storeError(err, "id")
		}
		s.changed(id)
	}
	if err := s.cfg.Store.DeleteConnector(r.Context(), id, actorAPI); err != nil {
		return storeError(err, "id")
	}
	s.changed(id)
	noContent(w)
	return nil
}

// Mappings.

// siblingsOf returns the tables of a mapping's connector besides the mapping itself: others, except the
// mapping with ID exceptID (the one a change replaces).
func siblingsOf(others []api.TableMapping, exceptID string) mapping.Siblings {
	out := make(mapping.Siblings, len(others))
	for _, m := range others {
		if m.ID != exceptID {
			out[m.SourceTable] = m.Destination()
		}
	}
	return out
}

// rejectProblems refuses a mapping with errors: the first error's path is the field, every error is in
// details. Warnings do not block a mapping (POST /v1/validate/mapping returns them).
func rejectProblems(probs mapping.Problems) error {
	errs := probs.Errors()
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, len(errs))
	for i, p := range errs {
		msgs[i] = p.Message
	}
	return invalid(errs[0].Path, "the mapping is invalid: %s", strings.Join(msgs, "; ")).withDetails(errs)
}

func (s *Server) createMapping(w http.ResponseWriter, r *http.Request) error {
	connID, err := pathID(r, store.PrefixConnector)
	if err != nil {
		return err
	}
	var spec mapping.TableConfig
	if err := decodeJSON(r, &spec); err != nil {
		return err
	}
	if err := validateMappingNames(spec); err != nil {
		return err
	}
	others, err := s.cfg.Store.ListMappings(r.Context(), connID)
	if err != nil {
		return storeError(err, "id")
	}
	if _, probs := mapping.Check(spec, siblingsOf(others, ""), nil); probs.HasErrors() {
		return rejectProblems(probs)
	}
	if err := s.preflightMappings(r.Context(), connID, append(slices.Clone(others), api.TableMapping{ConnectorID: connID, TableConfig: spec})); err != nil {
		return err
	}
	m, err := s.cfg.Store.CreateMapping(r.Context(), connID, spec, actorAPI)
	if err != nil {
		return storeError(err, "source_table")
	}
	s.changed(connID)
	writeJSON(w, http.StatusCreated, m)
	return nil
}

func (s *Server) listMappings(w http.ResponseWriter, r *http.Request) error {
	connID, err := pathID(r, store.PrefixConnector)
	if err != nil {
		return err
	}
	ms, err := s.cfg.Store.ListMappings(r.Context(), connID)
	if err != nil {
		return storeError(err, "id")
	}
	writeJSON(w, http.StatusOK, api.MappingList{Mappings: ms})
	return nil
}

func (s *Server) updateMapping(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, store.PrefixMapping)
	if err != nil {
		return err
	}
	var spec mapping.TableConfig
	if err := decodeJSON(r, &spec); err != nil {
		return err
	}
	if err := validateMappingNames(spec); err != nil {
		return err
	}
	cur, err := s.cfg.Store.GetMapping(r.Context(), id)
	if err != nil {
		return storeError(err, "id")
	}
	others, err := s.cfg.Store.ListMappings(r.Context(), cur.ConnectorID)
	if err != nil {
		return storeError(err, "id")
	}
	if _, probs := mapping.Check(spec, siblingsOf(others, id), nil); probs.HasErrors() {
		return rejectProblems(probs)
	}
	proposed := slices.Clone(others)
	for i := range proposed {
		if proposed[i].ID == id {
			proposed[i].TableConfig = spec
		}
	}
	if err := s.preflightMappings(r.Context(), cur.ConnectorID, proposed); err != nil {
		return err
	}
	m, err := s.cfg.Store.UpdateMapping(r.Context(), id, spec, actorAPI)
	if err != nil {
		return storeError(err, "source_table")
	}
	if m.Revision != cur.Revision {
		s.changed(m.ConnectorID)
	}
	writeJSON(w, http.StatusOK, m)
	return nil
}

func (s *Server) deleteMapping(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, store.PrefixMapping)
	if err != nil {
		return err
	}
	m, err := s.cfg.Store.GetMapping(r.Context(), id)
	if err != nil {
		return storeError(err, "id")
	}
	if err := s.cfg.Store.DeleteMapping(r.Context(), id, actorAPI); err != nil {
		return storeError(err, "id")
	}
	s.changed(m.ConnectorID)
	noContent(w)
	return nil
}

// predefinedMappings answers the out-of-box column mappings of a table, every pair included (those that need
// another table synced, like Contact's AccountId → parentcustomerid, too).
func (s *Server) predefinedMappings(w http.ResponseWriter, r *http.Request) error {
	source := r.PathValue("source_table")
	if err := validateTable("source_table", source); err != nil {
		return err
	}
	tables := mapping.PredefinedTables()
	names := slices.Sorted(maps.Keys(tables))
	var canonical string
	if i := slices.IndexFunc(names, func(t string) bool { return strings.EqualFold(t, source) }); i >= 0 {
		canonical = names[i]
	}
	if canonical == "" {
		return errorf(http.StatusNotFound, CodeNotFound, "source_table", "%s has no predefined mappings; tables that have: %s", source, strings.Join(names, ", "))
	}
	spec := mapping.TableConfig{SourceTable: canonical, UsePredefined: true}
	writeJSON(w, http.StatusOK, api.PredefinedMappings{
		SourceTable:      canonical,
		DestinationTable: spec.Destination(),
		Columns:          mapping.Effective(spec, tables),
	})
	return nil
}

// validateMapping validates without storing: statically always, and with Live against the connector's
// Salesforce describe and Dataverse metadata through the Checker.
func (s *Server) validateMapping(w http.ResponseWriter, r *http.Request) error {
	var req api.ValidateRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := validateMappingNames(req.Mapping); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.body.Field != "" {
			ae.body.Field = "mapping." + ae.body.Field
		}
		return err
	}
	if len(req.OtherTables) > 100 {
		return invalid("other_tables", "other_tables has %d entries; the limit is 100", len(req.OtherTables))
	}
	others := make([]api.TableMapping, 0, len(req.OtherTables))
	for i, t := range req.OtherTables {
		if err := validateTable("other_tables["+strconv.Itoa(i)+"]", t); err != nil {
			return err
		}
		others = append(others, api.TableMapping{TableConfig: mapping.TableConfig{SourceTable: t}})
	}
	var conn api.Connector
	if req.ConnectorID != "" {
		if !store.ValidID(store.PrefixConnector, req.ConnectorID) {
			return invalid("connector_id", "%q is not a connector ID", truncate(req.ConnectorID, 80))
		}
		var err error
		if conn, err = s.cfg.Store.GetConnector(r.Context(), req.ConnectorID); err != nil {
			return storeError(err, "connector_id")
		}
		if len(req.OtherTables) == 0 {
			if others, err = s.cfg.Store.ListMappings(r.Context(), req.ConnectorID); err != nil {
				return storeError(err, "connector_id")
			}
		}
	} else if req.Live {
		return invalid("connector_id", "live validation needs connector_id: the connector whose Salesforce org and Dataverse environment are described")
	}
	spec := req.Mapping
	cols, probs := mapping.Check(spec, siblingsOf(others, ""), nil)
	resp := api.ValidateResponse{Live: req.Live}
	if req.Live {
		if s.cfg.Checker == nil {
			return errorf(http.StatusServiceUnavailable, CodeUnavailable, "live", "live validation is not available: this control plane runs without a checker")
		}
		secrets, err := s.cfg.Store.ConnectorSecrets(r.Context(), conn.ID)
		if err != nil {
			return storeError(err, "connector_id")
		}
		ctx, cancel := context.WithTimeout(r.Context(), liveTimeout)
		defer cancel()
		src, dst, n, err := s.cfg.Checker.LiveSchemas(ctx, conn, secrets, spec.SourceTable, spec.Destination())
		if err != nil {
			return errorf(http.StatusBadGateway, CodeUnavailable, "connector_id", "describing %s and %s: %s", spec.SourceTable, spec.Destination(), err.Error())
		}
		cols, probs = mapping.Check(spec, siblingsOf(others, ""), &mapping.Live{Source: src, Dest: dst})
		resp.EstimatedRecords = &n
		more, err := s.changeProblems(r.Context(), conn, secrets, spec)
		if err != nil {
			return err
		}
		probs = append(probs, more...)
	}
	resp.Problems = probs
	if resp.Problems == nil {
		resp.Problems = []mapping.Problem{}
	}
	resp.EffectiveColumns = cols
	if resp.EffectiveColumns == nil {
		resp.EffectiveColumns = []mapping.Column{}
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// Activation.

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

// Dead letters (API).

func (s *Server) deadLetterFilter(table string, ids []string) (store.DeadLetterFilter, error) {
	f := store.DeadLetterFilter{Table: table}
	if table != "" {
		if err := validateTable("table", table); err != nil {
			return f, err
		}
	}
	if len(ids) > maxBatch {
		return f, invalid("record_ids", "record_ids has %d entries; the limit is %d", len(ids), maxBatch)
	}
	for i, id := range ids {
		if err := validateRecordID("record_ids["+strconv.Itoa(i)+"]", id); err != nil {
			return f, err
		}
	}
	f.RecordIDs = ids
	return f, nil
}

func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, store.PrefixConnector)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	// record_id may repeat: `crmsync dead-letters show` reads one record's dead letter, whole.
	var ids []string
	if v, ok := q["record_id"]; ok {
		ids = v
	}
	f, err := s.deadLetterFilter(q.Get("table"), ids)
	if err != nil {
		return err
	}
	if f.Limit, err = queryLimit(r, 100, maxBatch); err != nil {
		return err
	}
	dls, total, err := s.cfg.Store.ListDeadLetters(r.Context(), id, f)
	if err != nil {
		return storeError(err, "id")
	}
	writeJSON(w, http.StatusOK, api.DeadLetterList{DeadLetters: dls, Total: total})
	return nil
}

func (s *Server) deadLetterAction(w http.ResponseWriter, r *http.Request, retry bool) error {
	id, err := pathID(r, store.PrefixConnector)
	if err != nil {
		return err
	}
	var a api.DeadLetterAction
	if err := decodeJSON(r, &a); err != nil {
		return err
	}
	f, err := s.deadLetterFilter(a.Table, a.RecordIDs)
	if err != nil {
		return err
	}
	var n int64
	if retry {
		n, err = s.cfg.Store.MarkDeadLettersForRetry(r.Context(), id, f, actorAPI)
	} else {
		n, err = s.cfg.Store.DiscardDeadLetters(r.Context(), id, f, actorAPI)
	}
	if err != nil {
		return storeError(err, "id")
	}
	writeJSON(w, http.StatusOK, api.DeadLetterActionResult{Affected: n})
	return nil
}

func (s *Server) retryDeadLetters(w http.ResponseWriter, r *http.Request) error {
	return s.deadLetterAction(w, r, true)
}

func (s *Server) discardDeadLetters(w http.ResponseWriter, r *http.Request) error {
	return s.deadLetterAction(w, r, false)
}

func (s *Server) audit(w http.ResponseWriter, r *http.Request) error {
	connID := r.URL.Query().Get("connector_id")
	if connID != "" && !store.ValidID(store.PrefixConnector, connID) {
		return invalid("connector_id", "%q is not a connector ID", truncate(connID, 80))
	}
	limit, err := queryLimit(r, 100, 1000)
	if err != nil {
		return err
	}
	es, err := s.cfg.Store.Audit(r.Context(), connID, limit)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.AuditList{Entries: es})
	return nil
}
