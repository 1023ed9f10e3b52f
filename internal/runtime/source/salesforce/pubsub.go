package salesforce

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/cafile"
	eventbusv1 "github.com/crmsync/terraform-provider-crmsync/internal/proto/eventbus/v1"
	"github.com/crmsync/terraform-provider-crmsync/internal/retry"
)

// Pub/Sub API errors the caller acts on.
var (
	// ErrReplayInvalid: the stored replay ID is corrupted or older than the retention window; the caller
	// must resubscribe with a preset and re-sync (spec 5.5).
	ErrReplayInvalid = errors.New("salesforce rejected the replay ID")
	// ErrDeliveryLimit: the org's event delivery allocation is spent; events stay retained for 72 h.
	ErrDeliveryLimit = errors.New("salesforce event delivery allocation exceeded")
	// ErrPositionLost: a LATEST subscription dropped before any event or keepalive told its position, so
	// resuming could miss events; the caller must re-sync.
	ErrPositionLost = errors.New("change stream dropped before its position was known")
)

// Replay presets.
const (
	Latest   = eventbusv1.ReplayPreset_LATEST
	Earliest = eventbusv1.ReplayPreset_EARLIEST
	Custom   = eventbusv1.ReplayPreset_CUSTOM
)

// PubSub is a connection to the Pub/Sub API.
type PubSub struct {
	c       *Client
	conn    *grpc.ClientConn
	api     eventbusv1.PubSubClient
	schemas schemaCache
}

// DialPubSub connects to the Pub/Sub API at addr (api.pubsub.salesforce.com:7443 for real orgs) over TLS
// with the client's CA settings; plaintext is allowed only for a loopback address.
func (c *Client) DialPubSub(addr string, plaintext bool) (*PubSub, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("pub/sub address %q: %w", addr, err)
	}
	if c.cfg.CheckHost != nil {
		if err := c.cfg.CheckHost(host, port); err != nil {
			return nil, fmt.Errorf("pub/sub: %w", err)
		}
	}
	var creds credentials.TransportCredentials
	if plaintext {
		if !api.IsLoopback(host) {
			return nil, fmt.Errorf("pub/sub address %q: plaintext is only allowed on loopback", addr)
		}
		creds = insecure.NewCredentials()
	} else {
		tlsCfg, err := cafile.TLSConfig("CA file", c.cfg.CAFile)
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(tlsCfg)
	}
	conn, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(creds),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 20 * time.Second}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)))
	if err != nil {
		return nil, fmt.Errorf("pub/sub %s: %w", addr, err)
	}
	return &PubSub{c: c, conn: conn, api: eventbusv1.NewPubSubClient(conn)}, nil
}

// Close closes the connection.
func (p *PubSub) Close() error { return p.conn.Close() }

// authed adds the accesstoken, instanceurl and tenantid metadata (spec 6.3).
func (p *PubSub) authed(ctx context.Context) (context.Context, *Session, error) {
	s, err := p.c.tokens.Session(ctx)
	if err != nil {
		return nil, nil, err
	}
	return metadata.AppendToOutgoingContext(ctx, "accesstoken", s.AccessToken, "instanceurl", s.InstanceURL, "tenantid", s.OrgID), s, nil
}

// unary runs a unary RPC, refreshing the session once on UNAUTHENTICATED.
func unary[T any](ctx context.Context, p *PubSub, kind string, call func(context.Context) (T, error)) (T, error) {
	var zero T
	for attempt := 0; ; attempt++ {
		actx, s, err := p.authed(ctx)
		if err != nil {
			return zero, err
		}
		p.c.Stats.add(kind)
		out, err := call(actx)
		if status.Code(err) == codes.Unauthenticated && attempt == 0 {
			p.c.tokens.Invalidate(s.AccessToken)
			continue
		}
		if err != nil {
			return zero, classify(err)
		}
		return out, nil
	}
}

// Topic returns a topic's info.
func (p *PubSub) Topic(ctx context.Context, name string) (*eventbusv1.TopicInfo, error) {
	return unary(ctx, p, "pubsub.get_topic", func(ctx context.Context) (*eventbusv1.TopicInfo, error) {
		return p.api.GetTopic(ctx, &eventbusv1.TopicRequest{TopicName: name})
	})
}

