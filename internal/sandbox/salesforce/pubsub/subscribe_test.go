package pubsub

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	eventbusv1 "github.com/crmsync/terraform-provider-crmsync/internal/proto/eventbus/v1"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/cdc"
)

const contactTopic = "/data/ContactChangeEvent"

// TestSubscriberDecodesCreateUpdateDeleteUndelete is the end-to-end check: a plain generated client
// receives a create, an update that changes two fields and nulls one, a delete and an undelete; decodes
// each payload with the schema fetched by GetSchema; and decodes the bitmaps to exactly the changed and
// nulled field names.
func TestSubscriberDecodesCreateUpdateDeleteUndelete(t *testing.T) {
	e := newEnv(t, nil)
	at := e.clock.Now().UTC().Truncate(time.Millisecond)
	later := at.Add(time.Minute)
	id := contactID(1)
	create := contactCreate(1, at)
	update := cdc.Event{Entity: "Contact", ChangeType: cdc.Update, RecordIDs: []string{id},
		Values:        map[string]any{"FirstName": "Zoé", "Email": "zoe@nguyen.example", "Phone": nil, "LastModifiedDate": later},
		ChangedFields: []string{"Name.FirstName", "Email", "Phone", "LastModifiedDate"},
		NulledFields:  []string{"Phone"}}
	del := cdc.Event{Entity: "Contact", ChangeType: cdc.Delete, RecordIDs: []string{id}}
	undelete := cdc.Event{Entity: "Contact", ChangeType: cdc.Undelete, RecordIDs: []string{id}, Values: contactValues("Zoé", "Nguyễn 1", at)}
	ids := []uint64{e.tx(create)[0], e.tx(update)[0], e.tx(del)[0], e.tx(undelete)[0]}

	stream := e.subscribe(fetch(contactTopic, eventbusv1.ReplayPreset_EARLIEST, 10))
	got := recvEvents(t, stream, 4)
	schemas := map[string]eventSchema{}
	var bodies, headers []map[string]any
	for i, ce := range got {
		if replayID(ce.GetReplayId()) != ids[i] || len(ce.GetReplayId()) != 8 {
			t.Fatalf("event %d has replay ID %x, want %d as 8 bytes", i, ce.GetReplayId(), ids[i])
		}
		sid := ce.GetEvent().GetSchemaId()
		if _, ok := schemas[sid]; !ok {
			schemas[sid] = e.getSchema(sid)
		}
		body := schemas[sid].decode(t, ce.GetEvent().GetPayload())
		bodies = append(bodies, body)
		headers = append(headers, body["ChangeEventHeader"].(map[string]any))
		if ce.GetEvent().GetId() == "" {
			t.Errorf("event %d has no id", i)
		}
	}
	if len(schemas) != 1 {
		t.Fatalf("events of one entity used %d schemas", len(schemas))
	}
	s := schemas[got[0].GetEvent().GetSchemaId()]

	for i, want := range []string{"CREATE", "UPDATE", "DELETE", "UNDELETE"} {
		h := headers[i]
		if h["changeType"] != want || h["entityName"] != "Contact" || !slices.Equal(h["recordIds"].([]any), []any{id}) ||
			h["sequenceNumber"] != 1 || h["commitUser"] != testUser || h["transactionKey"] == "" ||
			!strings.HasPrefix(h["changeOrigin"].(string), "com/salesforce/api/rest/") {
			t.Errorf("header %d: %v", i, h)
		}
	}
	// The commit time is the log's, taken when the transaction committed (a real clock, so not `at`).
	stored, _ := e.log.Read(contactTopic, ids[0]-1, 1)
	if len(stored) != 1 {
		t.Fatalf("log holds %d events after replay ID %d, want 1", len(stored), ids[0]-1)
	}
	if ts := headers[0]["commitTimestamp"].(int64); ts != stored[0].CommitTimestamp.UnixMilli() || ts < at.UnixMilli() {
		t.Errorf("commitTimestamp %d, want %d (epoch ms, not before %d)", ts, stored[0].CommitTimestamp.UnixMilli(), at.UnixMilli())
	}

	// CREATE: every field; compound Name and MailingAddress nested; dates as epoch ms.
	c := bodies[0]
	name := c["Name"].(map[string]any)["com.sforce.eventbus.Name"].(map[string]any)
	if name["FirstName"] != "Zoë" || name["LastName"] != "Nguyễn 1" || name["Salutation"] != "Ms." {
		t.Errorf("CREATE Name = %v", name)
	}
	if addr := c["MailingAddress"].(map[string]any)["com.sforce.eventbus.Address"].(map[string]any); addr["City"] != "Tromsø" || addr["Country"] != "Norway" {
		t.Errorf("CREATE MailingAddress = %v", addr)
	}
	if c["Birthdate"] != time.Date(1984, 2, 29, 0, 0, 0, 0, time.UTC).UnixMilli() || c["CreatedDate"] != at.UnixMilli() {
		t.Errorf("CREATE Birthdate %v CreatedDate %v, want epoch ms", c["Birthdate"], c["CreatedDate"])
	}
	if c["Email"] != "zoe.nguyen@example.com" || c["Fax"] != nil || c["AccountId"] != "001xx000003DGb2AAG" {
		t.Errorf("CREATE body %v", c)
	}
	if got := decodeFieldList(t, s, headers[0]["changedFields"].([]any)); len(got) != 0 {
		t.Errorf("CREATE changedFields %v, want none", got)
	}

	// UPDATE: exactly the changed and nulled names; only changed fields carry values.
	changed := decodeFieldList(t, s, headers[1]["changedFields"].([]any))
	if want := sorted("Name.FirstName", "Email", "Phone", "LastModifiedDate"); !slices.Equal(changed, want) {
		t.Errorf("UPDATE changedFields %v (raw %v), want %v", changed, headers[1]["changedFields"], want)
	}
	if nulled := decodeFieldList(t, s, headers[1]["nulledFields"].([]any)); !slices.Equal(nulled, []string{"Phone"}) {
		t.Errorf("UPDATE nulledFields %v, want [Phone]", nulled)
	}
	if d := headers[1]["diffFields"].([]any); len(d) != 0 {
		t.Errorf("UPDATE diffFields %v, want none", d)
	}
	u := bodies[1]
	name = u["Name"].(map[string]any)["com.sforce.eventbus.Name"].(map[string]any)
	if name["FirstName"] != "Zoé" || name["LastName"] != nil || name["Salutation"] != nil {
		t.Errorf("UPDATE Name = %v, want only FirstName", name)
	}
	if u["Email"] != "zoe@nguyen.example" || u["LastModifiedDate"] != later.UnixMilli() {
		t.Errorf("UPDATE Email %v LastModifiedDate %v", u["Email"], u["LastModifiedDate"])
	}
	for _, unchanged := range []string{"Phone", "Title", "MailingAddress", "AccountId", "Birthdate", "CreatedDate"} {
		if u[unchanged] != nil {
			t.Errorf("UPDATE %s = %v, want null (unchanged or nulled)", unchanged, u[unchanged])
		}
	}

	// DELETE: all fields null, the Id only in recordIds.
	for k, v := range bodies[2] {
		if k != "ChangeEventHeader" && v != nil {
			t.Errorf("DELETE %s = %v, want null", k, v)
		}
	}
	// UNDELETE: the restored record.
	if bodies[3]["Email"] != "zoe.nguyen@example.com" || bodies[3]["Name"] == nil {
		t.Errorf("UNDELETE body %v", bodies[3])
	}
}

