// Package pubsub serves the Salesforce Pub/Sub API (gRPC service eventbus.v1.PubSub) over the emulated
// org's CDC event log: topics, Avro schemas by ID, Subscribe with flow control and keepalives, and the
// documented errors.
package pubsub

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/clock"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/cdc"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/schema"
)

// Authenticator checks the auth metadata every RPC carries (spec 6.3).
type Authenticator interface {
	// Authenticate returns nil when the access token is valid and instanceURL and tenantID name this org.
	Authenticate(ctx context.Context, accessToken, instanceURL, tenantID string) error
}

// Allocation is the org's event delivery allocation (spec 5.6).
type Allocation interface {
	// ConsumeDeliveries records n delivered events and reports false when the allocation is exhausted
	// (nothing is recorded then).
	ConsumeDeliveries(n int) bool
}

// Counter counts API calls by kind for the admin API (kinds such as "pubsub.subscribe").
type Counter interface {
	Count(kind string, n int)
}

// Config configures a Server.
type Config struct {
	Log        *cdc.Log
	Schemas    *schema.Registry
	Auth       Authenticator
	Allocation Allocation
	Counter    Counter
	Faults     *faults.Injector
	Clock      *clock.Clock
	Logger     *slog.Logger
	OrgID      string // TopicInfo.tenant_guid
	// KeepaliveInterval: an empty FetchResponse is sent when no events arrive for this long while credit is
	// outstanding (270 s by default, spec 6.4).
	KeepaliveInterval time.Duration
	// IdleTimeout: a stream without outstanding credit is closed when no FetchRequest arrives for this long
	// after the last FetchResponse (60 s by default).
	IdleTimeout time.Duration
}

// Server implements eventbus.v1.PubSub.
type Server struct {
	cfg Config
}

// New returns a Server.
func New(cfg Config) *Server { return &Server{cfg: cfg} }

// Register registers the service on g.
func (s *Server) Register(g *grpc.Server) {}
