package salesforce

import (
	"reflect"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/clock"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/cdc"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/pubsub"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/schema"
)

// TestTypedAndGenericDecodingAgree decodes the sandbox's Contact and Account change events (create with
// every field, update with changed and nulled fields, delete) both ways and expects the same event.
func TestTypedAndGenericDecodingAgree(t *testing.T) {
	reg := schema.NewRegistry()
	now := time.Date(2024, 5, 1, 12, 0, 0, 123e6, time.UTC)
	events := []cdc.Event{
		{ReplayID: 1, Entity: "Contact", ChangeType: cdc.Create, RecordIDs: []string{"003000000000001AAA"}, CommitTimestamp: now, TransactionKey: "k", SequenceNumber: 1,
			Values: map[string]any{"FirstName": "Zoë", "LastName": "Ng", "Salutation": "Dr.", "Email": "z@example.com", "Birthdate": time.Date(1990, 3, 4, 0, 0, 0, 0, time.UTC),
				"MailingCity": "Oslo", "AccountId": "001000000000001AAA", "Description": "long text"}},
		{ReplayID: 2, Entity: "Contact", ChangeType: cdc.Update, RecordIDs: []string{"003000000000001AAA"}, CommitTimestamp: now,
			ChangedFields: []string{"Name.FirstName", "Phone", "LastModifiedDate"}, NulledFields: []string{"Phone"},
			Values: map[string]any{"FirstName": "Zoe", "LastModifiedDate": now}},
		{ReplayID: 3, Entity: "Account", ChangeType: cdc.Create, RecordIDs: []string{"001000000000001AAA"}, CommitTimestamp: now,
			Values: map[string]any{"Name": "Acme", "NumberOfEmployees": int64(42), "AnnualRevenue": 1.5e6, "BillingCountry": "Norway"}},
		{ReplayID: 4, Entity: "Contact", ChangeType: cdc.Delete, RecordIDs: []string{"003000000000001AAA"}, CommitTimestamp: now},
	}
	srv := pubsub.New(pubsub.Config{Log: cdc.New(clock.New(), time.Hour), Schemas: reg, Clock: clock.New(), OrgID: "00D000000000001AAA"})
	types := FieldTypes{"Birthdate": "date", "LastModifiedDate": "datetime", "CreatedDate": "datetime"}
	for _, ev := range events {
		js, payload, err := srv.EncodeForTest(ev)
		if err != nil {
			t.Fatal(err)
		}
		c, err := parseSchema(js)
		if err != nil {
			t.Fatal(err)
		}
		if c.typed == nil {
			t.Fatalf("%s schema has no typed form", ev.Entity)
		}
		typed, err := c.decodeTyped(payload, types)
		if err != nil {
			t.Fatal(err)
		}
		generic, err := c.decodeGeneric(payload, types)
		if err != nil {
			t.Fatal(err)
		}
		if ev.ChangeType == cdc.Create && ev.Entity == "Contact" {
			if typed.Values["FirstName"] != "Zoë" || typed.Values["MailingCity"] != "Oslo" || typed.Values["Birthdate"] != time.Date(1990, 3, 4, 0, 0, 0, 0, time.UTC) {
				t.Errorf("typed create values = %v", typed.Values)
			}
		}
		if !reflect.DeepEqual(typed, generic) {
			t.Errorf("%s %s:\n typed   %+v\n generic %+v", ev.Entity, ev.ChangeType, typed, generic)
		}
	}
}

func BenchmarkDecodeContactUpdate(b *testing.B) {
	srv := pubsub.New(pubsub.Config{Log: cdc.New(clock.New(), time.Hour), Schemas: schema.NewRegistry(), Clock: clock.New(), OrgID: "00D000000000001AAA"})
	ev := cdc.Event{ReplayID: 2, Entity: "Contact", ChangeType: cdc.Update, RecordIDs: []string{"003000000000001AAA"}, CommitTimestamp: time.Now(),
		ChangedFields: []string{"Phone", "Email", "LastModifiedDate"}, Values: map[string]any{"Phone": "555", "Email": "a@b.c", "LastModifiedDate": time.Now()}}
	js, payload, err := srv.EncodeForTest(ev)
	if err != nil {
		b.Fatal(err)
	}
	c, _ := parseSchema(js)
	b.Run("typed", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.decodeTyped(payload, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("generic", func(b *testing.B) {
		for b.Loop() {
			if _, err := c.decodeGeneric(payload, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
}