// TestAllChangesChannelDeliversEveryEntityInCommitOrder checks /data/ChangeEvents: both entities, in
// commit order, each event naming its own entity's schema.
func TestAllChangesChannelDeliversEveryEntityInCommitOrder(t *testing.T) {
	e := newEnv(t, nil)
	at := e.clock.Now()
	e.tx(accountCreate("001xx000003DGb2AAG", at), contactCreate(1, at))
	e.tx(contactCreate(2, at))
	e.tx(accountCreate("001xx000003DGb3AAG", at))
	stream := e.subscribe(fetch(cdc.AllChangesTo, eventbusv1.ReplayPreset_EARLIEST, 10))
	got := recvEvents(t, stream, 4)
	var entities []string
	var last uint64
	for _, ce := range got {
		if id := replayID(ce.GetReplayId()); id <= last {
			t.Fatalf("replay IDs out of order: %d after %d", id, last)
		} else {
			last = id
		}
		h := e.getSchema(ce.GetEvent().GetSchemaId()).decode(t, ce.GetEvent().GetPayload())["ChangeEventHeader"].(map[string]any)
		entities = append(entities, h["entityName"].(string))
	}
	if want := []string{"Account", "Contact", "Contact", "Account"}; !slices.Equal(entities, want) {
		t.Errorf("entities %v, want %v", entities, want)
	}
	if got[0].GetEvent().GetSchemaId() == got[1].GetEvent().GetSchemaId() {
		t.Error("Account and Contact events share a schema ID")
	}
}

