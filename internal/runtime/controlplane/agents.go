package controlplane

import (
	"net/http"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
)

// Agent identities (docs/security.md). An enrollment token, created on the control plane's host through its
// local socket, is exchanged once for an agent identity and its credential; the credential takes leases, and
// a lease's secrets go only to the agent holding it. Modelled on Kubernetes bootstrap tokens and node
// authorization, Vault's single-use response wrapping and GitHub Actions runner registration.

// actorAdmin names the local socket's caller in the audit log: someone with access to the data directory.
const actorAdmin = "admin"

func (s *Server) createEnrollment(w http.ResponseWriter, r *http.Request) error {
	var req api.EnrollmentRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if req.ConnectorID != "" && !store.ValidID(store.PrefixConnector, req.ConnectorID) {
		return invalid("connector_id", "%q is not a connector ID", truncate(req.ConnectorID, 80))
	}
	if ttl := time.Duration(req.TTLSeconds) * time.Second; ttl < 0 || ttl > store.MaxEnrollmentTTL {
		return invalid("ttl_seconds", "ttl_seconds is %d; it must be between 1 and %d (0 takes %d)", req.TTLSeconds,
			int(store.MaxEnrollmentTTL.Seconds()), int(store.DefaultEnrollmentTTL.Seconds()))
	}
	if err := text("description", req.Description, 256, false); err != nil {
		return err
	}
	e, err := s.cfg.Store.CreateEnrollment(r.Context(), req, actorAdmin)
	if err != nil {
		return storeError(err, "connector_id")
	}
	s.log.InfoContext(r.Context(), "enrollment token created", "enrollment_id", e.ID, "connector_id", e.ConnectorID, "expires_at", e.ExpiresAt)
	writeJSON(w, http.StatusCreated, e)
	return nil
}

func (s *Server) listAgents(w http.ResponseWriter, r *http.Request) error {
	as, err := s.cfg.Store.ListAgents(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, api.AgentList{Agents: as})
	return nil
}

func (s *Server) revokeAgent(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, store.PrefixAgent)
	if err != nil {
		return err
	}
	if err := s.cfg.Store.RevokeAgent(r.Context(), id, actorAdmin); err != nil {
		return storeError(err, "id")
	}
	s.agentAuth.forget(id)
	s.log.InfoContext(r.Context(), "agent revoked", "agent_id", id)
	// Its leases are gone: the supervisor starts other agents for active connectors it held.
	if s.cfg.Deployer != nil {
		s.cfg.Deployer.Changed("")
	}
	noContent(w)
	return nil
}

// enroll exchanges the enrollment token (the bearer) for an agent identity.
func (s *Server) enroll(w http.ResponseWriter, r *http.Request) error {
	var req api.EnrollRequest
	if err := decodeJSON(r, &req); err != nil {
		return err
	}
	if err := matches("name", req.Name, maxAgentID, agentIDRe, true, "a name of letters, digits and . _ : @ -"); err != nil {
		return err
	}
	if err := text("host", req.Host, maxHost, false); err != nil {
		return err
	}
	cred, err := s.cfg.Store.Enroll(r.Context(), principalOf(r).token, req)
	if err != nil {
		return storeError(err, "")
	}
	s.log.InfoContext(r.Context(), "agent enrolled", "agent_id", cred.AgentID, "name", req.Name, "host", req.Host, "connector_id", cred.ConnectorID)
	writeJSON(w, http.StatusCreated, cred)
	return nil
}

// rotateCredential issues the calling agent a new credential; the one it called with works until the new
// one is first used.
func (s *Server) rotateCredential(w http.ResponseWriter, r *http.Request) error {
	cred, err := s.cfg.Store.RotateAgentCredential(r.Context(), principalOf(r).agent.ID)
	if err != nil {
		return storeError(err, "")
	}
	writeJSON(w, http.StatusOK, cred)
	return nil
}

// ownLease checks that a lease of the path belongs to the calling agent: a lease's configuration, secrets
// included, and its checkpoints and dead letters are its holder's alone. A lease that is no longer current
// passes, for the operation itself to answer 410 lease_lost.
func (s *Server) ownLease(r *http.Request) (string, error) {
	id, err := pathID(r, store.PrefixLease)
	if err != nil {
		return "", err
	}
	holder, _, err := s.cfg.Store.LeaseHolder(r.Context(), id)
	switch {
	case err != nil:
		return id, nil //nolint:nilerr // not current: the operation answers lease_lost (or, for a release, nothing)
	case holder != principalOf(r).agent.ID:
		return "", errorf(http.StatusForbidden, CodeForbidden, "id", "lease %s belongs to another agent", id)
	}
	return id, nil
}
