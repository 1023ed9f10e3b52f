package salesforce

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
)

// contactCodec parses the Contact change event schema the sandbox serves (testdata, written by the chaos
// suite's TestWriteFuzzSeedCorpora with the seed payloads).
func contactCodec(tb testing.TB) *schemaCodec {
	tb.Helper()
	js, err := os.ReadFile("testdata/contact-change-event.avsc")
	if err != nil {
		tb.Fatal(err)
	}
	c, err := parseSchema(string(js))
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

var contactTypes = FieldTypes{"Birthdate": "date", "CreatedDate": "datetime", "LastModifiedDate": "datetime", "LastActivityDate": "date"}

// known reports whether name is a field of the schema or a member of one of its compounds.
func (c *schemaCodec) known(name string) bool {
	for i, f := range c.fields {
		if f.Name() == name {
			return true
		}
		for _, m := range c.members[i] {
			if componentField(f.Name(), m) == name {
				return true
			}
		}
	}
	return false
}

// FuzzChangeEventDecode: any payload either decodes or is refused with an error, through the typed decoder
// and through the generic one (used for schemas without a typed form); it never panics, and a decoded event
// names only fields the schema has.
func FuzzChangeEventDecode(f *testing.F) {
	c := contactCodec(f)
	generic := *c
	generic.typed = nil
	f.Add([]byte{})
	f.Add([]byte{0x00})
	f.Add(bytes.Repeat([]byte{0xff}, 32))
	f.Fuzz(func(t *testing.T, payload []byte) {
		checkDecoded(t, c, payload)
		checkDecoded(t, &generic, payload)
	})
}

func checkDecoded(t *testing.T, c *schemaCodec, payload []byte) {
	t.Helper()
	{
		ev, err := c.decode(payload, contactTypes)
		if err != nil {
			return
		}
		if ev == nil {
			t.Fatal("no event and no error")
		}
		for _, list := range [][]string{ev.ChangedFields, ev.NulledFields, ev.DiffFields} {
			for _, name := range list {
				if strings.HasPrefix(name, "0x") {
					t.Fatalf("bitmap element %q left undecoded", name)
				}
			}
		}
		for name := range ev.Values {
			if !c.known(name) {
				t.Fatalf("decoded value for %q, which the schema does not have", name)
			}
		}
	}
}

// FuzzDecodeBitmap: a changedFields/nulledFields list (comma-separated here) either decodes into field
// names of the schema (plain names pass through) or is refused; bits beyond the schema are errors, not
// panics.
func FuzzDecodeBitmap(f *testing.F) {
	c := contactCodec(f)
	for _, s := range []string{"0x650004E0,4-0x10,7-0x06", "0x1FFFFFFFF", "99-0x01", "0xZZ", "", "LastName", "3-0x", "-1-0x1",
		"0x" + strings.Repeat("0", 200) + "1", "1-0x", "0x0", "Name.FirstName", "2-0xFFFFFFFFFFFFFFFFFFFF"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		els := strings.Split(list, ",")
		out, err := c.decodeBitmap(els)
		if err != nil {
			return
		}
		plain := map[string]bool{}
		for _, el := range els {
			plain[el] = true
		}
		for _, name := range out {
			if !plain[name] && !c.known(name) {
				t.Fatalf("%q decoded to %q, which the schema does not have", list, name)
			}
		}
	})
}