// TestFlowControlNeverExceedsTheCreditAndCapsAt100 protects spec 6.4's flow control: deliveries never
// exceed what was requested, requests add up, outstanding credit is capped at 100, and each response
// reports the credit left.
func TestFlowControlNeverExceedsTheCreditAndCapsAt100(t *testing.T) {
	e := newEnv(t, nil)
	at := e.clock.Now()
	var batch []cdc.Event
	for i := range 250 {
		batch = append(batch, contactCreate(i, at))
	}
	ids := e.tx(batch...)
	stream := e.subscribe(fetch(contactTopic, eventbusv1.ReplayPreset_EARLIEST, 5))
	var got []*eventbusv1.ConsumerEvent
	// take receives events after a request of credit, checking every response against it.
	take := func(credit, want int) {
		t.Helper()
		n := 0
		for n < want {
			resp := recv(t, stream)
			n += len(resp.GetEvents())
			got = append(got, resp.GetEvents()...)
			if n > credit {
				t.Fatalf("received %d events on a credit of %d", n, credit)
			}
			if int(resp.GetPendingNumRequested()) != credit-n {
				t.Fatalf("pending_num_requested %d after %d of %d events", resp.GetPendingNumRequested(), n, credit)
			}
		}
	}
	take(5, 5)
	if err := stream.Send(&eventbusv1.FetchRequest{NumRequested: 150}); err != nil {
		t.Fatal(err)
	}
	take(MaxOutstanding, MaxOutstanding) // 150 is treated as 100
	for _, n := range []int32{3, 4} {    // additive
		if err := stream.Send(&eventbusv1.FetchRequest{TopicName: contactTopic, NumRequested: n}); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for n < 7 {
		resp := recv(t, stream)
		n += len(resp.GetEvents())
		got = append(got, resp.GetEvents()...)
		if n > 7 || int(resp.GetPendingNumRequested()) > 7-n {
			t.Fatalf("received %d events and pending %d on a credit of 7", n, resp.GetPendingNumRequested())
		}
	}
	// Had the server sent anything beyond the credit, it would arrive before this event.
	if err := stream.Send(&eventbusv1.FetchRequest{NumRequested: 1}); err != nil {
		t.Fatal(err)
	}
	take(1, 1)
	if len(got) != 113 {
		t.Fatalf("received %d events, want 113", len(got))
	}
	for i, ce := range got {
		if replayID(ce.GetReplayId()) != ids[i] {
			t.Fatalf("event %d has replay ID %d, want %d (commit order, nothing skipped)", i, replayID(ce.GetReplayId()), ids[i])
		}
	}
}

// TestKeepaliveCarriesAValidPositionWhileIdleWithCredit protects spec 6.4's keepalive: an empty response
// with latest_replay_id while credit is outstanding, and that position is one a client can resume from.
func TestKeepaliveCarriesAValidPositionWhileIdleWithCredit(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.KeepaliveInterval, c.IdleTimeout = 150*time.Millisecond, 50*time.Millisecond })
	e.tx(accountCreate("001xx000003DGb2AAG", e.clock.Now())) // traffic on another topic only
	tip := e.log.Latest()
	stream := e.subscribe(fetch(contactTopic, eventbusv1.ReplayPreset_LATEST, 10))
	start := time.Now()
	resp := recv(t, stream)
	if len(resp.GetEvents()) != 0 || resp.GetPendingNumRequested() != 10 || resp.GetRpcId() == "" {
		t.Fatalf("keepalive %v", resp)
	}
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Errorf("keepalive after %v, want about the 150 ms interval", waited)
	}
	// Credit outstanding keeps the stream open past the (shorter) idle timeout: a second keepalive comes.
	resp2 := recv(t, stream)
	pos := replayID(resp2.GetLatestReplayId())
	if len(resp2.GetEvents()) != 0 || len(resp2.GetLatestReplayId()) != 8 || pos < tip {
		t.Fatalf("second keepalive %v (tip was %d)", resp2, tip)
	}
	id := e.tx(contactCreate(1, e.clock.Now()))[0]
	for {
		r := recv(t, stream)
		if len(r.GetEvents()) > 0 {
			if replayID(r.GetEvents()[0].GetReplayId()) != id {
				t.Fatalf("got event %d, want %d", replayID(r.GetEvents()[0].GetReplayId()), id)
			}
			break
		}
	}
	// The keepalive position is valid for CUSTOM: resuming from it yields the event committed after it.
	resumed := e.subscribe(&eventbusv1.FetchRequest{TopicName: contactTopic, ReplayPreset: eventbusv1.ReplayPreset_CUSTOM,
		ReplayId: resp2.GetLatestReplayId(), NumRequested: 10})
	if got := recvEvents(t, resumed, 1); replayID(got[0].GetReplayId()) != id {
		t.Fatalf("resumed at %d, got %d", id, replayID(got[0].GetReplayId()))
	}
}

