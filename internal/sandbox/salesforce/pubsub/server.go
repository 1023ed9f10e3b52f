// Package pubsub serves the Salesforce Pub/Sub API (gRPC service eventbus.v1.PubSub) over the emulated
// org's CDC event log: topics, Avro schemas by ID, Subscribe with flow control and keepalives, and the
// documented errors.
//
// The contract, as Salesforce documents the Pub/Sub API and its change events (docs/sandbox-salesforce.md):
//
//   - Every RPC first applies the injected latency, counts itself, and checks the accesstoken, instanceurl
//     and tenantid metadata through the Authenticator (UNAUTHENTICATED otherwise).
//   - Every response carries an rpc_id; every error carries it too, appended to the message as
//     "rpcId: <id>" and as an rpc-id trailer, plus the Salesforce error-code trailer where one is known.
//   - GetTopic describes /data/ChangeEvents and the /data/<Entity>ChangeEvent channel of every object of
//     the schema registry: subscribable, not publishable. GetSchema returns any schema ever handed out.
//   - Subscribe streams the events of one topic in commit order, never more than the credit the client
//     requested (at most 100 outstanding), with keepalives while idle and an idle close without credit.
//     See Subscribe.
//   - Publish and PublishStream refuse CDC topics with PERMISSION_DENIED: change events are published by
//     the org when records change, never by clients (can_publish is false). A request-level status, rather
//     than a per-event PublishResult error, stops a misconfigured publisher at once, and is how gRPC and
//     spec 6.7 report a missing permission on a topic.
//   - ManagedSubscribe answers UNIMPLEMENTED.
package pubsub

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	eventbusv1 "github.com/crmsync/terraform-provider-crmsync/internal/proto/eventbus/v1"
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

// Counter kinds: one per RPC kind, counted once per call, and the number of events delivered.
const (
	KindSubscribe        = "pubsub.subscribe"
	KindGetSchema        = "pubsub.get_schema"
	KindGetTopic         = "pubsub.get_topic"
	KindPublish          = "pubsub.publish"
	KindPublishStream    = "pubsub.publish_stream"
	KindManagedSubscribe = "pubsub.managed_subscribe"
	KindEventsDelivered  = "pubsub.events_delivered"
)

// Default intervals (spec 6.4).
const (
	DefaultKeepaliveInterval = 270 * time.Second
	DefaultIdleTimeout       = 60 * time.Second
	// MaxOutstanding caps a Subscribe stream's credit: larger requests are treated as this many.
	MaxOutstanding = 100
)

// Config configures a Server.
type Config struct {
	Log     *cdc.Log
	Schemas *schema.Registry
	// Auth checks every RPC's metadata; nil accepts every call (for tests of other concerns).
	Auth Authenticator
	// Allocation is consulted before every delivery; nil means unlimited.
	Allocation Allocation
	// Counter receives the counts of RPCs and delivered events; nil counts nothing.
	Counter Counter
	// Faults supplies per-RPC latency and stream drops; nil injects nothing.
	Faults *faults.Injector
	// Clock is the sandbox clock (retention is measured by the log on the same clock); keepalive and idle
	// intervals are wall-clock durations.
	Clock  *clock.Clock
	Logger *slog.Logger
	OrgID  string // TopicInfo.tenant_guid
	// KeepaliveInterval: an empty FetchResponse is sent when no events arrive for this long while credit is
	// outstanding (270 s by default, spec 6.4).
	KeepaliveInterval time.Duration
	// IdleTimeout: a stream without outstanding credit is closed when no FetchRequest arrives for this long
	// after the last FetchResponse (60 s by default).
	IdleTimeout time.Duration
}

// Server implements eventbus.v1.PubSub. It is safe for concurrent use.
type Server struct {
	stop, stopped chan struct{}
	closeOnce     sync.Once
	eventbusv1.UnimplementedPubSubServer

	cfg     Config
	log     *slog.Logger
	schemas *schemaCache

	mu        sync.RWMutex
	keepalive time.Duration
	idle      time.Duration
}

// New returns a Server. Zero intervals take the spec's defaults.
func New(cfg Config) *Server {
	if cfg.Clock == nil {
		cfg.Clock = clock.New()
	}
	logger := cfg.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, log: logger, schemas: newSchemaCache(cfg.Schemas), stop: make(chan struct{}), stopped: make(chan struct{})}
	s.SetIntervals(cfg.KeepaliveInterval, cfg.IdleTimeout)
	if cfg.Log != nil {
		go s.encodeAhead()
	} else {
		close(s.stopped)
	}
	return s
}

