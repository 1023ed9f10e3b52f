package jsonrow

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestAppendMembersDecodesLikeEncodingJSON(t *testing.T) {
	row := map[string]any{"lastname": "Zoë \"Q\" \\ back\nslash\t\x01", "n": int64(42), "i": 7, "i32": int32(-3), "f": 2.5,
		"b": true, "x": nil, "odd": "\xff\xfe invalid", "sep": "line\u2028sep\u2029", "num": json.Number("7"), "list": []string{"a"}}
	m, err := AppendMembers(nil, row)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(append(append([]byte{'{'}, m...), '}'), &got); err != nil {
		t.Fatalf("invalid JSON {%s}: %v", m, err)
	}
	enc, _ := json.Marshal(row)
	var want map[string]any
	_ = json.Unmarshal(enc, &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("\n got %v\nwant %v", got, want)
	}
}

func TestAppendMemberSeparatesMembers(t *testing.T) {
	b := []byte{'{'}
	var err error
	for _, kv := range []struct {
		k string
		v any
	}{{"a", 1}, {"b", "x"}, {"c", nil}} {
		if b, err = AppendMember(b, kv.k, kv.v); err != nil {
			t.Fatal(err)
		}
	}
	if got := string(append(b, '}')); got != `{"a":1,"b":"x","c":null}` {
		t.Errorf("got %s", got)
	}
	if m, _ := AppendMember(nil, "a", true); string(m) != `"a":true` {
		t.Errorf("first member of an empty buffer: %s", m)
	}
}

func TestAppendValueRefusesNonFiniteNumbers(t *testing.T) {
	for _, f := range []float64{math.NaN(), math.Inf(1)} {
		if _, err := AppendValue(nil, "revenue", f); err == nil || !strings.Contains(err.Error(), "revenue") {
			t.Errorf("%v: err = %v, want one naming the column", f, err)
		}
	}
}

func BenchmarkAppendString(b *testing.B) {
	s := strings.Repeat("A longer description with ünïcode. ", 10)
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(len(s)))
	for b.Loop() {
		buf = AppendString(buf[:0], s)
	}
}
