package salesforce

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hamba/avro/v2"
)

// ChangeEvent is a decoded CDC event with compound fields flattened: Name.FirstName arrives as FirstName and
// MailingAddress.City as MailingCity, so the mapping sees the same field names as in queries.
type ChangeEvent struct {
	ReplayID        []byte
	Entity          string
	ChangeType      string
	RecordIDs       []string
	ChangeOrigin    string
	TransactionKey  string
	SequenceNumber  int
	CommitTimestamp time.Time
	CommitUser      string
	// ChangedFields and NulledFields are decoded from the header bitmaps to flattened field names.
	ChangedFields []string
	NulledFields  []string
	DiffFields    []string
	// Values holds every non-null body field (for UPDATE only the changed ones carry values): strings,
	// bools, int32/int64, float64, and time.Time for date and datetime fields.
	Values map[string]any
}

// ReplayUint decodes a replay ID (8-byte big-endian in practice; opaque by contract, so only for display).
func ReplayUint(id []byte) uint64 {
	if len(id) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(id)
}

// FieldTypes tells the decoder which fields are dates and datetimes (Avro carries them as epoch-ms longs).
type FieldTypes map[string]string

// schemaCodec is a parsed event schema plus what bitmap decoding needs.
type schemaCodec struct {
	schema avro.Schema
	fields []*avro.Field // top level, in order: bit i ↔ fields[i]
	// members[i] lists the member names of a compound field at top-level position i.
	members map[int][]string
	// typed decodes through a struct built from the schema; nil when the schema has no typed form.
	typed *typedCodec
}

func parseSchema(js string) (*schemaCodec, error) {
	s, err := avro.Parse(js)
	if err != nil {
		return nil, fmt.Errorf("parsing event schema: %w", err)
	}
	rec, ok := s.(*avro.RecordSchema)
	if !ok {
		return nil, errors.New("event schema is not a record")
	}
	c := &schemaCodec{schema: s, fields: rec.Fields(), members: map[int][]string{}}
	if tc, err := buildTyped(rec); err == nil {
		c.typed = tc
	}
	for i, f := range c.fields {
		if r := recordOf(f.Type()); r != nil && f.Name() != "ChangeEventHeader" {
			for _, m := range r.Fields() {
				c.members[i] = append(c.members[i], m.Name())
			}
		}
	}
	return c, nil
}

// recordOf returns the record schema of a record field or of a ["null", record] union.
func recordOf(s avro.Schema) *avro.RecordSchema {
	switch t := s.(type) {
	case *avro.RecordSchema:
		return t
	case *avro.UnionSchema:
		for _, u := range t.Types() {
			if r, ok := u.(*avro.RecordSchema); ok {
				return r
			}
		}
	}
	return nil
}

// componentField maps a compound member to its field name: MailingAddress.City → MailingCity,
// Name.FirstName → FirstName.
func componentField(compound, member string) string {
	if strings.HasSuffix(compound, "Address") {
		return strings.TrimSuffix(compound, "Address") + member
	}
	return member
}

// decodeBitmap turns the header's bitmap-encoded field list (spec 5.4) into flattened field names:
// element 0 "0x…" indexes top-level fields, "p-0x…" the members of the compound at position p. A set bit on
// a compound's own position stands for all of its members.
func (c *schemaCodec) decodeBitmap(list []string) ([]string, error) {
	var out []string
	for _, el := range list {
		parent := -1
		hex := el
		if i := strings.IndexByte(el, '-'); i > 0 {
			p, err := strconv.Atoi(el[:i])
			if err != nil || p < 0 || p >= len(c.fields) {
				return nil, fmt.Errorf("bitmap element %q names no field", el)
			}
			parent, hex = p, el[i+1:]
		}
		if !strings.HasPrefix(hex, "0x") {
			out = append(out, el) // a plain field name (not bitmap-encoded)
			continue
		}
		n, ok := new(big.Int).SetString(hex[2:], 16)
		if !ok {
			return nil, fmt.Errorf("bitmap element %q is not hexadecimal", el)
		}
		for i := 0; i < n.BitLen(); i++ {
			if n.Bit(i) == 0 {
				continue
			}
			if parent >= 0 {
				members := c.members[parent]
				if i >= len(members) {
					return nil, fmt.Errorf("bitmap %q sets bit %d beyond the %d members of %s", el, i, len(members), c.fields[parent].Name())
				}
				out = append(out, componentField(c.fields[parent].Name(), members[i]))
				continue
			}
			if i >= len(c.fields) {
				return nil, fmt.Errorf("bitmap %q sets bit %d beyond the %d fields of the schema", el, i, len(c.fields))
			}
			name := c.fields[i].Name()
			if members, compound := c.members[i]; compound {
				for _, m := range members {
					out = append(out, componentField(name, m))
				}
				continue
			}
			out = append(out, name)
		}
	}
	return out, nil
}

