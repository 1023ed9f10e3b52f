package salesforce

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/hamba/avro/v2"
)

// typedCodec decodes change events through a Go struct type built from the event's schema at run time
// (reflect.StructOf), which the Avro library fills with its typed decoders: several times faster than
// decoding into generic maps, and the agent decodes every event of a backlog. Schemas it cannot express
// (unions other than ["null", T]) fall back to the generic decoder.
type typedCodec struct {
	typ    reflect.Type
	header int // index of ChangeEventHeader in typ
	// hdr holds the index in the header struct of each header field the sync reads (-1 when absent).
	hdr map[string]int
	// sliced lists the top-level fields whose type can hold a slice: only those are checked for the
	// negative lengths a malformed payload can leave (checkLengths), so the check costs little per event.
	sliced []int
}

var errUntyped = errors.New("schema has no typed form")

func buildTyped(rec *avro.RecordSchema) (*typedCodec, error) {
	t, err := goType(rec)
	if err != nil {
		return nil, err
	}
	tc := &typedCodec{typ: t, header: -1, hdr: map[string]int{}}
	for i, f := range rec.Fields() {
		if f.Name() != "ChangeEventHeader" {
			continue
		}
		hr, ok := f.Type().(*avro.RecordSchema)
		if !ok {
			return nil, errUntyped
		}
		tc.header = i
		for j, hf := range hr.Fields() {
			tc.hdr[hf.Name()] = j
		}
	}
	if tc.header < 0 {
		return nil, errors.New("event schema has no ChangeEventHeader")
	}
	for i := range t.NumField() {
		if mayHoldSlice(t.Field(i).Type) {
			tc.sliced = append(tc.sliced, i)
		}
	}
	return tc, nil
}

// goType is the Go type the Avro library decodes a schema into.
func goType(s avro.Schema) (reflect.Type, error) {
	switch t := s.(type) {
	case *avro.RefSchema:
		return goType(t.Schema())
	case *avro.PrimitiveSchema:
		if t.Logical() != nil {
			return nil, errUntyped
		}
		switch t.Type() {
		case avro.String:
			return reflect.TypeFor[string](), nil
		case avro.Bytes:
			return reflect.TypeFor[[]byte](), nil
		case avro.Int:
			return reflect.TypeFor[int32](), nil
		case avro.Long:
			return reflect.TypeFor[int64](), nil
		case avro.Float:
			return reflect.TypeFor[float32](), nil
		case avro.Double:
			return reflect.TypeFor[float64](), nil
		case avro.Boolean:
			return reflect.TypeFor[bool](), nil
		}
	case *avro.EnumSchema:
		return reflect.TypeFor[string](), nil
	case *avro.ArraySchema:
		et, err := goType(t.Items())
		if err != nil {
			return nil, err
		}
		return reflect.SliceOf(et), nil
	case *avro.MapSchema:
		vt, err := goType(t.Values())
		if err != nil {
			return nil, err
		}
		return reflect.MapOf(reflect.TypeFor[string](), vt), nil
	case *avro.RecordSchema:
		fields := make([]reflect.StructField, len(t.Fields()))
		for i, f := range t.Fields() {
			ft, err := goType(f.Type())
			if err != nil {
				return nil, err
			}
			fields[i] = reflect.StructField{Name: fmt.Sprintf("F%d", i), Type: ft, Tag: reflect.StructTag(`avro:"` + f.Name() + `"`)}
		}
		return reflect.StructOf(fields), nil
	case *avro.UnionSchema:
		types := t.Types()
		if len(types) != 2 || types[0].Type() != avro.Null {
			return nil, errUntyped
		}
		inner, err := goType(types[1])
		if err != nil {
			return nil, err
		}
		return reflect.PointerTo(inner), nil
	}
	return nil, errUntyped
}

// plain turns a decoded Go value into the types the generic decoder gives (int for Avro int).
func plain(v reflect.Value) any {
	switch v.Kind() {
	case reflect.Int32:
		return int(v.Int())
	case reflect.Float32:
		return float64(v.Float())
	}
	return v.Interface()
}

// decodeTyped decodes one payload through the typed struct.
func (c *schemaCodec) decodeTyped(payload []byte, types FieldTypes) (*ChangeEvent, error) {
	tc := c.typed
	v := reflect.New(tc.typ)
	if err := eventAvro.Unmarshal(c.schema, payload, v.Interface()); err != nil {
		return nil, fmt.Errorf("decoding Avro payload: %w", err)
	}
	e := v.Elem()
	for _, i := range tc.sliced {
		if err := checkLengths(e.Field(i)); err != nil {
			return nil, err
		}
	}
	h := e.Field(tc.header)
	str := func(name string) string {
		if i, ok := tc.hdr[name]; ok && h.Field(i).Kind() == reflect.String {
			return h.Field(i).String()
		}
		return ""
	}
	list := func(name string) []string {
		if i, ok := tc.hdr[name]; ok {
			if l, ok := h.Field(i).Interface().([]string); ok {
				return l
			}
		}
		return nil
	}
	ev := &ChangeEvent{Values: map[string]any{}}
	ev.Entity, ev.ChangeType, ev.ChangeOrigin = str("entityName"), str("changeType"), str("changeOrigin")
	ev.TransactionKey, ev.CommitUser = str("transactionKey"), str("commitUser")
	if i, ok := tc.hdr["sequenceNumber"]; ok && h.Field(i).CanInt() {
		ev.SequenceNumber = int(h.Field(i).Int())
	}
	if i, ok := tc.hdr["commitTimestamp"]; ok && h.Field(i).CanInt() {
		ev.CommitTimestamp = time.UnixMilli(h.Field(i).Int()).UTC()
	}
	ev.RecordIDs = append([]string{}, list("recordIds")...)
	var err error
	if ev.ChangedFields, err = c.decodeBitmap(list("changedFields")); err != nil {
		return nil, fmt.Errorf("changedFields: %w", err)
	}
	if ev.NulledFields, err = c.decodeBitmap(list("nulledFields")); err != nil {
		return nil, fmt.Errorf("nulledFields: %w", err)
	}
	if ev.DiffFields, err = c.decodeBitmap(list("diffFields")); err != nil {
		return nil, fmt.Errorf("diffFields: %w", err)
	}
	for i, f := range c.fields {
		if i == tc.header {
			continue
		}
		fv := e.Field(i)
		if fv.Kind() == reflect.Pointer {
			if fv.IsNil() {
				continue
			}
			fv = fv.Elem()
		}
		name := f.Name()
		if members, compound := c.members[i]; compound {
			if fv.Kind() != reflect.Struct {
				return nil, fmt.Errorf("compound field %s has value of kind %s", name, fv.Kind())
			}
			for j, m := range members {
				mv := fv.Field(j)
				if mv.Kind() == reflect.Pointer {
					if mv.IsNil() {
						continue
					}
					mv = mv.Elem()
				}
				fn := componentField(name, m)
				ev.Values[fn] = convertValue(fn, plain(mv), types)
			}
			continue
		}
		ev.Values[name] = convertValue(name, plain(fv), types)
	}
	return ev, nil
}
