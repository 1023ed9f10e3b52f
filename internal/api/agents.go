package api

import "time"

// Agent identities and their credentials (docs/security.md). An operator creates an enrollment token on the
// control plane's host; an agent exchanges it, once, for an identity of its own and a credential; the
// credential then takes leases and writes under them.

// EnrollmentRequest creates an enrollment token (POST /v1/admin/enrollments, on the control plane's local
// socket).
type EnrollmentRequest struct {
	// ConnectorID limits the agent enrolled with the token to that one connector (any connector when empty).
	ConnectorID string `json:"connector_id,omitempty"`
	// TTLSeconds is how long the token can be used: 3600 when 0, at most 86400.
	TTLSeconds int `json:"ttl_seconds,omitempty"`
	// Description says what the token is for, in lists and the audit log.
	Description string `json:"description,omitempty"`
}

// Enrollment is a created enrollment token. Token is shown once, in the answer that creates it; the control
// plane keeps only its hash.
type Enrollment struct {
	ID          string    `json:"id"`
	Token       string    `json:"token,omitempty"`
	ConnectorID string    `json:"connector_id,omitempty"`
	Description string    `json:"description,omitempty"`
	ExpiresAt   time.Time `json:"expires_at"`
}

// EnrollRequest exchanges an enrollment token (the bearer) for an agent identity (POST /v1/agent/enroll).
type EnrollRequest struct {
	// Name labels the agent in lists and the audit log.
	Name string `json:"name" crmsync:"required"`
	Host string `json:"host,omitempty"`
}

// AgentCredential is an agent identity with its credential, shown once (enrollment, rotation).
type AgentCredential struct {
	AgentID     string `json:"agent_id"`
	Credential  string `json:"credential"`
	ConnectorID string `json:"connector_id,omitempty"`
}

// AgentIdentity is an agent identity as listed (never its credential).
type AgentIdentity struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Host        string    `json:"host,omitempty"`
	Kind        string    `json:"kind"` // enrolled, local
	ConnectorID string    `json:"connector_id,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	LastSeenAt  time.Time `json:"last_seen_at,omitzero"`
	RotatedAt   time.Time `json:"rotated_at,omitzero"`
}

// AgentList is GET /v1/admin/agents.
type AgentList struct {
	Agents []AgentIdentity `json:"agents"`
}

// Kinds of agent identity.
const (
	AgentEnrolled = "enrolled" // exchanged an enrollment token
	AgentLocal    = "local"    // started by crmsync serve --local-agents, for one process
)