// TestStreamWithoutCreditClosesAfterTheIdleTimeout protects spec 6.4's idle close.
func TestStreamWithoutCreditClosesAfterTheIdleTimeout(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.KeepaliveInterval, c.IdleTimeout = 10*time.Second, 200*time.Millisecond })
	e.tx(contactCreate(1, e.clock.Now()))
	stream := e.subscribe(fetch(contactTopic, eventbusv1.ReplayPreset_EARLIEST, 1))
	if resp := recv(t, stream); len(resp.GetEvents()) != 1 || resp.GetPendingNumRequested() != 0 {
		t.Fatalf("first response %v", resp)
	}
	start := time.Now()
	_, err := stream.Recv()
	if !errors.Is(err, io.EOF) {
		t.Fatalf("stream ended with %v, want a clean close", err)
	}
	if waited := time.Since(start); waited < 150*time.Millisecond || waited > 5*time.Second {
		t.Errorf("closed after %v, want about the 200 ms idle timeout", waited)
	}
}

// TestReplayPresetsStartWhereTheSpecSays checks LATEST, EARLIEST and CUSTOM (spec 6.4).
func TestReplayPresetsStartWhereTheSpecSays(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.KeepaliveInterval = 100 * time.Millisecond })
	at := e.clock.Now()
	id1, id2 := e.tx(contactCreate(1, at))[0], e.tx(contactCreate(2, at))[0]

	latest := e.subscribe(fetch(contactTopic, eventbusv1.ReplayPreset_LATEST, 10))
	if resp := recv(t, latest); len(resp.GetEvents()) != 0 { // the subscription is positioned once it answers
		t.Fatalf("LATEST delivered old events: %v", resp)
	}
	id3 := e.tx(contactCreate(3, at))[0]
	ids := func(evs []*eventbusv1.ConsumerEvent) []uint64 {
		var out []uint64
		for _, ev := range evs {
			out = append(out, replayID(ev.GetReplayId()))
		}
		return out
	}
	var fromLatest []*eventbusv1.ConsumerEvent
	for len(fromLatest) == 0 {
		fromLatest = recv(t, latest).GetEvents()
	}
	if got := ids(fromLatest); !slices.Equal(got, []uint64{id3}) {
		t.Errorf("LATEST delivered %v, want [%d]", got, id3)
	}
	if got := ids(recvEvents(t, e.subscribe(fetch(contactTopic, eventbusv1.ReplayPreset_EARLIEST, 10)), 3)); !slices.Equal(got, []uint64{id1, id2, id3}) {
		t.Errorf("EARLIEST delivered %v, want [%d %d %d]", got, id1, id2, id3)
	}
	custom := e.subscribe(&eventbusv1.FetchRequest{TopicName: contactTopic, ReplayPreset: eventbusv1.ReplayPreset_CUSTOM,
		ReplayId: replayBytes(id1), NumRequested: 10})
	if got := ids(recvEvents(t, custom, 2)); !slices.Equal(got, []uint64{id2, id3}) {
		t.Errorf("CUSTOM after %d delivered %v, want [%d %d]", id1, got, id2, id3)
	}
}

