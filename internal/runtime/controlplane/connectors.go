package controlplane

import (
	"errors"
	"net/http"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
)

func (s *Server) createConnector(w http.ResponseWriter, r *http.Request) error {
	var spec api.ConnectorSpec
	if err := decodeJSON(r, &spec); err != nil {
		return err
	}
	if err := s.validateConnector(spec, nil); err != nil {
		return err
	}
	c, err := s.cfg.Store.CreateConnector(r.Context(), spec, secretChanges(spec, nil), actorAPI)
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
	changes := secretChanges(spec, cur.SecretsSet)
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
