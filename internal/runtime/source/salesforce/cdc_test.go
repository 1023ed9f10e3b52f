package salesforce

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
)

// syntheticSchema has 32 top-level fields; positions 4 and 7 are compound records with 6 members each.
func syntheticSchema(t *testing.T) *schemaCodec {
	t.Helper()
	var fields []map[string]any
	for i := 0; i < 32; i++ {
		name := fmt.Sprintf("F%d", i)
		var typ any = []any{"null", "string"}
		switch i {
		case 0:
			name, typ = "ChangeEventHeader", map[string]any{"type": "record", "name": "ChangeEventHeader", "fields": []any{map[string]any{"name": "entityName", "type": "string"}}}
		case 4:
			name = "Name"
			typ = []any{"null", map[string]any{"type": "record", "name": "Name", "fields": members("Salutation", "FirstName", "LastName", "MiddleName", "Suffix", "InformalName")}}
		case 7:
			name = "MailingAddress"
			typ = []any{"null", map[string]any{"type": "record", "name": "Address", "fields": members("Street", "City", "State", "PostalCode", "Country", "Latitude")}}
		}
		f := map[string]any{"name": name, "type": typ}
		if i != 0 {
			f["default"] = nil
		}
		fields = append(fields, f)
	}
	js, _ := json.Marshal(map[string]any{"type": "record", "name": "ContactChangeEvent", "namespace": "com.sforce.eventbus", "fields": fields})
	c, err := parseSchema(string(js))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func members(names ...string) []any {
	out := make([]any, len(names))
	for i, n := range names {
		out[i] = map[string]any{"name": n, "type": []any{"null", "string"}, "default": nil}
	}
	return out
}

// The worked example of Salesforce's documentation of the changedFields bitmap.
func TestBitmapDecodesTheSpecExample(t *testing.T) {
	c := syntheticSchema(t)
	got, err := c.decodeBitmap([]string{"0x650004E0", "4-0x10", "7-0x06"})
	if err != nil {
		t.Fatal(err)
	}
	// Top level: 5, 6, 7, 10, 24, 26, 29, 30, where 7 is a compound and stands for all its members;
	// "4-0x10" is member 4 of Name, "7-0x06" members 1 and 2 of MailingAddress.
	want := []string{"F5", "F6", "MailingStreet", "MailingCity", "MailingState", "MailingPostalCode", "MailingCountry", "MailingLatitude",
		"F10", "F24", "F26", "F29", "F30", "Suffix", "MailingCity", "MailingState"}
	if !slices.Equal(got, want) {
		t.Errorf("decoded\n got %v\nwant %v", got, want)
	}
}

func TestBitmapRejectsBitsBeyondTheSchema(t *testing.T) {
	c := syntheticSchema(t)
	for _, bad := range [][]string{{"0x1FFFFFFFF"}, {"4-0x80"}, {"99-0x01"}, {"0xZZ"}} {
		if _, err := c.decodeBitmap(bad); err == nil {
			t.Errorf("%v decoded without error", bad)
		}
	}
}
