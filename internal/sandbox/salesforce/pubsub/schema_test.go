package pubsub

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/hamba/avro/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	eventbusv1 "github.com/crmsync/terraform-provider-crmsync/internal/proto/eventbus/v1"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/schema"
)

// TestBitmapEncodingReproducesTheSpecExample encodes the documented example of spec 5.4 and decodes it
// back to the documented positions.
func TestBitmapEncodingReproducesTheSpecExample(t *testing.T) {
	es := &entitySchema{pos: map[string]int{}, member: map[string]memberRef{}}
	var names []string
	for _, p := range []int{5, 6, 7, 10, 24, 26, 29, 30} {
		name := "F" + string(rune('A'+p))
		es.pos[name] = p
		names = append(names, name)
	}
	es.member["C4.M4"] = memberRef{pos: 4, idx: 4}
	es.member["C7.M1"] = memberRef{pos: 7, idx: 1}
	es.member["C7.M2"] = memberRef{pos: 7, idx: 2}
	names = append(names, "C4.M4", "C7.M1", "C7.M2", "SystemModstamp")
	got := es.bitmap(names, false)
	want := []string{"0x650004E0", "4-0x10", "7-0x06"}
	if !slices.Equal(got, want) {
		t.Fatalf("bitmap = %q, want %q", got, want)
	}
	for _, c := range []struct {
		hex  string
		want []int
	}{{"0x650004E0", []int{5, 6, 7, 10, 24, 26, 29, 30}}, {"0x10", []int{4}}, {"0x06", []int{1, 2}}, {"0x2080", []int{7, 13}}} {
		if got := bits(t, c.hex); !slices.Equal(got, c.want) {
			t.Errorf("%s decodes to %v, want %v", c.hex, got, c.want)
		}
	}
	if got := es.bitmap(nil, false); got == nil || len(got) != 0 {
		t.Errorf("an empty list encodes as %#v, want an empty array", got)
	}
	if got := upperHex(bigOf(0x1)); got != "01" {
		t.Errorf("hex of 1 = %q, want it padded to \"01\"", got)
	}
}

// TestFullyNulledCompoundUsesItsTopLevelBit protects spec 5.4's rule for nulledFields.
func TestFullyNulledCompoundUsesItsTopLevelBit(t *testing.T) {
	es, err := buildSchema(schema.Contact())
	if err != nil {
		t.Fatal(err)
	}
	addr := es.pos["MailingAddress"]
	all := []string{"MailingAddress.Street", "MailingAddress.City", "MailingAddress.State", "MailingAddress.PostalCode", "MailingAddress.Country"}
	if got := es.bitmap(all, true); len(got) != 1 || !slices.Equal(bits(t, got[0]), []int{addr}) {
		t.Errorf("nulled address = %q, want only top-level bit %d", got, addr)
	}
	if got := es.bitmap(all, false); len(got) != 1 || got[0] != itoaPos(addr)+"-0x1F" {
		t.Errorf("changed address = %q, want %d-0x1F", got, addr)
	}
	if got := es.bitmap([]string{"FirstName"}, true); len(got) != 1 || got[0] != itoaPos(es.pos["Name"])+"-0x02" {
		t.Errorf("a component named by its field name = %q, want Name member 1", got)
	}
}

