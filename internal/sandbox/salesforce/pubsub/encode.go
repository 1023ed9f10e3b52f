package pubsub

import (
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/cdc"
)

// encode returns the event as binary Avro (no container header, spec 6.6) under this schema. The body
// holds the event's Values: every field for CREATE and UNDELETE, the changed fields for UPDATE, nothing
// for DELETE and gap events; every field the event does not carry is null. A compound field is a nested
// record when any of its members has a value, null otherwise (nulledFields tells a nulled member from an
// unchanged one).
func (es *entitySchema) encode(ev *cdc.Event) ([]byte, error) {
	rec := make(map[string]any, len(es.body)+1)
	rec["ChangeEventHeader"] = map[string]any{
		"entityName":      ev.Entity,
		"recordIds":       nonNil(ev.RecordIDs),
		"changeType":      ev.ChangeType,
		"changeOrigin":    ev.ChangeOrigin,
		"transactionKey":  ev.TransactionKey,
		"sequenceNumber":  int32(ev.SequenceNumber), //nolint:gosec // G115: a position within one transaction
		"commitTimestamp": ev.CommitTimestamp.UnixMilli(),
		"commitNumber":    ev.CommitNumber,
		"commitUser":      ev.CommitUser,
		"nulledFields":    es.bitmap(ev.NulledFields, true),
		"diffFields":      es.bitmap(ev.DiffFields, false),
		"changedFields":   es.bitmap(ev.ChangedFields, false),
	}
	if !slices.Contains(changeTypes, ev.ChangeType) {
		return nil, fmt.Errorf("event %d: change type %q is not one of %v", ev.ReplayID, ev.ChangeType, changeTypes)
	}
	for _, f := range es.body {
		if f.members == nil {
			v, err := avroValue(f.typ, ev.Values[f.name])
			if err != nil {
				return nil, fmt.Errorf("event %d: %s.%s: %w", ev.ReplayID, es.entity, f.name, err)
			}
			rec[f.name] = v
			continue
		}
		var nested map[string]any
		for _, m := range f.members {
			v, err := avroValue(m.Type, ev.Values[m.Name])
			if err != nil {
				return nil, fmt.Errorf("event %d: %s.%s: %w", ev.ReplayID, es.entity, m.Name, err)
			}
			if v == nil {
				continue
			}
			if nested == nil {
				nested = make(map[string]any, len(f.members))
			}
			nested[memberName(m)] = v
		}
		if nested != nil {
			rec[f.name] = map[string]any{f.record: nested} // a union value names its branch
		}
	}
	out, err := avro.Marshal(es.avro, rec)
	if err != nil {
		return nil, fmt.Errorf("event %d: encoding %sChangeEvent: %w", ev.ReplayID, es.entity, err)
	}
	return out, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// avroValue converts a record value (Go types of package schema) to the Go type the Avro encoder expects
// for the field's type (spec 6.6): dates and datetimes become epoch milliseconds.
func avroValue(describeType string, v any) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch avroType(describeType) {
	case "string":
		if s, ok := v.(string); ok {
			return s, nil
		}
	case "boolean":
		if b, ok := v.(bool); ok {
			return b, nil
		}
	case "int":
		switch n := v.(type) {
		case int64:
			return int32(n), nil //nolint:gosec // G115: int fields hold at most 9 digits
		case int:
			return int32(n), nil //nolint:gosec // G115: as above
		case int32:
			return n, nil
		}
	case "double":
		switch n := v.(type) {
		case float64:
			return n, nil
		case int64:
			return float64(n), nil
		}
	case "long":
		switch t := v.(type) {
		case time.Time:
			return t.UnixMilli(), nil
		case time.Duration: // a time field: milliseconds since midnight
			return t.Milliseconds(), nil
		case int64:
			return t, nil
		}
	}
	return nil, fmt.Errorf("value %#v (%T) does not fit a %s field", v, v, describeType)
}

// bitmap encodes field names as the header lists are sent over the Pub/Sub API (spec 5.4): element 0 is
// "0x" + the hex of a bitmap over the top-level positions of the schema (bit i ↔ fields[i]), followed by
// one "<pos>-0x<hex>" element per compound field whose members are listed, over the nested record's
// fields. Names are top-level field names or compound members ("Name.FirstName", or the component's own
// field name). With allNulled (nulledFields), a compound whose members are all listed is sent as its
// top-level bit instead. Names the schema does not have (SystemModstamp, say) are dropped. Element 0 is
// left out when no top-level bit is set.
func (es *entitySchema) bitmap(names []string, allNulled bool) []string {
	out := []string{}
	if len(names) == 0 {
		return out
	}
	top := new(big.Int)
	nested := map[int]*big.Int{}
	for _, name := range names {
		if pos, ok := es.pos[name]; ok {
			top.SetBit(top, pos, 1)
			continue
		}
		if ref, ok := es.member[name]; ok {
			n := nested[ref.pos]
			if n == nil {
				n = new(big.Int)
				nested[ref.pos] = n
			}
			n.SetBit(n, ref.idx, 1)
		}
	}
	if allNulled {
		for _, f := range es.body {
			if n := nested[f.position]; n != nil && n.BitLen() == len(f.members) && allOnes(n) {
				top.SetBit(top, f.position, 1)
				delete(nested, f.position)
			}
		}
	}
	if top.Sign() != 0 {
		out = append(out, "0x"+upperHex(top))
	}
	positions := make([]int, 0, len(nested))
	for pos := range nested {
		positions = append(positions, pos)
	}
	slices.Sort(positions)
	for _, pos := range positions {
		out = append(out, strconv.Itoa(pos)+"-0x"+upperHex(nested[pos]))
	}
	return out
}

func allOnes(n *big.Int) bool {
	for i := range n.BitLen() {
		if n.Bit(i) == 0 {
			return false
		}
	}
	return true
}

// upperHex is n in upper-case hex, padded to an even number of digits (whole bytes).
func upperHex(n *big.Int) string {
	s := strings.ToUpper(n.Text(16))
	if len(s)%2 == 1 {
		s = "0" + s
	}
	return s
}
