package dataverse

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
)

// The scanner must accept exactly the objects encoding/json accepts and yield the same values, in order.
func TestScanObjectAgreesWithEncodingJSON(t *testing.T) {
	inputs := []string{
		`{}`, ` { } `, `{"a":1}`, `{"a":-0.5e+10,"b":true,"c":false,"d":null}`,
		`{"s":"plain","e":"q\"b\\s\/n\nt\tr\rb\bf\f","u":"\u00e9\u4e2d\ud83d\ude00"}`,
		`{"lone":"\ud83d x","bad pair":"\ud83d\u0041"}`,
		`{"nested":{"x":[1,"two",{"three":3}]},"arr":[],"after":"y"}`,
		`{"str with } and ]":"{[\"]}"}`,
		`{"num":0,"neg":-12,"frac":3.25,"exp":1E3}`,
		`{"dup":1,"dup":2}`,
		"{\"ws\"\t:\r\n\"v\" }",
		// invalid
		`{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{,}`, `{"a":01}`, `{"a":1.}`, `{"a":.5}`, `{"a":-}`, `{"a":1e}`,
		`{"a":tru}`, `{"a":nul}`, `{"a":"unterminated}`, `{"a":"bad \q escape"}`, `{"a":"\u12"}`,
		"{\"a\":\"ctl \x01\"}", `{"a":[1,2}`, `{"a":{"b":1}`, `["not an object"]`, `"string"`, `{"a" 1}`, `{a:1}`,
		`{"a":1 "b":2}`, `{"a":[1,]}`,
	}
	// Add random objects built from the pieces above.
	rng := rand.New(rand.NewPCG(1, 2))
	pieces := []string{`"k":1`, `"k":"v"`, `"k":null`, `"k":[1,{"x":"y"}]`, `"k":"\u00e9\n"`, `"k":-3.5e-2`, `"k":true`}
	for n := 0; n < 200; n++ {
		var b bytes.Buffer
		b.WriteByte('{')
		for i := 0; i < rng.IntN(6); i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		b.WriteByte('}')
		inputs = append(inputs, b.String())
	}
	for _, in := range inputs {
		fields, end, err := scanObject([]byte(in), 0, nil)
		if err == nil && skipSpace([]byte(in), end) != len(in) {
			err = &scanError{end, "trailing data"}
		}
		dec := json.NewDecoder(bytes.NewReader([]byte(in)))
		dec.UseNumber()
		var want map[string]any
		werr := dec.Decode(&want)
		if werr == nil && dec.More() {
			werr = &scanError{0, "trailing data"}
		}
		if (err == nil) != (werr == nil) {
			t.Errorf("%q: scanner error %v, encoding/json error %v", in, err, werr)
			continue
		}
		if err != nil {
			continue
		}
		got := map[string]any{}
		for _, f := range fields {
			got[f.name] = f.val
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: scanner %#v, encoding/json %#v", in, got, want)
		}
	}
	fields, _, _ := scanObject([]byte(`{"z":1,"a":2,"m":3}`), 0, nil)
	if fields[0].name != "z" || fields[1].name != "a" || fields[2].name != "m" {
		t.Errorf("member order lost: %v", fields)
	}
}