// TestBadReplayIDsFailWithTheSpecErrorsAndTheServerKeepsServing protects spec 5.5 and 6.7: a replay ID
// past retention is ...replayid.corrupted, garbage or unknown IDs are ...validation.failed, both
// INVALID_ARGUMENT; neither repositions silently nor disturbs other subscribers.
func TestBadReplayIDsFailWithTheSpecErrorsAndTheServerKeepsServing(t *testing.T) {
	e := newEnv(t, nil)
	old := e.tx(contactCreate(1, e.clock.Now()))[0]
	e.clock.Advance(73 * time.Hour)
	fresh := e.tx(contactCreate(2, e.clock.Now()))[0]
	for _, c := range []struct {
		name   string
		replay []byte
		code   string
	}{
		{"older than retention", replayBytes(old), codeReplayCorrupted},
		{"garbage bytes", []byte{0xde, 0xad, 0xbe}, codeReplayInvalid},
		{"wrong length", []byte("0123456789"), codeReplayInvalid},
		{"never issued", replayBytes(fresh + 1_000_000), codeReplayInvalid},
		{"empty", nil, codeReplayInvalid},
	} {
		stream := e.subscribe(&eventbusv1.FetchRequest{TopicName: contactTopic, ReplayPreset: eventbusv1.ReplayPreset_CUSTOM, ReplayId: c.replay, NumRequested: 10})
		_, err := stream.Recv()
		expectStatus(t, err, stream.Trailer(), codes.InvalidArgument, c.code)
		if st, _ := status.FromError(err); !strings.HasPrefix(st.Message(), "The Replay ID validation failed.") {
			t.Errorf("%s: message %q", c.name, st.Message())
		}
	}
	got := recvEvents(t, e.subscribe(fetch(contactTopic, eventbusv1.ReplayPreset_EARLIEST, 10)), 1)
	if replayID(got[0].GetReplayId()) != fresh {
		t.Errorf("EARLIEST after purge delivered %d, want %d", replayID(got[0].GetReplayId()), fresh)
	}
}

// TestOpenStreamBehindRetentionFailsInsteadOfSkipping: a subscriber that used up its credit while events
// went on, and asks again only after they were purged, gets the error a CUSTOM subscription at its position
// would get; the purged events are never skipped quietly. A subscriber whose unread events are still
// retained is served as usual.
func TestOpenStreamBehindRetentionFailsInsteadOfSkipping(t *testing.T) {
	e := newEnv(t, nil)
	at := e.clock.Now()
	first := e.tx(contactCreate(1, at))[0]
	behind := e.subscribe(fetch(contactTopic, eventbusv1.ReplayPreset_EARLIEST, 1))
	current := e.subscribe(fetch(contactTopic, eventbusv1.ReplayPreset_EARLIEST, 1))
	for _, s := range []eventbusv1.PubSub_SubscribeClient{behind, current} {
		if got := recvEvents(t, s, 1); replayID(got[0].GetReplayId()) != first {
			t.Fatalf("delivered %d, want %d", replayID(got[0].GetReplayId()), first)
		}
	}
	// Both streams are out of credit; the next event is committed, and the current subscriber reads it.
	second := e.tx(contactCreate(2, at))[0]
	if err := current.Send(&eventbusv1.FetchRequest{NumRequested: 1}); err != nil {
		t.Fatal(err)
	}
	if got := recvEvents(t, current, 1); replayID(got[0].GetReplayId()) != second {
		t.Fatalf("delivered %d, want %d", replayID(got[0].GetReplayId()), second)
	}
	// Retention passes: the event the other subscriber never fetched is purged.
	e.clock.Advance(73 * time.Hour)
	third := e.tx(contactCreate(3, e.clock.Now()))[0]
	if err := behind.Send(&eventbusv1.FetchRequest{NumRequested: 10}); err != nil {
		t.Fatal(err)
	}
	resp, err := behind.Recv()
	if err == nil {
		t.Fatalf("the stream behind retention delivered %v instead of failing", resp)
	}
	expectStatus(t, err, behind.Trailer(), codes.InvalidArgument, codeReplayCorrupted)
	// The subscriber that had read everything before the purge goes on.
	if err := current.Send(&eventbusv1.FetchRequest{NumRequested: 1}); err != nil {
		t.Fatal(err)
	}
	if got := recvEvents(t, current, 1); replayID(got[0].GetReplayId()) != third {
		t.Fatalf("delivered %d, want %d", replayID(got[0].GetReplayId()), third)
	}
}

