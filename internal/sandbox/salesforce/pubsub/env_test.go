package pubsub

import (
	"context"
	"errors"
	"maps"
	"math/big"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hamba/avro/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	eventbusv1 "github.com/crmsync/terraform-provider-crmsync/internal/proto/eventbus/v1"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/clock"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/cdc"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/schema"
)

const (
	testToken    = "00Dxx0000000001!AQ0AQtesttoken"
	testInstance = "https://sandbox.my.salesforce.com"
	testOrg      = "00Dxx0000000001EAA"
	testUser     = "005xx0000000001AAA"
)

type fakeAuth struct{}

func (fakeAuth) Authenticate(_ context.Context, token, instance, tenant string) error {
	if token != testToken || instance != testInstance || tenant != testOrg {
		return errors.New("bad credentials")
	}
	return nil
}

// fakeAllocation is an allocation of max deliveries.
type fakeAllocation struct {
	mu        sync.Mutex
	used, max int
}

func (a *fakeAllocation) ConsumeDeliveries(n int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.used+n > a.max {
		return false
	}
	a.used += n
	return true
}

type fakeCounter struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *fakeCounter) Count(kind string, n int) {
	c.mu.Lock()
	c.m[kind] += n
	c.mu.Unlock()
}

func (c *fakeCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

// env is a Pub/Sub server on a loopback listener with a plain generated client.
type env struct {
	t       *testing.T
	clock   *clock.Clock
	log     *cdc.Log
	reg     *schema.Registry
	faults  *faults.Injector
	alloc   *fakeAllocation
	counter *fakeCounter
	srv     *Server
	client  eventbusv1.PubSubClient
}

func newEnv(t *testing.T, configure func(*Config)) *env {
	t.Helper()
	c := clock.New()
	e := &env{t: t, clock: c, log: cdc.New(c, 72*time.Hour), reg: schema.NewRegistry(), faults: faults.New(),
		alloc: &fakeAllocation{max: 1 << 30}, counter: &fakeCounter{m: map[string]int{}}}
	cfg := Config{Log: e.log, Schemas: e.reg, Auth: fakeAuth{}, Allocation: e.alloc, Counter: e.counter,
		Faults: e.faults, Clock: c, OrgID: testOrg, KeepaliveInterval: 10 * time.Second, IdleTimeout: 10 * time.Second}
	if configure != nil {
		configure(&cfg)
	}
	e.srv = New(cfg)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	e.srv.Register(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	e.client = eventbusv1.NewPubSubClient(conn)
	return e
}

// ctx is an authenticated call context bounded by a deadline.
func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(e.t.Context(), 15*time.Second)
	e.t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, "accesstoken", testToken, "instanceurl", testInstance, "tenantid", testOrg)
}

// subscribe opens a Subscribe stream with its first request.
func (e *env) subscribe(first *eventbusv1.FetchRequest) eventbusv1.PubSub_SubscribeClient {
	e.t.Helper()
	stream, err := e.client.Subscribe(e.ctx())
	if err != nil {
		e.t.Fatal(err)
	}
	if err := stream.Send(first); err != nil {
		e.t.Fatal(err)
	}
	return stream
}

func fetch(topic string, preset eventbusv1.ReplayPreset, n int32) *eventbusv1.FetchRequest {
	return &eventbusv1.FetchRequest{TopicName: topic, ReplayPreset: preset, NumRequested: n}
}

func recv(t *testing.T, stream eventbusv1.PubSub_SubscribeClient) *eventbusv1.FetchResponse {
	t.Helper()
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("Recv: %v", err)
	}
	return resp
}

// recvEvents receives responses until n events have arrived, failing on a response that exceeds n.
func recvEvents(t *testing.T, stream eventbusv1.PubSub_SubscribeClient, n int) []*eventbusv1.ConsumerEvent {
	t.Helper()
	var got []*eventbusv1.ConsumerEvent
	for len(got) < n {
		resp := recv(t, stream)
		got = append(got, resp.GetEvents()...)
		if len(got) > n {
			t.Fatalf("received %d events, credit allowed %d", len(got), n)
		}
	}
	return got
}