func (p *PubSub) codec(ctx context.Context, id string) (*schemaCodec, error) {
	if c := p.schemas.get(id); c != nil {
		return c, nil
	}
	info, err := unary(ctx, p, "pubsub.get_schema", func(ctx context.Context) (*eventbusv1.SchemaInfo, error) {
		return p.api.GetSchema(ctx, &eventbusv1.SchemaRequest{SchemaId: id})
	})
	if err != nil {
		return nil, err
	}
	c, err := parseSchema(info.GetSchemaJson())
	if err != nil {
		return nil, fmt.Errorf("schema %s: %w", id, err)
	}
	p.schemas.put(id, c)
	return c, nil
}

// classify maps Pub/Sub errors to the package's sentinel errors by their error-code trailer.
func classify(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	msg := st.Message()
	switch {
	case st.Code() == codes.InvalidArgument && strings.Contains(msg, "replay"),
		strings.Contains(msg, "replayid.corrupted"), strings.Contains(msg, "replayid.validation.failed"):
		return fmt.Errorf("%w: %s", ErrReplayInvalid, msg)
	case st.Code() == codes.ResourceExhausted && strings.Contains(msg, "limit"):
		return fmt.Errorf("%w: %s", ErrDeliveryLimit, msg)
	}
	return err
}

// classifyStream is classify plus the error-code trailer, which the stream exposes.
func classifyStream(err error, trailer metadata.MD) error {
	for _, code := range trailer.Get("error-code") {
		switch {
		case strings.Contains(code, "replayid"):
			return fmt.Errorf("%w: %s: %w", ErrReplayInvalid, code, err)
		case strings.Contains(code, "subscription.limit.exceeded"):
			return fmt.Errorf("%w: %s", ErrDeliveryLimit, code)
		}
	}
	return classify(err)
}

// SubscribeOptions says where and how to subscribe.
type SubscribeOptions struct {
	Topic    string
	Preset   eventbusv1.ReplayPreset
	ReplayID []byte // with Custom: deliver events after this ID
	// Credit is how many events to keep requested (at most 100, the server's cap). A holder that only wants
	// to learn the stream position asks for 1.
	Credit int
	// Types marks date and datetime fields for decoding.
	Types FieldTypes
}

// Batch is what one FetchResponse delivered.
type Batch struct {
	Events []*ChangeEvent
	// LatestReplayID is the stream position after this response (keepalives carry it with no events).
	LatestReplayID []byte
}

// Subscription is one Subscribe stream that reconnects by itself: on a transient failure it resubscribes,
// with backoff, after the last replay ID it received (an event's or a keepalive's), so the consumer sees one
// gapless sequence. Not safe for concurrent use.
type Subscription struct {
	p       *PubSub
	opts    SubscribeOptions
	ctx     context.Context
	cancel  context.CancelFunc
	stream  grpc.BidiStreamingClient[eventbusv1.FetchRequest, eventbusv1.FetchResponse]
	last    []byte // last replay ID received
	pending int32  // events requested and not yet delivered, per the server
	credit  int32
	fails   int
	// Reconnects counts resubscriptions after failures.
	Reconnects int
}

// Subscribe opens a subscription. Events arrive through Next.
func (p *PubSub) Subscribe(ctx context.Context, opts SubscribeOptions) (*Subscription, error) {
	if opts.Credit <= 0 || opts.Credit > 100 {
		opts.Credit = 100
	}
	sctx, cancel := context.WithCancel(ctx)
	s := &Subscription{p: p, opts: opts, ctx: sctx, cancel: cancel, credit: int32(opts.Credit)} //nolint:gosec // 1..100, checked above
	if opts.Preset == Custom {
		s.last = opts.ReplayID
	}
	if err := s.open(); err != nil { //nolint:contextcheck // open uses the subscription's own context, derived from ctx
		cancel()
		return nil, err
	}
	return s, nil
}

// open starts a stream from the current position and sends the first FetchRequest.
func (s *Subscription) open() error {
	actx, _, err := s.p.authed(s.ctx)
	if err != nil {
		return err
	}
	s.p.c.Stats.add("pubsub.subscribe")
	stream, err := s.p.api.Subscribe(actx)
	if err != nil {
		return classify(err)
	}
	req := &eventbusv1.FetchRequest{TopicName: s.opts.Topic, NumRequested: s.credit}
	switch {
	case s.last != nil:
		req.ReplayPreset, req.ReplayId = Custom, s.last
	default:
		req.ReplayPreset = s.opts.Preset
	}
	if err := stream.Send(req); err != nil {
		return classifyStream(err, stream.Trailer())
	}
	s.stream, s.pending = stream, s.credit
	return nil
}

// Position is the last replay ID received (nil before the first event or keepalive).
func (s *Subscription) Position() []byte { return s.last }