// TestInvalidRequestsOnAStreamFail covers the other first- and later-request errors.
func TestInvalidRequestsOnAStreamFail(t *testing.T) {
	e := newEnv(t, nil)
	e.tx(contactCreate(1, e.clock.Now()))
	stream := e.subscribe(fetch("/data/LeadChangeEvent", eventbusv1.ReplayPreset_LATEST, 1))
	_, err := stream.Recv()
	expectStatus(t, err, stream.Trailer(), codes.NotFound, codeTopicNotFound)

	stream = e.subscribe(fetch(contactTopic, eventbusv1.ReplayPreset_LATEST, 0))
	_, err = stream.Recv()
	expectStatus(t, err, stream.Trailer(), codes.InvalidArgument, codeRequestedEvents)

	stream = e.subscribe(fetch(contactTopic, eventbusv1.ReplayPreset_EARLIEST, 1))
	recvEvents(t, stream, 1)
	if err := stream.Send(fetch("/data/AccountChangeEvent", eventbusv1.ReplayPreset_LATEST, 1)); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	expectStatus(t, err, stream.Trailer(), codes.InvalidArgument, codeTopicMismatch)
}

// TestCallsWithoutValidAuthMetadataAreUnauthenticated protects spec 6.3 on every RPC kind.
func TestCallsWithoutValidAuthMetadataAreUnauthenticated(t *testing.T) {
	e := newEnv(t, nil)
	ctx := t.Context() // no metadata at all
	var tr grpcTrailer
	_, err := e.client.GetTopic(ctx, &eventbusv1.TopicRequest{TopicName: contactTopic}, tr.opt())
	expectStatus(t, err, tr.md, codes.Unauthenticated, "sfdc.platform.eventbus.grpc.service.auth.error")
	tr = grpcTrailer{}
	_, err = e.client.GetSchema(withAuth(ctx, "expired-token", testInstance, testOrg), &eventbusv1.SchemaRequest{SchemaId: "x"}, tr.opt())
	expectStatus(t, err, tr.md, codes.Unauthenticated, codeAuth)
	tr = grpcTrailer{}
	_, err = e.client.GetTopic(withAuth(ctx, testToken, testInstance, "00Dxx0000000002EAA"), &eventbusv1.TopicRequest{TopicName: contactTopic}, tr.opt())
	expectStatus(t, err, tr.md, codes.Unauthenticated, codeAuth)

	stream, err := e.client.Subscribe(withAuth(ctx, testToken, "https://other.my.salesforce.com", testOrg))
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(fetch(contactTopic, eventbusv1.ReplayPreset_LATEST, 1))
	_, err = stream.Recv()
	expectStatus(t, err, stream.Trailer(), codes.Unauthenticated, codeAuth)
	if e.counter.snapshot()[KindEventsDelivered] != 0 {
		t.Error("an unauthenticated stream delivered events")
	}
}

// TestDroppedStreamFailsWithUnavailable protects the stream-drop fault: the client sees the transient
// error real clients retry on.
func TestDroppedStreamFailsWithUnavailable(t *testing.T) {
	e := newEnv(t, nil)
	e.tx(contactCreate(1, e.clock.Now()), contactCreate(2, e.clock.Now()))
	e.faults.Set(faults.Config{StreamDropRate: 1, Limit: 1})
	stream := e.subscribe(fetch(contactTopic, eventbusv1.ReplayPreset_EARLIEST, 1))
	recvEvents(t, stream, 1) // the message the stream dropped after
	_, err := stream.Recv()
	if st, _ := status.FromError(err); st.Code() != codes.Unavailable || st.Message() != "RST_STREAM closed stream" {
		t.Fatalf("got %v, want UNAVAILABLE: RST_STREAM closed stream", err)
	}
	if e.faults.Counts().StreamDrop != 1 {
		t.Errorf("stream drops counted: %d", e.faults.Counts().StreamDrop)
	}
	// The limit is spent: a resubscription from the last event works.
	got := recvEvents(t, e.subscribe(fetch(contactTopic, eventbusv1.ReplayPreset_EARLIEST, 2)), 2)
	if len(got) != 2 {
		t.Fatalf("resubscribe got %d events", len(got))
	}
}