// expectStatus asserts a failed call's status, error-code trailer and rpcId.
func expectStatus(t *testing.T, err error, trailer metadata.MD, code codes.Code, errorCode string) {
	t.Helper()
	st, _ := status.FromError(err)
	if err == nil || st.Code() != code {
		t.Fatalf("got %v, want status %s", err, code)
	}
	if got := trailer.Get("error-code"); errorCode != "" && (len(got) != 1 || got[0] != errorCode) {
		t.Errorf("error-code trailer %v, want %s", got, errorCode)
	}
	ids := trailer.Get("rpc-id")
	if len(ids) != 1 || !strings.HasSuffix(st.Message(), " rpcId: "+ids[0]) {
		t.Errorf("message %q should end with the rpc-id trailer %v", st.Message(), ids)
	}
}

func replayID(b []byte) uint64 {
	var n uint64
	for _, x := range b {
		n = n<<8 | uint64(x)
	}
	return n
}

var commitN int64 = 1_100_670_838_950

// tx fills the transaction header of events and appends them as one transaction, returning their IDs.
func (e *env) tx(events ...cdc.Event) []uint64 {
	key := uuid.NewString()
	now := e.clock.Now().UTC().Truncate(time.Millisecond)
	commitN += 3
	for i := range events {
		ev := &events[i]
		ev.ChangeOrigin = "com/salesforce/api/rest/62.0;client=crmsync-test"
		ev.TransactionKey, ev.SequenceNumber, ev.CommitTimestamp = key, i+1, now
		ev.CommitNumber, ev.CommitUser = commitN, testUser
		for _, l := range []*[]string{&ev.ChangedFields, &ev.NulledFields, &ev.DiffFields} {
			if *l == nil {
				*l = []string{}
			}
		}
	}
	return e.log.Append(events...)
}

func contactID(n int) string { return "003xx00000" + strconv.Itoa(100000+n) + "AAA" }

// contactValues is a full Contact body as the record store sends it for CREATE and UNDELETE.
func contactValues(first, last string, at time.Time) map[string]any {
	return map[string]any{
		"MasterRecordId": nil, "AccountId": "001xx000003DGb2AAG", "LastName": last, "FirstName": first,
		"Salutation": "Ms.", "MailingStreet": "Storgata 12", "MailingCity": "Tromsø", "MailingState": "Troms",
		"MailingPostalCode": "9008", "MailingCountry": "Norway", "Phone": "+47 77 12 34 56", "Fax": nil,
		"MobilePhone": nil, "AssistantPhone": nil, "ReportsToId": nil, "Email": "zoe.nguyen@example.com",
		"Title": "CTO", "Department": "Engineering", "AssistantName": nil, "LeadSource": "Web",
		"Birthdate": time.Date(1984, 2, 29, 0, 0, 0, 0, time.UTC), "Description": "Met at the trade show.",
		"OwnerId": testUser, "CreatedDate": at, "CreatedById": testUser, "LastModifiedDate": at,
		"LastModifiedById": testUser,
	}
}

func contactCreate(n int, at time.Time) cdc.Event {
	return cdc.Event{Entity: "Contact", ChangeType: cdc.Create, RecordIDs: []string{contactID(n)},
		Values: contactValues("Zoë", "Nguyễn "+strconv.Itoa(n), at)}
}

func accountCreate(id string, at time.Time) cdc.Event {
	return cdc.Event{Entity: "Account", ChangeType: cdc.Create, RecordIDs: []string{id}, Values: map[string]any{
		"Name": "Acme Logistics GmbH", "Type": "Partner", "NumberOfEmployees": int64(420),
		"AnnualRevenue": float64(12_500_000), "BillingCity": "München", "CreatedDate": at, "LastModifiedDate": at,
	}}
}