// TestContactChangeEventSchemaHasTheSpecShape checks the schema a client fetches against spec 5.3 and
// 6.6: header first, describe order, Id and non-event fields left out, compound Name and MailingAddress
// as nested records, field types and docs.
func TestContactChangeEventSchemaHasTheSpecShape(t *testing.T) {
	e := newEnv(t, nil)
	info, err := e.client.GetTopic(e.ctx(), &eventbusv1.TopicRequest{TopicName: "/data/ContactChangeEvent"})
	if err != nil {
		t.Fatal(err)
	}
	s := e.getSchema(info.GetSchemaId())
	if s.rec.FullName() != "com.sforce.eventbus.ContactChangeEvent" {
		t.Errorf("schema name %s", s.rec.FullName())
	}
	var names []string
	for _, f := range s.rec.Fields() {
		names = append(names, f.Name())
	}
	want := []string{"ChangeEventHeader", "MasterRecordId", "AccountId", "Name", "MailingAddress", "Phone", "Fax",
		"MobilePhone", "AssistantPhone", "ReportsToId", "Email", "Title", "Department", "AssistantName", "LeadSource",
		"Birthdate", "Description", "OwnerId", "CreatedDate", "CreatedById", "LastModifiedDate", "LastModifiedById"}
	if !slices.Equal(names, want) {
		t.Fatalf("fields\n%v\nwant\n%v", names, want)
	}
	header, ok := s.rec.Fields()[0].Type().(*avro.RecordSchema)
	if !ok || header.FullName() != "com.sforce.eventbus.ChangeEventHeader" {
		t.Fatalf("field 0 is %s, want the non-null ChangeEventHeader record", s.rec.Fields()[0].Type())
	}
	var hdr []string
	for _, f := range header.Fields() {
		hdr = append(hdr, f.Name()+":"+typeName(f.Type()))
	}
	wantHdr := []string{"entityName:string", "recordIds:array", "changeType:enum", "changeOrigin:string",
		"transactionKey:string", "sequenceNumber:int", "commitTimestamp:long", "commitNumber:long", "commitUser:string",
		"nulledFields:array", "diffFields:array", "changedFields:array"}
	if !slices.Equal(hdr, wantHdr) {
		t.Errorf("header %v, want %v", hdr, wantHdr)
	}
	if enum := header.Fields()[2].Type().(*avro.EnumSchema); enum.FullName() != "com.sforce.eventbus.ChangeType" || enum.Symbols()[0] != "CREATE" || enum.Symbols()[1] != "UPDATE" {
		t.Errorf("changeType enum %s %v", enum.FullName(), enum.Symbols())
	}
	byName := map[string]*avro.Field{}
	for _, f := range s.rec.Fields() {
		byName[f.Name()] = f
	}
	members := func(f string) []string {
		var out []string
		for _, m := range nestedRecord(byName[f]).Fields() {
			out = append(out, m.Name())
		}
		return out
	}
	if got := members("Name"); !slices.Equal(got, []string{"Salutation", "FirstName", "LastName"}) {
		t.Errorf("Name members %v", got)
	}
	if got := members("MailingAddress"); !slices.Equal(got, []string{"Street", "City", "State", "PostalCode", "Country"}) {
		t.Errorf("MailingAddress members %v", got)
	}
	for field, want := range map[string]string{
		"Birthdate": "long Data:DateOnly", "CreatedDate": "long CreatedDate:DateTime", "AccountId": "string ForeignKey:EntityId",
		"Email": "string Data:Text", "Description": "string Data:StringPlusClob", "LeadSource": "string Data:DynamicEnum",
		"CreatedById": "string CreatedBy:EntityId", "LastModifiedDate": "long LastModifiedDate:DateTime",
	} {
		f := byName[field]
		u := f.Type().(*avro.UnionSchema)
		if got := typeName(u.Types()[1]) + " " + f.Doc(); got != want || u.Types()[0].Type() != avro.Null || !f.HasDefault() || f.Default() != nil {
			t.Errorf("%s is %s (union %s, default %v), want [\"null\", %s] with default null", field, got, u, f.Default(), want)
		}
	}
	// The raw JSON is what other Avro libraries (goavro in the official Go sample) parse: check the shape.
	var raw map[string]any
	infoJSON, _ := e.client.GetSchema(e.ctx(), &eventbusv1.SchemaRequest{SchemaId: info.GetSchemaId()})
	if err := json.Unmarshal([]byte(infoJSON.GetSchemaJson()), &raw); err != nil {
		t.Fatal(err)
	}
	if raw["name"] != "ContactChangeEvent" || raw["namespace"] != "com.sforce.eventbus" || raw["type"] != "record" || raw["uuid"] != info.GetSchemaId() {
		t.Errorf("schema JSON head: name %v namespace %v type %v uuid %v", raw["name"], raw["namespace"], raw["type"], raw["uuid"])
	}
}

func typeName(s avro.Schema) string {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	return string(s.Type())
}

// TestAccountNameIsAPlainStringAndAddressIsNested checks Account's schema: Name is not compound (spec 5.3).
func TestAccountNameIsAPlainStringAndAddressIsNested(t *testing.T) {
	es, err := buildSchema(schema.Account())
	if err != nil {
		t.Fatal(err)
	}
	s := es.avro.(*avro.RecordSchema)
	f := s.Fields()[es.pos["Name"]]
	if f.Name() != "Name" || typeName(f.Type().(*avro.UnionSchema).Types()[1]) != "string" {
		t.Errorf("Account Name is %s %s", f.Name(), f.Type())
	}
	if nestedRecord(s.Fields()[es.pos["BillingAddress"]]) == nil {
		t.Error("BillingAddress is not a nested record")
	}
	if f := s.Fields()[es.pos["NumberOfEmployees"]]; typeName(f.Type().(*avro.UnionSchema).Types()[1]) != "int" {
		t.Errorf("NumberOfEmployees is %s", f.Type())
	}
}

