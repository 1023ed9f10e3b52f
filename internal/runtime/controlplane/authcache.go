package controlplane

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// DefaultAgentAuthCache is how long a replica trusts an agent credential it checked (Config.AgentAuthCache):
// the bound within which a revocation made through another replica takes effect on this one. Through the
// replica that revokes, and for lease grants (which hand out secrets) everywhere, it takes effect at once;
// the revoked agent's leases are deleted with it, so its heartbeats and writes are refused at once anyway.
const DefaultAgentAuthCache = 5 * time.Second

// maxCachedCredentials bounds the cache; past it, the cache starts over.
const maxCachedCredentials = 100_000

// agentAuthCache remembers the agent credentials this replica checked recently, by their SHA-256, so a
// heartbeat (every connector's agent, up to once a second) does not cost a store transaction to
// authenticate.
type agentAuthCache struct {
	mu sync.Mutex
	m  map[[32]byte]cachedIdentity
}

type cachedIdentity struct {
	id    api.AgentIdentity
	until time.Time
}

// authenticateAgent checks an agent credential, through the cache unless fresh.
func (s *Server) authenticateAgent(ctx context.Context, credential string, fresh bool) (api.AgentIdentity, error) {
	key := sha256.Sum256([]byte(credential))
	c := &s.agentAuth
	now := time.Now()
	if !fresh && s.cfg.AgentAuthCache > 0 {
		c.mu.Lock()
		e, ok := c.m[key]
		c.mu.Unlock()
		if ok && now.Before(e.until) {
			return e.id, nil
		}
	}
	id, err := s.cfg.Store.AuthenticateAgent(ctx, credential)
	if err != nil {
		c.forget(id.ID)
		return id, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// A credential checked in the store may have replaced the identity's previous one (a rotation completes
	// when the new one is first used): the others of the identity are checked again.
	for k, e := range c.m {
		if e.id.ID == id.ID {
			delete(c.m, k)
		}
	}
	if c.m == nil || len(c.m) >= maxCachedCredentials {
		c.m = map[[32]byte]cachedIdentity{}
	}
	if s.cfg.AgentAuthCache > 0 {
		c.m[key] = cachedIdentity{id: id, until: now.Add(s.cfg.AgentAuthCache)}
	}
	return id, nil
}

// forget drops an identity's credentials (revoked through this replica).
func (c *agentAuthCache) forget(agentID string) {
	if agentID == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.m {
		if e.id.ID == agentID {
			delete(c.m, k)
		}
	}
}