// SetCredit changes how many events are kept requested (1..100); more is requested at the next Next.
func (s *Subscription) SetCredit(n int) {
	s.credit = int32(min(max(n, 1), 100))
}

// Next blocks until the server sends events or a keepalive, tops the credit back up, and returns what
// arrived. It runs on the context given to Subscribe. Terminal errors: ErrReplayInvalid, ErrDeliveryLimit, ErrPositionLost, NOT_FOUND and
// PERMISSION_DENIED statuses, and the context's error.
func (s *Subscription) Next() (*Batch, error) {
	for {
		if s.stream == nil {
			if err := s.reconnect(); err != nil {
				return nil, err
			}
		}
		resp, err := s.stream.Recv()
		if err != nil {
			cerr := classifyStream(err, s.stream.Trailer())
			s.stream = nil
			if s.ctx.Err() != nil {
				return nil, s.ctx.Err()
			}
			if errors.Is(cerr, ErrReplayInvalid) || errors.Is(cerr, ErrDeliveryLimit) {
				return nil, cerr
			}
			switch status.Code(err) {
			case codes.NotFound, codes.PermissionDenied, codes.InvalidArgument:
				return nil, cerr
			case codes.Unauthenticated:
				if sess, serr := s.p.c.tokens.Session(s.ctx); serr == nil {
					s.p.c.tokens.Invalidate(sess.AccessToken)
				}
			}
			if errors.Is(err, io.EOF) || status.Code(err) != codes.OK {
				continue // reconnect at the top of the loop
			}
			return nil, cerr
		}
		s.fails = 0
		s.pending = resp.GetPendingNumRequested()
		b := &Batch{LatestReplayID: resp.GetLatestReplayId()}
		for _, ce := range resp.GetEvents() {
			ev, err := s.decode(ce)
			if err != nil {
				return nil, err
			}
			b.Events = append(b.Events, ev)
			s.last = LaterReplayID(s.last, ce.GetReplayId())
		}
		if len(b.Events) == 0 && len(b.LatestReplayID) > 0 {
			s.last = b.LatestReplayID
		}
		s.p.c.Stats.add("pubsub.responses")
		if s.pending < s.credit/2+1 && s.pending < s.credit {
			want := s.credit - s.pending
			if err := s.stream.Send(&eventbusv1.FetchRequest{TopicName: s.opts.Topic, NumRequested: want}); err == nil {
				s.pending += want
			}
		}
		return b, nil
	}
}

func (s *Subscription) decode(ce *eventbusv1.ConsumerEvent) (*ChangeEvent, error) {
	pe := ce.GetEvent()
	codec, err := s.p.codec(s.ctx, pe.GetSchemaId())
	if err != nil {
		return nil, err
	}
	ev, err := codec.decode(pe.GetPayload(), s.opts.Types)
	if err != nil {
		return nil, fmt.Errorf("event %x on %s: %w", ce.GetReplayId(), s.opts.Topic, err)
	}
	ev.ReplayID = ce.GetReplayId()
	return ev, nil
}

// reconnect resubscribes after a failure, backing off.
func (s *Subscription) reconnect() error {
	if s.last == nil && s.opts.Preset == Latest {
		return ErrPositionLost
	}
	for {
		if s.fails > 0 {
			if err := retry.Sleep(s.ctx, backoff.Delay(s.fails-1)); err != nil {
				return err
			}
		}
		s.fails++
		s.Reconnects++
		err := s.open()
		if err == nil {
			return nil
		}
		if errors.Is(err, ErrReplayInvalid) || s.ctx.Err() != nil {
			return err
		}
		if st, ok := status.FromError(err); ok && (st.Code() == codes.NotFound || st.Code() == codes.PermissionDenied) {
			return err
		}
		if s.fails > 20 {
			return fmt.Errorf("pub/sub: giving up after %d reconnect attempts: %w", s.fails, err)
		}
	}
}

// LaterReplayID returns the later of two replay IDs. Replay IDs are opaque, but in practice they are 8-byte
// big-endian numbers that grow in commit order, so equal-length IDs compare as bytes; for IDs of different
// lengths the second wins. Used so a redelivered or reordered event never moves a position back.
func LaterReplayID(a, b []byte) []byte {
	if len(a) == len(b) && bytes.Compare(a, b) > 0 {
		return a
	}
	return b
}

// Close ends the subscription: it cancels the context every stream of the subscription runs on, which ends
// the RPC and releases it, and makes a Next blocked in another goroutine return. It is safe to call while
// Next runs (it touches nothing Next writes).
func (s *Subscription) Close() {
	s.cancel()
}