// TestAddedFieldYieldsANewSchemaAndOldIDsStayFetchable protects clients decoding events written before a
// custom field was added (spec 6.6: re-fetch on an unknown ID).
func TestAddedFieldYieldsANewSchemaAndOldIDsStayFetchable(t *testing.T) {
	e := newEnv(t, nil)
	topic := &eventbusv1.TopicRequest{TopicName: "/data/ContactChangeEvent"}
	before, err := e.client.GetTopic(e.ctx(), topic)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := e.client.GetTopic(e.ctx(), topic)
	if again.GetSchemaId() != before.GetSchemaId() || len(before.GetSchemaId()) != 22 {
		t.Fatalf("schema ID %q then %q: want a stable 22-character ID", before.GetSchemaId(), again.GetSchemaId())
	}
	if err := e.reg.AddField("Contact", schema.Field{Name: "Region__c", Type: "string", Length: 40}); err != nil {
		t.Fatal(err)
	}
	after, err := e.client.GetTopic(e.ctx(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if after.GetSchemaId() == before.GetSchemaId() {
		t.Fatal("adding a field kept the schema ID")
	}
	newSchema, oldSchema := e.getSchema(after.GetSchemaId()), e.getSchema(before.GetSchemaId())
	last := newSchema.rec.Fields()[len(newSchema.rec.Fields())-1]
	if last.Name() != "Region__c" || len(oldSchema.rec.Fields()) != len(newSchema.rec.Fields())-1 {
		t.Errorf("new schema ends with %s; old has %d fields, new %d", last.Name(), len(oldSchema.rec.Fields()), len(newSchema.rec.Fields()))
	}
	// A fresh server over the same registry computes the same IDs: they are fingerprints, not counters.
	if New(Config{Schemas: e.reg}).schemas.lookupOrNil(after.GetSchemaId()) == nil {
		t.Error("the schema ID is not reproducible")
	}
}

func (c *schemaCache) lookupOrNil(id string) *entitySchema {
	es, _ := c.lookup(id)
	return es
}

// TestGetTopicDescribesTheCDCChannels checks the three channels of spec 5.1 and the unknown-topic error.
func TestGetTopicDescribesTheCDCChannels(t *testing.T) {
	e := newEnv(t, nil)
	for _, topic := range []string{"/data/ContactChangeEvent", "/data/AccountChangeEvent", "/data/ChangeEvents"} {
		info, err := e.client.GetTopic(e.ctx(), &eventbusv1.TopicRequest{TopicName: topic})
		if err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		if info.GetTopicName() != topic || info.GetCanPublish() || !info.GetCanSubscribe() || info.GetTenantGuid() != testOrg || info.GetRpcId() == "" {
			t.Errorf("%s: %v", topic, info)
		}
		// The multi-entity channel has no single schema (a real org leaves it blank).
		if (info.GetSchemaId() == "") != (topic == "/data/ChangeEvents") {
			t.Errorf("%s: schema_id %q", topic, info.GetSchemaId())
		}
	}
	for _, topic := range []string{"/data/OpportunityChangeEvent", "/data/contactchangeevent", "/event/Foo__e"} {
		var tr metadata.MD
		_, err := e.client.GetTopic(e.ctx(), &eventbusv1.TopicRequest{TopicName: topic}, grpc.Trailer(&tr))
		expectStatus(t, err, tr, codes.NotFound, codeTopicNotFound)
	}
}

// TestGetSchemaOfUnknownOrBlankIDFails checks GetSchema's errors.
func TestGetSchemaOfUnknownOrBlankIDFails(t *testing.T) {
	e := newEnv(t, nil)
	var tr metadata.MD
	_, err := e.client.GetSchema(e.ctx(), &eventbusv1.SchemaRequest{SchemaId: "AV2YdPdv2ZQsx_bRMRN2Nw"}, grpc.Trailer(&tr))
	expectStatus(t, err, tr, codes.NotFound, codeSchemaAccess)
	tr = nil
	_, err = e.client.GetSchema(e.ctx(), &eventbusv1.SchemaRequest{}, grpc.Trailer(&tr))
	expectStatus(t, err, tr, codes.InvalidArgument, codeSchemaBlank)
}