// TestExhaustedDeliveryAllocationFailsTheStream protects spec 5.6: nothing beyond the allocation is
// delivered, and the stream fails with RESOURCE_EXHAUSTED and ...subscription.limit.exceeded.
func TestExhaustedDeliveryAllocationFailsTheStream(t *testing.T) {
	e := newEnv(t, nil)
	e.alloc.max = 3
	at := e.clock.Now()
	e.tx(contactCreate(1, at), contactCreate(2, at), contactCreate(3, at), contactCreate(4, at))
	stream := e.subscribe(fetch(contactTopic, eventbusv1.ReplayPreset_EARLIEST, 2))
	recvEvents(t, stream, 2)
	if err := stream.Send(&eventbusv1.FetchRequest{NumRequested: 2}); err != nil {
		t.Fatal(err)
	}
	_, err := stream.Recv()
	expectStatus(t, err, stream.Trailer(), codes.ResourceExhausted, codeLimitExceeded)
	if st, _ := status.FromError(err); !strings.HasPrefix(st.Message(), "You have exceeded the event delivery limit for your org.") {
		t.Errorf("message %q", st.Message())
	}
	e.alloc.mu.Lock()
	defer e.alloc.mu.Unlock()
	if e.alloc.used != 2 {
		t.Errorf("allocation used %d, want 2", e.alloc.used)
	}
}

// TestPublishingToACDCTopicIsDenied protects can_publish=false: Publish and PublishStream refuse.
func TestPublishingToACDCTopicIsDenied(t *testing.T) {
	e := newEnv(t, nil)
	var tr grpcTrailer
	_, err := e.client.Publish(e.ctx(), &eventbusv1.PublishRequest{TopicName: contactTopic,
		Events: []*eventbusv1.ProducerEvent{{Id: "1", Payload: []byte{0}}}}, tr.opt())
	expectStatus(t, err, tr.md, codes.PermissionDenied, "")
	stream, err := e.client.PublishStream(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&eventbusv1.PublishRequest{TopicName: contactTopic})
	_, err = stream.Recv()
	expectStatus(t, err, stream.Trailer(), codes.PermissionDenied, "")
	managed, err := e.client.ManagedSubscribe(e.ctx())
	if err != nil {
		t.Fatal(err)
	}
	_, err = managed.Recv()
	expectStatus(t, err, managed.Trailer(), codes.Unimplemented, "")
}

// TestCallsAndDeliveredEventsAreCounted protects the admin API's counters.
func TestCallsAndDeliveredEventsAreCounted(t *testing.T) {
	e := newEnv(t, nil)
	e.tx(contactCreate(1, e.clock.Now()), contactCreate(2, e.clock.Now()))
	info, err := e.client.GetTopic(e.ctx(), &eventbusv1.TopicRequest{TopicName: contactTopic})
	if err != nil {
		t.Fatal(err)
	}
	e.getSchema(info.GetSchemaId())
	recvEvents(t, e.subscribe(fetch(contactTopic, eventbusv1.ReplayPreset_EARLIEST, 5)), 2)
	got := e.counter.snapshot()
	for kind, want := range map[string]int{KindGetTopic: 1, KindGetSchema: 1, KindSubscribe: 1, KindEventsDelivered: 2} {
		if got[kind] != want {
			t.Errorf("%s counted %d, want %d (all: %v)", kind, got[kind], want, got)
		}
	}
}

// TestInjectedLatencyDelaysEveryCall checks the per-RPC latency fault.
func TestInjectedLatencyDelaysEveryCall(t *testing.T) {
	e := newEnv(t, nil)
	e.faults.Set(faults.Config{Latency: 150 * time.Millisecond})
	start := time.Now()
	if _, err := e.client.GetTopic(e.ctx(), &eventbusv1.TopicRequest{TopicName: contactTopic}); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("GetTopic took %v with 150 ms injected latency", d)
	}
}
