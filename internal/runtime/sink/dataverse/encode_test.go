package dataverse

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/jsonrow"
)

func TestBulkBodyDecodesToTheSameRowsAsEncodingJSON(t *testing.T) {
	rows := []Row{
		{"lastname": "Zoë \"Q\" \\ back\nslash\t\x01", "n": int64(42), "f": 2.5, "b": true, "x": nil, "bind@odata.bind": "/accounts(1)"},
		{"firstname": "Nguyễn", "odd": "\xff\xfe invalid", "sep": "line\u2028sep", "num": json.Number("7")},
		{},
	}
	keys := []string{"0068845f-aaaa-587f-b5f2-ae83098ac839", "", "1068845f-aaaa-587f-b5f2-ae83098ac839"}
	targets := make([]Target, len(rows))
	for i, r := range rows {
		m, err := jsonrow.AppendMembers(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		targets[i] = Target{Key: keys[i], Members: m}
	}
	b := BulkBody("contact", "contactid", targets)
	if len(b) != cap(b) {
		t.Errorf("body of %d bytes in a buffer of %d: the size estimate is off", len(b), cap(b))
	}
	var got struct {
		Targets []map[string]any `json:"Targets"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("invalid JSON %s: %v", b, err)
	}
	for i, r := range rows {
		want := map[string]any{"@odata.type": "Microsoft.Dynamics.CRM.contact"}
		if keys[i] != "" {
			want["contactid"] = keys[i]
		}
		enc, _ := json.Marshal(r)
		var plain map[string]any
		_ = json.Unmarshal(enc, &plain)
		for k, v := range plain {
			want[k] = v
		}
		if !reflect.DeepEqual(got.Targets[i], want) {
			t.Errorf("row %d:\n got %v\nwant %v", i, got.Targets[i], want)
		}
	}
	if !strings.HasPrefix(string(b), `{"Targets":[{"@odata.type":"Microsoft.Dynamics.CRM.contact",`) {
		t.Errorf("@odata.type must come first: %.80s", b)
	}
}

func BenchmarkBulkBody(b *testing.B) {
	targets := make([]Target, 1000)
	for i := range targets {
		m, err := jsonrow.AppendMembers(nil, Row{"firstname": "Thủy", "lastname": "Huỳnh", "emailaddress1": "thuy@example.com",
			"telephone1": "024 0568 9364", "birthdate": "1959-07-17", "description": strings.Repeat("A longer description. ", 8),
			"ownerid@odata.bind": "/teams(af7ab796-1efb-49b9-81b5-70eb466e0c23)", "fax": nil})
		if err != nil {
			b.Fatal(err)
		}
		targets[i] = Target{Key: "0068845f-aaaa-587f-b5f2-ae83098ac839", Members: m}
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = BulkBody("contact", "contactid", targets)
	}
}

// TestBulkBodyStreamsTheBytesBulkBodyBuilds: the body BulkTargets streams is BulkBody's, byte for byte, read
// whole or a byte at a time, with the length announced beforehand; a second reader starts over (a retry).
func TestBulkBodyStreamsTheBytesBulkBodyBuilds(t *testing.T) {
	var targets []Target
	for i, r := range []Row{{"lastname": "Zoë \"Q\"", "n": int64(42)}, {}, {"firstname": "Nguyễn"}, {"x": nil}} {
		m, err := jsonrow.AppendMembers(nil, r)
		if err != nil {
			t.Fatal(err)
		}
		key := ""
		if i%2 == 0 {
			key = "0068845f-aaaa-587f-b5f2-ae83098ac839"
		}
		targets = append(targets, Target{Key: key, Members: m})
	}
	for n := 1; n <= len(targets); n++ {
		want := BulkBody("contact", "contactid", targets[:n])
		body := newBulkBody("contact", "contactid", targets[:n])
		if body.size != int64(len(want)) {
			t.Errorf("%d targets: size %d, the body has %d bytes", n, body.size, len(want))
		}
		whole, err := io.ReadAll(body.reader())
		if err != nil || !bytes.Equal(whole, want) {
			t.Errorf("%d targets: read whole %s (%v), want %s", n, whole, err, want)
		}
		bytewise, err := io.ReadAll(iotest.OneByteReader(body.reader()))
		if err != nil || !bytes.Equal(bytewise, want) {
			t.Errorf("%d targets: read a byte at a time %s (%v), want %s", n, bytewise, err, want)
		}
	}
}