// encodeAhead serializes events as they are committed, as a real bus stores them, so delivering them
// (once or to many subscribers) only copies bytes.
func (s *Server) encodeAhead() {
	defer close(s.stopped)
	log := s.cfg.Log
	var pos uint64
	for {
		changed := log.Changed()
		events, next := log.Read(cdc.AllChangesTo, pos, 1000)
		for i := range events {
			ev := &events[i]
			if len(ev.Payload) > 0 {
				continue
			}
			es, err := s.schemas.forEntity(ev.Entity)
			if err != nil {
				continue // delivery reports it
			}
			if payload, err := es.encode(ev); err == nil {
				log.SetEncoding(ev.ReplayID, es.id, payload)
			}
		}
		if next > pos {
			pos = next
		}
		if len(events) == 1000 {
			continue
		}
		select {
		case <-changed:
		case <-s.stop:
			return
		}
	}
}

// Close stops the server's background encoding.
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.stop) })
	<-s.stopped
}

// Register registers the service on g.
func (s *Server) Register(g *grpc.Server) { eventbusv1.RegisterPubSubServer(g, s) }

// SetIntervals changes the keepalive and idle intervals of streams from their next wait on; zero values
// take the spec's defaults.
func (s *Server) SetIntervals(keepalive, idle time.Duration) {
	if keepalive <= 0 {
		keepalive = DefaultKeepaliveInterval
	}
	if idle <= 0 {
		idle = DefaultIdleTimeout
	}
	s.mu.Lock()
	s.keepalive, s.idle = keepalive, idle
	s.mu.Unlock()
}

func (s *Server) intervals() (keepalive, idle time.Duration) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.keepalive, s.idle
}

// Salesforce error codes sent in the error-code trailer (spec 6.7). Codes marked "not in the spec" come
// from the Pub/Sub API's published error table as quoted by secondary sources; the status paired with
// them is this emulator's choice where the table gives none.
const (
	codeAuth            = "sfdc.platform.eventbus.grpc.service.auth.error"
	codeReplayCorrupted = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.corrupted"
	codeReplayInvalid   = "sfdc.platform.eventbus.grpc.subscription.fetch.replayid.validation.failed"
	codeLimitExceeded   = "sfdc.platform.eventbus.grpc.subscription.limit.exceeded"
	codeTopicNotFound   = "sfdc.platform.eventbus.grpc.topic.not.found"                             // not in the spec
	codeTopicEmpty      = "sfdc.platform.eventbus.grpc.topic.validation.empty"                      // not in the spec
	codeTopicMismatch   = "sfdc.platform.eventbus.grpc.subscription.fetch.topic.mismatch"           // not in the spec
	codeRequestedEvents = "sfdc.platform.eventbus.grpc.subscription.fetch.requested.events.invalid" // not in the spec
	codeSchemaBlank     = "sfdc.platform.eventbus.grpc.schema.validation.failed"                    // not in the spec
	codeSchemaAccess    = "sfdc.platform.eventbus.grpc.schema.meta.permission"                      // not in the spec
)

// call is one RPC in progress.
type call struct {
	ctx   context.Context
	rpcID string
	kind  string
	log   *slog.Logger
}