// eventSchema is a change event schema as a client sees it: parsed from GetSchema's JSON.
type eventSchema struct {
	rec *avro.RecordSchema
	raw avro.Schema
}

func (e *env) getSchema(id string) eventSchema {
	e.t.Helper()
	info, err := e.client.GetSchema(e.ctx(), &eventbusv1.SchemaRequest{SchemaId: id})
	if err != nil {
		e.t.Fatalf("GetSchema(%s): %v", id, err)
	}
	if info.GetSchemaId() != id || info.GetRpcId() == "" {
		e.t.Fatalf("GetSchema(%s) answered schema_id %q rpc_id %q", id, info.GetSchemaId(), info.GetRpcId())
	}
	s, err := avro.ParseWithCache(info.GetSchemaJson(), "", &avro.SchemaCache{})
	if err != nil {
		e.t.Fatalf("schema %s does not parse: %v\n%s", id, err, info.GetSchemaJson())
	}
	return eventSchema{rec: s.(*avro.RecordSchema), raw: s}
}

func (s eventSchema) decode(t *testing.T, payload []byte) map[string]any {
	t.Helper()
	var out map[string]any
	if err := avro.Unmarshal(s.raw, payload, &out); err != nil {
		t.Fatalf("decoding payload: %v", err)
	}
	return out
}

// nestedRecord unwraps the ["null", record] union of a compound field.
func nestedRecord(f *avro.Field) *avro.RecordSchema {
	u, ok := f.Type().(*avro.UnionSchema)
	if !ok {
		return nil
	}
	for _, b := range u.Types() {
		if ref, ok := b.(*avro.RefSchema); ok {
			b = ref.Schema()
		}
		if r, ok := b.(*avro.RecordSchema); ok {
			return r
		}
	}
	return nil
}

// bits decodes a hex bitmap as the official samples do (spec 5.4): a big-endian number, bit i ↔ field i.
func bits(t *testing.T, hex string) []int {
	t.Helper()
	n, ok := new(big.Int).SetString(strings.TrimPrefix(hex, "0x"), 16)
	if !ok {
		t.Fatalf("bitmap %q is not hex", hex)
	}
	var out []int
	for i := range n.BitLen() {
		if n.Bit(i) == 1 {
			out = append(out, i)
		}
	}
	return out
}

// decodeFieldList turns a bitmap-encoded header list back into field names, as a client would: element
// "0x.." over the top-level fields, "p-0x.." over the nested record at position p, named "Parent.Child".
func decodeFieldList(t *testing.T, s eventSchema, list []any) []string {
	t.Helper()
	fields := s.rec.Fields()
	var names []string
	for _, el := range list {
		entry := el.(string)
		if strings.HasPrefix(entry, "0x") {
			for _, i := range bits(t, entry) {
				names = append(names, fields[i].Name())
			}
			continue
		}
		p, hex, ok := strings.Cut(entry, "-")
		pos, err := strconv.Atoi(p)
		if !ok || err != nil || pos >= len(fields) {
			t.Fatalf("bitmap element %q is neither 0x.. nor p-0x..", entry)
		}
		nested := nestedRecord(fields[pos])
		if nested == nil {
			t.Fatalf("bitmap element %q: field %s is not a compound", entry, fields[pos].Name())
		}
		for _, i := range bits(t, hex) {
			names = append(names, fields[pos].Name()+"."+nested.Fields()[i].Name())
		}
	}
	slices.Sort(names)
	return names
}

func sorted(s ...string) []string {
	slices.Sort(s)
	return s
}

func bigOf(n int64) *big.Int { return big.NewInt(n) }

func itoaPos(n int) string { return strconv.Itoa(n) }

// grpcTrailer collects a unary call's trailer.
type grpcTrailer struct{ md metadata.MD }

func (g *grpcTrailer) opt() grpc.CallOption { return grpc.Trailer(&g.md) }

func withAuth(ctx context.Context, token, instance, tenant string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "accesstoken", token, "instanceurl", instance, "tenantid", tenant)
}
