package controlplane

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
)

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

// decodeMapping reads a request's table mapping and checks its names.
func decodeMapping(r *http.Request) (mapping.TableConfig, error) {
	var spec mapping.TableConfig
	if err := decodeJSON(r, &spec); err != nil {
		return spec, err
	}
	return spec, validateMappingNames(spec)
}

func (s *Server) createMapping(w http.ResponseWriter, r *http.Request) error {
	connID, err := pathID(r, store.PrefixConnector)
	if err != nil {
		return err
	}
	spec, err := decodeMapping(r)
	if err != nil {
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
	spec, err := decodeMapping(r)
	if err != nil {
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
		load := api.LoadCost(n, conn.Dataverse.ApplicationUsers())
		resp.EstimatedLoad = &load
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