// maxEventArray bounds the element count of an array in an event payload (recordIds, changedFields, ...).
// An array's length comes first in the payload and is allocated before its elements are read, so without
// a bound a corrupted or hostile payload claiming billions of elements exhausts the agent's memory.
const maxEventArray = 1_000_000

// maxEventBytes bounds one string or bytes value of an event payload. The largest Salesforce text field (a
// long or rich text area of 131,072 characters) takes at most 512 KiB in UTF-8.
const maxEventBytes = 1 << 20

// eventAvro decodes every event payload (typed and generic decoders alike) with both bounds set.
var eventAvro = avro.Config{MaxSliceAllocSize: maxEventArray, MaxByteSliceSize: maxEventBytes}.Freeze()

// ErrMalformedEvent wraps every refusal of an event payload the decoder cannot make sense of: retrying the
// same event cannot help.
var ErrMalformedEvent = errors.New("malformed event payload")

// decode decodes one payload into a ChangeEvent, through the typed struct when the schema has one. A payload
// from the stream may be corrupted or hostile: it gives an error, never a panic (a panic would restart the
// agent onto the same event, forever).
func (c *schemaCodec) decode(payload []byte, types FieldTypes) (ev *ChangeEvent, err error) {
	defer func() {
		// The last line of defence: the Avro library trusts lengths read from the payload in places its
		// limits do not cover (see checkLengths).
		if p := recover(); p != nil {
			ev, err = nil, fmt.Errorf("%w: the decoder failed on it: %v", ErrMalformedEvent, p)
		}
	}()
	if c.typed != nil {
		ev, err = c.decodeTyped(payload, types)
	} else {
		ev, err = c.decodeGeneric(payload, types)
	}
	if err != nil && !errors.Is(err, ErrMalformedEvent) {
		err = fmt.Errorf("%w: %w", ErrMalformedEvent, err)
	}
	return ev, err
}

