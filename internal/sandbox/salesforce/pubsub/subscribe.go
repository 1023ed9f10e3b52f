package pubsub

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"slices"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventbusv1 "github.com/crmsync/terraform-provider-crmsync/internal/proto/eventbus/v1"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/cdc"
)

// Subscribe streams the change events of one topic (spec 6.4):
//
//   - The first FetchRequest names the topic and where to start: LATEST (the tip of the stream), EARLIEST
//     (the oldest retained event) or CUSTOM (after replay_id, 8 bytes big-endian). A CUSTOM replay ID
//     older than the retention window fails with INVALID_ARGUMENT and error-code ...replayid.corrupted;
//     one never issued (garbage, wrong length, from the future) with ...replayid.validation.failed. An
//     unknown topic is NOT_FOUND. Replay options in later requests are ignored; a later request naming
//     another topic is INVALID_ARGUMENT.
//   - Flow control: every request adds num_requested (which must be positive) to the stream's credit,
//     capped at 100 outstanding. Events go out in commit order, several per FetchResponse but never more
//     than the credit; each response reports the credit left in pending_num_requested and the position
//     reached in latest_replay_id.
//   - While credit is outstanding and nothing arrives for the keepalive interval, an empty FetchResponse
//     carries the current tip (the log is ticked first so the tip is a fresh, valid position).
//   - When events after the stream's position are purged before it fetched them (it asked for nothing for
//     longer than the retention window), the stream fails as a CUSTOM subscription at that position would:
//     INVALID_ARGUMENT, ...replayid.corrupted. It never skips events quietly.
//   - Without credit, the stream ends (status OK) when no FetchRequest arrives within the idle timeout
//     after the last response.
//   - Each delivery is charged to the Allocation first: when it is exhausted the stream fails with
//     RESOURCE_EXHAUSTED and ...subscription.limit.exceeded, delivering nothing.
//   - After every response sent, the fault injector may drop the stream: UNAVAILABLE, "RST_STREAM closed
//     stream", as a transient network error surfaces from a real org.
func (s *Server) Subscribe(stream eventbusv1.PubSub_SubscribeServer) error {
	ctx := stream.Context()
	c, err := s.begin(ctx, KindSubscribe)
	if err != nil {
		return err
	}
	first, err := stream.Recv()
	if err != nil {
		return nil //nolint:nilerr // the client closed the stream (or went away) before subscribing
	}
	sub := &subscription{s: s, c: c, stream: stream, topic: first.GetTopicName()}
	if err := sub.start(first); err != nil {
		return err
	}
	c.log.Debug("subscribed", "topic", sub.topic, "preset", first.GetReplayPreset().String(), "after", sub.pos)

	// Requests are read on their own goroutine so the stream can wait for a request, an event and a
	// timer at once. It ends when Recv fails, which happens at the latest when the handler returns.
	reqs := make(chan *eventbusv1.FetchRequest)
	recvErr := make(chan error, 1)
	go func() {
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()
	return sub.run(ctx, reqs, recvErr)
}

// subscription is the state of one Subscribe stream; only the stream's handler goroutine uses it.
type subscription struct {
	s       *Server
	c       *call
	stream  eventbusv1.PubSub_SubscribeServer
	topic   string
	pos     uint64 // the replay ID read up to: the next event delivered is after it
	pending int    // credit: events the client may still receive
	// lastActivity is when the last response was sent or request received, for the keepalive and idle
	// timers.
	lastActivity time.Time
}

// start validates the first request and positions the subscription.
func (sub *subscription) start(first *eventbusv1.FetchRequest) error {
	c, log := sub.c, sub.s.cfg.Log
	if _, ok := sub.s.topicEntity(sub.topic); !ok {
		return c.topicNotFound(sub.topic)
	}
	switch first.GetReplayPreset() {
	case eventbusv1.ReplayPreset_LATEST:
		sub.pos = log.Latest()
	case eventbusv1.ReplayPreset_EARLIEST:
		sub.pos = log.Earliest()
	case eventbusv1.ReplayPreset_CUSTOM:
		raw := first.GetReplayId()
		if len(raw) != 8 {
			return c.fail(codes.InvalidArgument, codeReplayInvalid, "The Replay ID validation failed.")
		}
		id := binary.BigEndian.Uint64(raw)
		switch err := log.Validate(id); {
		case errors.Is(err, cdc.ErrReplayTooOld):
			return c.fail(codes.InvalidArgument, codeReplayCorrupted, "The Replay ID validation failed.")
		case err != nil:
			return c.fail(codes.InvalidArgument, codeReplayInvalid, "The Replay ID validation failed.")
		}
		sub.pos = id
	default:
		return c.fail(codes.InvalidArgument, "", "The replay preset "+first.GetReplayPreset().String()+" is not valid.")
	}
	sub.lastActivity = time.Now()
	return sub.addCredit(first)
}

// addCredit applies a request's num_requested.
func (sub *subscription) addCredit(req *eventbusv1.FetchRequest) error {
	n := req.GetNumRequested()
	if n <= 0 {
		return sub.c.fail(codes.InvalidArgument, codeRequestedEvents, "The number of requested events must be greater than zero.")
	}
	sub.pending = int(min(int64(sub.pending)+int64(n), MaxOutstanding))
	return nil
}

func (sub *subscription) run(ctx context.Context, reqs <-chan *eventbusv1.FetchRequest, recvErr <-chan error) error {
	log := sub.s.cfg.Log
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		// Take the wake-up channel before reading, so an append between the read and the wait is seen.
		changed := log.Changed()
		if sub.pending > 0 {
			events, pos := log.Read(sub.topic, sub.pos, sub.pending)
			if err := sub.checkRetained(); err != nil {
				return err
			}
			if len(events) > 0 {
				if err := sub.deliver(events, pos); err != nil {
					return err
				}
				continue
			}
			// Nothing for this topic up to the tip: skip ahead, quietly; the next keepalive reports it.
			sub.pos = pos
		}

		keepalive, idle := sub.s.intervals()
		wait := idle
		var wake <-chan struct{} // appends matter only while there is credit to deliver them
		if sub.pending > 0 {
			wait, wake = keepalive, changed
		}
		timer.Reset(time.Until(sub.lastActivity.Add(wait)))
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-wake:
		case req := <-reqs:
			sub.lastActivity = time.Now()
			if t := req.GetTopicName(); t != "" && t != sub.topic {
				return sub.c.fail(codes.InvalidArgument, codeTopicMismatch,
					"The topic name "+t+" in the fetch request doesn't match the subscription's topic "+sub.topic+".")
			}
			if err := sub.addCredit(req); err != nil {
				return err
			}
		case err := <-recvErr:
			if !errors.Is(err, io.EOF) {
				return err // the client went away; the status is the transport's
			}
			// The client half-closed: it sends no more requests, and the stream ends once the credit is used
			// up and the idle timeout passes.
			reqs, recvErr = nil, nil
		case <-timer.C:
			if sub.pending == 0 {
				sub.c.log.Debug("closing idle stream", "topic", sub.topic)
				return nil
			}
			if err := sub.keepalive(); err != nil {
				return err
			}
		}
	}
}

