package salesforce

import (
	"context"
	"encoding/json"
	"math/big"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	eventbusv1 "github.com/crmsync/terraform-provider-crmsync/internal/proto/eventbus/v1"
)

// A plain generated gRPC client subscribes, receives the events of a REST create, an
// update that changes two fields and nulls one, a delete and an admin undelete, decodes the Avro payloads
// with the schema it fetched, and decodes the bitmaps to exactly the changed and nulled field names.
func TestChangesReachAPubSubSubscriberWithExactFieldLists(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	o.e.RegisterGRPC(g)
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := eventbusv1.NewPubSubClient(conn)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "accesstoken", o.token(), "instanceurl", o.instance.URL, "tenantid", o.e.cfg.OrgID)

	// The changes: committed before subscribing from EARLIEST, so the subscriber sees exactly these.
	_, body := o.do(http.MethodPost, "/services/data/v62.0/sobjects/Contact",
		`{"FirstName":"Ann","LastName":"Lee","Phone":"+1 555 0100","MailingCity":"Oslo","Birthdate":"1990-04-01"}`)
	var cr map[string]any
	mustJSON(t, body, &cr)
	id := cr["id"].(string)
	o.do(http.MethodPatch, "/services/data/v62.0/sobjects/Contact/"+id, `{"FirstName":"Anna","MailingCity":"Bergen","Phone":null}`)
	o.do(http.MethodDelete, "/services/data/v62.0/sobjects/Contact/"+id, nil)
	if _, err := o.e.Transact(Transaction{Operations: []Operation{{Op: "undelete", Object: "Contact", ID: id}}}); err != nil {
		t.Fatal(err)
	}

	stream, err := client.Subscribe(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&eventbusv1.FetchRequest{TopicName: "/data/ContactChangeEvent", ReplayPreset: eventbusv1.ReplayPreset_EARLIEST, NumRequested: 10}); err != nil {
		t.Fatal(err)
	}
	var events []*eventbusv1.ConsumerEvent
	for len(events) < 4 {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatalf("after %d events: %v", len(events), err)
		}
		events = append(events, resp.Events...)
	}

	type decoded struct {
		header          map[string]any
		body            map[string]any
		changed, nulled []string
	}
	schemas := map[string]string{}
	var got []decoded
	for _, ev := range events {
		sid := ev.GetEvent().GetSchemaId()
		if schemas[sid] == "" {
			info, err := client.GetSchema(ctx, &eventbusv1.SchemaRequest{SchemaId: sid})
			if err != nil {
				t.Fatal(err)
			}
			schemas[sid] = info.GetSchemaJson()
		}
		sch, err := avro.Parse(schemas[sid])
		if err != nil {
			t.Fatalf("parsing the fetched schema: %v", err)
		}
		var payload map[string]any
		if err := avro.Unmarshal(sch, ev.GetEvent().GetPayload(), &payload); err != nil {
			t.Fatalf("decoding a payload: %v", err)
		}
		header := payload["ChangeEventHeader"].(map[string]any)
		got = append(got, decoded{
			header:  header,
			body:    payload,
			changed: decodeBitmaps(t, schemas[sid], header["changedFields"]),
			nulled:  decodeBitmaps(t, schemas[sid], header["nulledFields"]),
		})
	}

	for i, want := range []string{"CREATE", "UPDATE", "DELETE", "UNDELETE"} {
		h := got[i].header
		if h["changeType"] != want || h["entityName"] != "Contact" || !slices.Equal(toStrings(h["recordIds"]), []string{id}) {
			t.Errorf("event %d header = %v", i, h)
		}
	}
	create, update, del, undel := got[0], got[1], got[2], got[3]
	if name := unwrapUnion(create.body["Name"]).(map[string]any); unwrapUnion(name["FirstName"]) != "Ann" || unwrapUnion(name["LastName"]) != "Lee" {
		t.Errorf("CREATE Name = %v", create.body["Name"])
	}
	if bd := unwrapUnion(create.body["Birthdate"]); bd != time.Date(1990, 4, 1, 0, 0, 0, 0, time.UTC).UnixMilli() {
		t.Errorf("CREATE Birthdate = %v, want epoch ms at midnight UTC", bd)
	}
	slices.Sort(update.changed)
	if want := []string{"LastModifiedDate", "MailingAddress.City", "Name.FirstName", "Phone"}; !slices.Equal(update.changed, want) {
		t.Errorf("UPDATE changedFields decode to %v, want %v", update.changed, want)
	}
	if !slices.Equal(update.nulled, []string{"Phone"}) {
		t.Errorf("UPDATE nulledFields decode to %v, want [Phone]", update.nulled)
	}
	if unwrapUnion(update.body["Title"]) != nil || unwrapUnion(update.body["Email"]) != nil {
		t.Errorf("UPDATE carries unchanged fields: %v", update.body)
	}
	if len(del.changed) != 0 || unwrapUnion(del.body["LastModifiedDate"]) != nil {
		t.Errorf("DELETE carries fields: changed %v", del.changed)
	}
	if addr := unwrapUnion(undel.body["MailingAddress"]).(map[string]any); unwrapUnion(addr["City"]) != "Bergen" {
		t.Errorf("UNDELETE MailingAddress = %v", undel.body["MailingAddress"])
	}
}

