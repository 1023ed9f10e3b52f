package controlplane

import (
	"net/http"
	"strconv"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
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

// Dead letters (API).

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
