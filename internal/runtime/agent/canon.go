package agent

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
)

// The out-of-band detector and the reconciliation compare a Salesforce record with a Dataverse row column by
// column. Both sides are brought to one canonical text per column: the Salesforce record through the table's
// mapping plan (so a value is compared as the sync writes it: truncated, converted, as a GUID), the
// Dataverse row as the Web API returns it.

// ownerColumn names the owner in canonical rows (the plan binds every row to the connector's team).
const ownerColumn = "ownerid"

// canonColumn is one compared column.
type canonColumn struct {
	name     string // destination logical name
	property string // Web API property of reads: name, or _name_value for lookups
	typ      string // destination attribute type
}

// canonColumns are the columns a table's rows are compared on, sorted by name: every mapped column and the
// owner.
func canonColumns(plan *mapping.Plan) []canonColumn {
	var out []canonColumn
	for _, c := range plan.Columns() {
		cc := canonColumn{name: c.Destination, property: c.Destination, typ: c.DestinationType}
		if isLookupType(c.DestinationType) {
			cc.property = "_" + c.Destination + "_value"
		}
		out = append(out, cc)
	}
	if plan.OwnerBind != "" {
		out = append(out, canonColumn{name: ownerColumn, property: "_ownerid_value", typ: "Owner"})
	}
	slices.SortFunc(out, func(a, b canonColumn) int { return strings.Compare(a.name, b.name) })
	return out
}

func isLookupType(t string) bool { return t == "Lookup" || t == "Customer" || t == "Owner" }

// selectProps is the $select of rows compared on cols.
func selectProps(primaryID string, cols []canonColumn, extra ...string) string {
	props := []string{primaryID}
	for _, c := range cols {
		props = append(props, c.property)
	}
	return strings.Join(append(props, extra...), ",")
}

// canonSource maps a Salesforce record through the plan and returns its key and canonical values.
func canonSource(plan *mapping.Plan, cols []canonColumn, rec map[string]any) (string, []string, error) {
	row, err := plan.Row(rec)
	if err != nil {
		return "", nil, err
	}
	key, _ := row[plan.PrimaryID].(string)
	vals := make([]string, len(cols))
	for i, c := range cols {
		if !isLookupType(c.typ) {
			vals[i] = canonValue(c.typ, row[c.name])
			continue
		}
		var bind any
		for k, v := range row {
			prop, ok := strings.CutSuffix(k, "@odata.bind")
			if ok && (prop == c.name || strings.HasPrefix(prop, c.name+"_")) {
				bind = v
				break
			}
		}
		vals[i] = canonValue(c.typ, bind)
	}
	return strings.ToLower(key), vals, nil
}

// canonDest returns a Dataverse row's key and canonical values.
func canonDest(primaryID string, cols []canonColumn, row dataverse.Row) (string, []string) {
	key, _ := row[primaryID].(string)
	vals := make([]string, len(cols))
	for i, c := range cols {
		vals[i] = canonValue(c.typ, row[c.property])
	}
	return strings.ToLower(key), vals
}

// canonValue renders one value; null and empty text are the same (the sync writes empty text as null).
func canonValue(typ string, v any) string {
	if v == nil {
		return ""
	}
	switch typ {
	case "Integer", "BigInt":
		if f, ok := number(v); ok {
			return strconv.FormatInt(int64(f), 10)
		}
	case "Decimal", "Money":
		// Dataverse stores these at the column's precision (2 decimals by default) while Salesforce may send
		// more: compare at two decimals, or every reconciliation would report the rounding as a difference.
		if f, ok := number(v); ok {
			return strconv.FormatFloat(math.Round(f*100)/100, 'f', 2, 64)
		}
	case "Double":
		// Double columns keep at most 5 decimals.
		if f, ok := number(v); ok {
			return strconv.FormatFloat(math.Round(f*1e5)/1e5, 'g', -1, 64)
		}
	case "Boolean":
		switch x := v.(type) {
		case bool:
			return strconv.FormatBool(x)
		case string:
			if b, err := strconv.ParseBool(x); err == nil {
				return strconv.FormatBool(b)
			}
		}
	case "DateTime":
		if s, ok := v.(string); ok {
			if t, err := time.Parse("2006-01-02", s); err == nil {
				return t.UTC().Format(time.RFC3339)
			}
			if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
				return t.UTC().Format(time.RFC3339)
			}
		}
	case "Lookup", "Customer", "Owner", "Uniqueidentifier":
		if s, ok := v.(string); ok {
			// A bind is "/accounts(<guid>)"; a read is the GUID.
			if i := strings.LastIndexByte(s, '('); i >= 0 && strings.HasSuffix(s, ")") {
				s = s[i+1 : len(s)-1]
			}
			return strings.ToLower(s)
		}
	}
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	return fmt.Sprint(v)
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	case int:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	case string:
		f, err := strconv.ParseFloat(x, 64)
		return f, err == nil
	}
	return 0, false
}

// rowHash hashes a key and its canonical values (FNV-1a, 64 bits); sums of row hashes are the order-free
// checksums of key ranges.
func rowHash(key string, vals []string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(key))
	for _, v := range vals {
		h.Write([]byte{0x1f})
		h.Write([]byte(v))
	}
	return h.Sum64()
}

// differingColumns names the columns whose canonical values differ.
func differingColumns(cols []canonColumn, a, b []string) []string {
	var out []string
	for i, c := range cols {
		if a[i] != b[i] {
			out = append(out, c.name)
		}
	}
	return out
}