// FuzzReadCSV: a Bulk results page either reads or fails with an error; every record read holds exactly
// the header's columns, and the count returned is the number of records handed over. Two properties tie the
// reader to the format: on a page without CR it reads exactly what encoding/csv reads (records and
// whether it fails), and any bytes written as a quoted value (quotes doubled) read back unchanged, CR and
// LF included.
func FuzzReadCSV(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("\"Id\",\"Name\"\n\"001\",\"\"\"quoted\"\" name\"\n"))
	f.Add([]byte("\"Id\",\"Name\"\r\n\"001\",\"a\r\nmultiline\"\r\n"))
	f.Add([]byte("\"Id\"\n\"001\",\"extra\"\n"))
	f.Add([]byte("a,b\n\n1,\"x\"\"y\"\nc\"d,e\n"))
	f.Add([]byte("\"a\"b,c\n"))
	f.Fuzz(func(t *testing.T, page []byte) {
		if !bytes.ContainsRune(page, '\r') {
			ours, oerr := readAllCSV(newCSVReader(bytes.NewReader(page)).Read)
			std := csv.NewReader(bytes.NewReader(page))
			std.FieldsPerRecord = -1
			theirs, serr := readAllCSV(std.Read)
			if (oerr == nil) != (serr == nil) || !slices.EqualFunc(ours, theirs, slices.Equal) {
				t.Fatalf("%q: read %q (err %v), encoding/csv reads %q (err %v)", page, ours, oerr, theirs, serr)
			}
		}
		value := string(page)
		var got any
		if _, err := readCSV(strings.NewReader("\"Id\",\"V\"\n\"1\",\""+strings.ReplaceAll(value, `"`, `""`)+"\"\n"), recordsOf(func(r Record) error {
			got = r["V"]
			return nil
		})); err != nil {
			t.Fatalf("the quoted value %q: %v", value, err)
		}
		if want := any(value); value == "" {
			want = nil
			if got != want {
				t.Fatalf("the empty value read as %q", got)
			}
		} else if got != want {
			t.Fatalf("the quoted value %q read back as %q", value, got)
		}
		var header map[string]bool
		handed := 0
		n, err := readCSV(bytes.NewReader(page), recordsOf(func(r Record) error {
			handed++
			if header == nil {
				header = map[string]bool{}
				for k := range r {
					header[k] = true
				}
			}
			if len(r) != len(header) {
				t.Fatalf("record %d has %d columns, the first had %d", handed, len(r), len(header))
			}
			for k := range r {
				if !header[k] {
					t.Fatalf("record %d has column %q the first had not", handed, k)
				}
			}
			return nil
		}))
		if n != handed {
			t.Fatalf("readCSV counted %d records and handed over %d (err %v)", n, handed, err)
		}
	})
}

// TestACorruptedPayloadClaimingAHugeArrayIsRefused: a payload whose array header claims billions of
// elements (found by FuzzChangeEventDecode: a real payload cut short) is refused with an error. Regression:
// the decoder allocated the claimed length first, and the agent died out of memory on one bad event (and
// again on every restart, at the same event).
func TestACorruptedPayloadClaimingAHugeArrayIsRefused(t *testing.T) {
	c := contactCodec(t)
	payload := []byte("\x0eContact\x01&$038d000000000DAAQ\x00\x06hcom/salesforce/api/soap/62.0;client=SfdcInternalAPI/H4f3d6175-75f4-4ecb-aa0d-3f65cb826375\x02\xdcإ\xb5\xc3h\xe2\xa2\xc1ш@$0058d0000000002AAA\x00Zo")
	if _, err := c.decode(payload, contactTypes); err == nil {
		t.Fatal("a payload claiming a huge array decoded without error")
	}
}

// TestAnArrayCountOfMinInt64IsRefused: an array block count of -2^63 (found by FuzzChangeEventDecode) is
// refused with an error by both decoders. Regression: the Avro library negates a negative block count, which
// leaves -2^63 negative, sets the slice's length to it past its MaxSliceAllocSize check, and the typed
// decoder panicked copying recordIds ("growslice: len out of range"); a panic restarts the agent onto the
// same event forever.
func TestAnArrayCountOfMinInt64IsRefused(t *testing.T) {
	c := contactCodec(t)
	generic := *c
	generic.typed = nil
	payload := []byte("\x1600000000000\xff\xff\xff\xff\xff\xff\xff\xff\xff1")
	for name, codec := range map[string]*schemaCodec{"typed": c, "generic": &generic} {
		if _, err := codec.decode(payload, contactTypes); err == nil {
			t.Errorf("%s: a payload with an array count of -2^63 decoded without error", name)
		} else {
			t.Logf("%s: %v", name, err)
		}
	}
}

func readAllCSV(read func() ([]string, error)) ([][]string, error) {
	var out [][]string
	for {
		rec, err := read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, slices.Clone(rec))
	}
}