// checkRetained fails the stream when events after its position were purged before it fetched them (a
// subscriber that stopped asking for longer than the retention window): the server cannot deliver them,
// and it does not skip them quietly; the subscriber sees what it would see subscribing at that position.
// It is called right after a Read (which purges) and before the position moves on.
func (sub *subscription) checkRetained() error {
	if sub.s.cfg.Log.Lost(sub.pos) {
		return sub.c.fail(codes.InvalidArgument, codeReplayCorrupted, "The Replay ID validation failed.")
	}
	return nil
}

// keepalive sends an empty response with the tip of the stream, unless events turned up.
func (sub *subscription) keepalive() error {
	log := sub.s.cfg.Log
	log.Tick()
	events, pos := log.Read(sub.topic, sub.pos, sub.pending)
	if err := sub.checkRetained(); err != nil {
		return err
	}
	if len(events) > 0 {
		return sub.deliver(events, pos)
	}
	sub.pos = pos
	return sub.send(&eventbusv1.FetchResponse{LatestReplayId: replayBytes(pos)})
}

// deliver sends events (at most the credit) read up to pos.
func (sub *subscription) deliver(events []cdc.Event, pos uint64) error {
	if a := sub.s.cfg.Allocation; a != nil && !a.ConsumeDeliveries(len(events)) {
		return sub.c.fail(codes.ResourceExhausted, codeLimitExceeded, "You have exceeded the event delivery limit for your org.")
	}
	out := make([]*eventbusv1.ConsumerEvent, 0, len(events))
	for i := range events {
		ev := &events[i]
		es, err := sub.s.schemas.forEntity(ev.Entity)
		if err != nil {
			sub.c.log.Error("no change event schema", "entity", ev.Entity, "err", err)
			return sub.c.fail(codes.Internal, "", "An internal error occurred while encoding an event.")
		}
		payload := ev.Payload
		if len(payload) == 0 || ev.SchemaID != es.id {
			payload, err = es.encode(ev)
		}
		if err != nil {
			sub.c.log.Error("encoding a change event", "err", err)
			return sub.c.fail(codes.Internal, "", "An internal error occurred while encoding an event.")
		}
		replay := replayBytes(ev.ReplayID)
		out = append(out, &eventbusv1.ConsumerEvent{
			Event: &eventbusv1.ProducerEvent{
				// The event UUID is stable across redeliveries, as a real event's is.
				Id:       uuid.NewSHA1(uuid.NameSpaceOID, append([]byte(sub.s.cfg.OrgID), replay...)).String(),
				SchemaId: es.id,
				Payload:  payload,
			},
			ReplayId: replay,
		})
	}
	sub.pending -= len(out)
	if f := sub.s.cfg.Faults; f != nil {
		// Injected delivery faults: redeliveries of events already sent, and responses out of order. The
		// credit is charged for the originals only, as a broker retrying a delivery would.
		var extra []*eventbusv1.ConsumerEvent
		for _, ce := range out {
			if f.Duplicate() {
				extra = append(extra, ce)
			}
		}
		out = append(out, extra...)
		if len(out) > 1 && f.Reorder() {
			slices.Reverse(out)
		}
	}
	sub.pos = pos
	if err := sub.send(&eventbusv1.FetchResponse{Events: out, LatestReplayId: replayBytes(pos)}); err != nil {
		return err
	}
	if c := sub.s.cfg.Counter; c != nil {
		c.Count(KindEventsDelivered, len(out))
	}
	return nil
}

// send sends one response, filling in the rpc ID and the credit, then lets the fault injector drop the
// stream.
func (sub *subscription) send(resp *eventbusv1.FetchResponse) error {
	resp.RpcId = sub.c.rpcID
	resp.PendingNumRequested = int32(sub.pending) //nolint:gosec // G115: at most MaxOutstanding
	if err := sub.stream.Send(resp); err != nil {
		return err
	}
	sub.lastActivity = time.Now()
	if f := sub.s.cfg.Faults; f != nil && f.DropStream() {
		sub.c.log.Info("fault: dropping the stream", "topic", sub.topic)
		return status.Error(codes.Unavailable, "RST_STREAM closed stream")
	}
	return nil
}

func replayBytes(id uint64) []byte { return binary.BigEndian.AppendUint64(make([]byte, 0, 8), id) }