// begin starts an RPC: injected latency, the count, an rpc ID and the auth check. A non-nil error is the
// RPC's answer.
func (s *Server) begin(ctx context.Context, kind string) (*call, error) {
	c := &call{ctx: ctx, rpcID: uuid.NewString(), kind: kind}
	c.log = s.log.With("rpc", kind, "rpc_id", c.rpcID)
	if s.cfg.Counter != nil {
		s.cfg.Counter.Count(kind, 1)
	}
	if s.cfg.Faults != nil {
		if d := s.cfg.Faults.Latency(); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, status.FromContextError(ctx.Err()).Err()
			}
		}
	}
	if s.cfg.Auth == nil {
		return c, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	first := func(key string) string {
		if v := md.Get(key); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	if err := s.cfg.Auth.Authenticate(ctx, first("accesstoken"), first("instanceurl"), first("tenantid")); err != nil {
		c.log.Info("pubsub call not authenticated", "cause", err)
		return nil, c.fail(codes.Unauthenticated, codeAuth, "An authentication exception occurred. Provide valid authentication via metadata headers.")
	}
	return c, nil
}

// fail returns the RPC's error in the Pub/Sub API's shape: the message ends with "rpcId: <id>", and the
// rpc-id and (when known) error-code trailers are set.
func (c *call) fail(code codes.Code, sfCode, msg string) error {
	md := metadata.Pairs("rpc-id", c.rpcID)
	if sfCode != "" {
		md.Append("error-code", sfCode)
	}
	if err := grpc.SetTrailer(c.ctx, md); err != nil {
		c.log.Debug("setting the error trailer", "err", err)
	}
	c.log.Info("pubsub call failed", "code", code.String(), "error_code", sfCode, "msg", msg)
	return status.Error(code, msg+" rpcId: "+c.rpcID)
}

// topicEntity resolves a topic name: the entity of a single-entity channel, "" for /data/ChangeEvents,
// and ok false for every other name. Names are case-sensitive, as on a real org.
func (s *Server) topicEntity(topic string) (entity string, ok bool) {
	if topic == cdc.AllChangesTo {
		return "", true
	}
	entity = cdc.EntityOfTopic(topic)
	if entity == "" {
		return "", false
	}
	obj, _, found := s.cfg.Schemas.Get(entity)
	if !found || obj.Name != entity {
		return "", false
	}
	return entity, true
}

func (c *call) topicNotFound(topic string) error {
	if strings.TrimSpace(topic) == "" {
		return c.fail(codes.InvalidArgument, codeTopicEmpty, "The topic name can't be blank.")
	}
	return c.fail(codes.NotFound, codeTopicNotFound, "The topic "+topic+" doesn't exist or you don't have access to it.")
}

// GetTopic describes a CDC channel. The multi-entity /data/ChangeEvents channel has no single schema: its
// schema_id is empty, as on a real org, and each event names its own schema.
func (s *Server) GetTopic(ctx context.Context, req *eventbusv1.TopicRequest) (*eventbusv1.TopicInfo, error) {
	c, err := s.begin(ctx, KindGetTopic)
	if err != nil {
		return nil, err
	}
	entity, ok := s.topicEntity(req.GetTopicName())
	if !ok {
		return nil, c.topicNotFound(req.GetTopicName())
	}
	info := &eventbusv1.TopicInfo{
		TopicName: req.GetTopicName(), TenantGuid: s.cfg.OrgID, CanPublish: false, CanSubscribe: true, RpcId: c.rpcID,
	}
	if entity != "" {
		es, err := s.schemas.forEntity(entity)
		if err != nil {
			c.log.Error("building change event schema", "entity", entity, "err", err)
			return nil, c.fail(codes.Internal, "", "An internal error occurred while describing the topic.")
		}
		info.SchemaId = es.id
	}
	return info, nil
}

// GetSchema returns an Avro schema by ID: the current schema of an entity or any earlier one.
func (s *Server) GetSchema(ctx context.Context, req *eventbusv1.SchemaRequest) (*eventbusv1.SchemaInfo, error) {
	c, err := s.begin(ctx, KindGetSchema)
	if err != nil {
		return nil, err
	}
	id := strings.TrimSpace(req.GetSchemaId())
	if id == "" {
		return nil, c.fail(codes.InvalidArgument, codeSchemaBlank, "Schema validation failed. The schema ID can't be blank.")
	}
	es, ok := s.schemas.lookup(id)
	if !ok {
		return nil, c.fail(codes.NotFound, codeSchemaAccess, "Schema access error. The schema ID "+id+" is not valid or you don't have access to it.")
	}
	return &eventbusv1.SchemaInfo{SchemaJson: es.json, SchemaId: es.id, RpcId: c.rpcID}, nil
}

// publishDenied is the answer to publishing on a CDC topic.
func (c *call) publishDenied(topic string) error {
	return c.fail(codes.PermissionDenied, "", "You don't have permission to publish to the topic "+topic+". Change events are published by the org, not by clients.")
}

// Publish refuses to publish: every topic the org serves is a CDC channel.
func (s *Server) Publish(ctx context.Context, req *eventbusv1.PublishRequest) (*eventbusv1.PublishResponse, error) {
	c, err := s.begin(ctx, KindPublish)
	if err != nil {
		return nil, err
	}
	if _, ok := s.topicEntity(req.GetTopicName()); !ok {
		return nil, c.topicNotFound(req.GetTopicName())
	}
	return nil, c.publishDenied(req.GetTopicName())
}

// PublishStream refuses the first publish request, as Publish does, and ends the stream.
func (s *Server) PublishStream(stream eventbusv1.PubSub_PublishStreamServer) error {
	c, err := s.begin(stream.Context(), KindPublishStream)
	if err != nil {
		return err
	}
	req, err := stream.Recv()
	if err != nil {
		return nil //nolint:nilerr // the client closed the stream (or went away) before publishing anything
	}
	if _, ok := s.topicEntity(req.GetTopicName()); !ok {
		return c.topicNotFound(req.GetTopicName())
	}
	return c.publishDenied(req.GetTopicName())
}

// ManagedSubscribe is not emulated.
func (s *Server) ManagedSubscribe(stream eventbusv1.PubSub_ManagedSubscribeServer) error {
	c, err := s.begin(stream.Context(), KindManagedSubscribe)
	if err != nil {
		return err
	}
	return c.fail(codes.Unimplemented, "", "ManagedSubscribe is not supported by the crmsync sandbox; use Subscribe.")
}