// checkLengths refuses a decoded value holding a slice of negative length. The Avro library turns a
// negative block count into its absolute value, and -2^63 stays negative: the array's MaxSliceAllocSize
// check passes and the slice's length is set to it, so the first use of the slice panics.
func checkLengths(v reflect.Value) error {
	switch v.Kind() {
	case reflect.Slice:
		if v.Len() < 0 {
			return fmt.Errorf("%w: an array claims %d elements", ErrMalformedEvent, v.Len())
		}
		if mayHoldSlice(v.Type().Elem()) {
			for i := range v.Len() {
				if err := checkLengths(v.Index(i)); err != nil {
					return err
				}
			}
		}
	case reflect.Pointer, reflect.Interface:
		if !v.IsNil() {
			return checkLengths(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			if mayHoldSlice(v.Type().Field(i).Type) {
				if err := checkLengths(v.Field(i)); err != nil {
					return err
				}
			}
		}
	case reflect.Map:
		if mayHoldSlice(v.Type().Elem()) {
			for it := v.MapRange(); it.Next(); {
				if err := checkLengths(it.Value()); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// mayHoldSlice reports whether a value of type t can hold a slice (interfaces may hold anything).
func mayHoldSlice(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Slice, reflect.Interface:
		return true
	case reflect.Pointer:
		return mayHoldSlice(t.Elem())
	case reflect.Map:
		return mayHoldSlice(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if mayHoldSlice(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

// decodeGeneric decodes one payload through generic maps.
func (c *schemaCodec) decodeGeneric(payload []byte, types FieldTypes) (*ChangeEvent, error) {
	var m map[string]any
	if err := eventAvro.Unmarshal(c.schema, payload, &m); err != nil {
		return nil, fmt.Errorf("decoding Avro payload: %w", err)
	}
	if err := checkLengths(reflect.ValueOf(m)); err != nil {
		return nil, err
	}
	hdr, ok := m["ChangeEventHeader"].(map[string]any)
	if !ok {
		return nil, errors.New("event has no ChangeEventHeader")
	}
	ev := &ChangeEvent{Values: map[string]any{}}
	ev.Entity, _ = hdr["entityName"].(string)
	ev.ChangeType = fmt.Sprint(hdr["changeType"])
	ev.ChangeOrigin, _ = hdr["changeOrigin"].(string)
	ev.TransactionKey, _ = hdr["transactionKey"].(string)
	ev.CommitUser, _ = hdr["commitUser"].(string)
	if n, ok := hdr["sequenceNumber"].(int); ok {
		ev.SequenceNumber = n
	}
	if ms, ok := hdr["commitTimestamp"].(int64); ok {
		ev.CommitTimestamp = time.UnixMilli(ms).UTC()
	}
	ev.RecordIDs = stringList(hdr["recordIds"])
	var err error
	if ev.ChangedFields, err = c.decodeBitmap(stringList(hdr["changedFields"])); err != nil {
		return nil, fmt.Errorf("changedFields: %w", err)
	}
	if ev.NulledFields, err = c.decodeBitmap(stringList(hdr["nulledFields"])); err != nil {
		return nil, fmt.Errorf("nulledFields: %w", err)
	}
	if ev.DiffFields, err = c.decodeBitmap(stringList(hdr["diffFields"])); err != nil {
		return nil, fmt.Errorf("diffFields: %w", err)
	}
	for i, f := range c.fields {
		name := f.Name()
		if name == "ChangeEventHeader" {
			continue
		}
		v := m[name]
		if v == nil {
			continue
		}
		if _, compound := c.members[i]; compound {
			inner := unwrapUnion(v)
			rec, ok := inner.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("compound field %s has value of type %T", name, inner)
			}
			for k, mv := range rec {
				if mv = unwrapUnion(mv); mv != nil {
					fn := componentField(name, k)
					ev.Values[fn] = convertValue(fn, mv, types)
				}
			}
			continue
		}
		ev.Values[name] = convertValue(name, unwrapUnion(v), types)
	}
	return ev, nil
}

// unwrapUnion undoes the generic decoder's {"branch": value} wrapping of unions it cannot name.
func unwrapUnion(v any) any {
	if m, ok := v.(map[string]any); ok && len(m) == 1 {
		for k, inner := range m {
			if strings.Contains(k, ".") || isPrimitiveName(k) {
				return inner
			}
		}
	}
	return v
}

func isPrimitiveName(s string) bool {
	switch s {
	case "string", "boolean", "int", "long", "float", "double", "bytes":
		return true
	}
	return false
}

func convertValue(field string, v any, types FieldTypes) any {
	switch types[field] {
	case "date", "datetime":
		switch n := v.(type) {
		case int64:
			return time.UnixMilli(n).UTC()
		case int:
			return time.UnixMilli(int64(n)).UTC()
		}
	}
	return v
}

// stringList returns the strings of a decoded Avro array (header fields such as recordIds), skipping others.
func stringList(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// schemaCache caches parsed schemas by ID.
type schemaCache struct {
	mu sync.Mutex
	m  map[string]*schemaCodec
}

func (s *schemaCache) get(id string) *schemaCodec {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[id]
}

func (s *schemaCache) put(id string, c *schemaCodec) {
	s.mu.Lock()
	if s.m == nil {
		s.m = map[string]*schemaCodec{}
	}
	s.m[id] = c
	s.mu.Unlock()
}