// decodeBitmaps turns a header field list into names per spec 5.4: element "0x…" maps bits to top-level
// schema fields, "p-0x…" to the members of the compound record at position p.
func decodeBitmaps(t *testing.T, schemaJSON string, list any) []string {
	t.Helper()
	var sch struct {
		Fields []struct {
			Name string          `json:"name"`
			Type json.RawMessage `json:"type"`
		} `json:"fields"`
	}
	if err := json.Unmarshal([]byte(schemaJSON), &sch); err != nil {
		t.Fatal(err)
	}
	bits := func(hex string) []int {
		n, ok := new(big.Int).SetString(strings.TrimPrefix(hex, "0x"), 16)
		if !ok {
			t.Fatalf("bad bitmap %q", hex)
		}
		var out []int
		for i := 0; i < n.BitLen(); i++ {
			if n.Bit(i) == 1 {
				out = append(out, i)
			}
		}
		return out
	}
	var names []string
	for _, el := range toStrings(list) {
		if strings.HasPrefix(el, "0x") {
			for _, i := range bits(el) {
				names = append(names, sch.Fields[i].Name)
			}
			continue
		}
		p, hex, ok := strings.Cut(el, "-")
		pos, err := strconv.Atoi(p)
		if !ok || err != nil {
			t.Fatalf("bad bitmap element %q", el)
		}
		var union []json.RawMessage
		if err := json.Unmarshal(sch.Fields[pos].Type, &union); err != nil {
			t.Fatalf("field %d is not a union: %v", pos, err)
		}
		var rec struct {
			Fields []struct {
				Name string `json:"name"`
			} `json:"fields"`
		}
		for _, u := range union {
			if err := json.Unmarshal(u, &rec); err == nil && len(rec.Fields) > 0 {
				break
			}
		}
		for _, i := range bits(hex) {
			names = append(names, sch.Fields[pos].Name+"."+rec.Fields[i].Name)
		}
	}
	return names
}

func toStrings(v any) []string {
	var out []string
	switch x := v.(type) {
	case []any:
		for _, s := range x {
			out = append(out, s.(string))
		}
	case []string:
		out = x
	}
	return out
}

// unwrapUnion returns the value of a decoded ["null", T] union, whichever form the decoder chose.
func unwrapUnion(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for k, inner := range m {
			if strings.Contains(k, ".") || k == "string" || k == "long" || k == "int" || k == "double" || k == "boolean" {
				return inner
			}
		}
	}
	return v
}
