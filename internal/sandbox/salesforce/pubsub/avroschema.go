package pubsub

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/hamba/avro/v2"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/cdc"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/schema"
)

// Change event schemas (spec 5.2, 5.3, 6.6). An entity's schema is the record <Entity>ChangeEvent in
// namespace com.sforce.eventbus: field 0 is the non-null ChangeEventHeader record, then every field the
// change event carries, in describe order. Components of a compound field (Contact Name, addresses) are
// not top-level fields: they are members of a nested record, in a ["null", record] union at the position
// of the compound field itself. Every body field is a ["null", T] union defaulting to null.
//
// The schema ID is the URL-safe base64 of the first 16 bytes of the SHA-256 of the schema JSON: 22
// characters, the shape of a real schema ID, and stable for the same fields, so a restarted sandbox hands
// out the same IDs. A new field yields a new schema and ID; old IDs stay fetchable (the cache never
// forgets one), as clients decoding older events ask for them.

const namespace = "com.sforce.eventbus"

// changeTypes are the symbols of the ChangeType enum. CREATE = 0 and UPDATE = 1 are confirmed by real
// payloads; the order of the rest follows the documentation's listing.
var changeTypes = []string{cdc.Create, cdc.Update, cdc.Delete, cdc.Undelete, cdc.GapCreate, cdc.GapUpdate,
	cdc.GapDelete, cdc.GapUndelete, cdc.GapOverflow, "SNAPSHOT"}

// compoundOrder is the member order of the nested records. Salesforce lists a person name as Salutation,
// FirstName, LastName and an address as Street, City, State, PostalCode, Country (spec 5.3), which is not
// the describe order of the component fields; members not listed here follow in describe order.
var compoundOrder = []string{"Salutation", "FirstName", "LastName", "Street", "City", "State", "PostalCode",
	"Country", "StateCode", "CountryCode", "Latitude", "Longitude", "GeocodeAccuracy"}

// entitySchema is one version of an entity's change event schema and what encoding needs to know of it.
type entitySchema struct {
	id     string
	json   string
	avro   avro.Schema
	entity string
	obj    *schema.Object // the registry snapshot it was built from
	body   []bodyField    // top-level fields after the header; body[i] is at position i+1
	// pos maps a top-level field name (a compound by its own name, e.g. "Name") to its position.
	pos map[string]int
	// member maps a compound component, by its header-list name ("Name.FirstName") and by its field name
	// ("FirstName"), to its compound's position and its index in the nested record.
	member map[string]memberRef
}

type bodyField struct {
	name     string
	typ      string         // describe type of a plain field
	members  []schema.Field // components of a compound field, in nested-record order
	record   string         // full name of the nested record of a compound field
	position int
}

type memberRef struct{ pos, idx int }

// avroField is one field of a record schema, marshalled in this key order.
type avroField struct {
	Name    string           `json:"name"`
	Type    any              `json:"type"`
	Doc     string           `json:"doc,omitempty"`
	Default *json.RawMessage `json:"default,omitempty"`
}

// avroRecord is a record schema; the key order follows the schemas a real org serves (spec 6.6).
type avroRecord struct {
	Name      string      `json:"name"`
	Namespace string      `json:"namespace,omitempty"`
	Type      string      `json:"type"`
	Fields    []avroField `json:"fields"`
	UUID      string      `json:"uuid,omitempty"`
}

type avroArray struct {
	Type  string `json:"type"`
	Items string `json:"items"`
}

type avroEnum struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Symbols []string `json:"symbols"`
}

var nullDefault = json.RawMessage("null")

func nullable(name string, typ any, doc string) avroField {
	return avroField{Name: name, Type: []any{"null", typ}, Doc: doc, Default: &nullDefault}
}

func headerRecord() avroRecord {
	strs := avroArray{Type: "array", Items: "string"}
	return avroRecord{Type: "record", Name: "ChangeEventHeader", Fields: []avroField{
		{Name: "entityName", Type: "string"},
		{Name: "recordIds", Type: strs},
		{Name: "changeType", Type: avroEnum{Type: "enum", Name: "ChangeType", Symbols: changeTypes}},
		{Name: "changeOrigin", Type: "string"},
		{Name: "transactionKey", Type: "string"},
		{Name: "sequenceNumber", Type: "int"},
		{Name: "commitTimestamp", Type: "long"},
		{Name: "commitNumber", Type: "long"},
		{Name: "commitUser", Type: "string"},
		{Name: "nulledFields", Type: strs},
		{Name: "diffFields", Type: strs},
		{Name: "changedFields", Type: strs},
	}}
}

// avroType is the Avro type of a describe type (spec 6.6), or "" for types change events do not carry.
func avroType(describeType string) string {
	switch {
	case schema.IsText(describeType), describeType == "id", describeType == "reference":
		return "string"
	}
	switch describeType {
	case "boolean":
		return "boolean"
	case "int":
		return "int"
	case "double", "currency", "percent":
		return "double"
	case "date", "datetime", "time":
		return "long"
	}
	return ""
}

// fieldDoc is the doc annotation of a field (spec 6.6). System audit fields are named after their field
// (CreatedDate:DateTime, CreatedBy:EntityId); the Data:Integer, Data:MultiEnum, Data:PersonName and
// Data:Address tags are not in the spec and are this emulator's best guess.
func fieldDoc(f schema.Field) string {
	switch f.Name {
	case "CreatedDate", "LastModifiedDate":
		return f.Name + ":DateTime"
	case "CreatedById", "LastModifiedById", "OwnerId":
		return strings.TrimSuffix(f.Name, "Id") + ":EntityId"
	}
	switch f.Type {
	case "reference":
		return "ForeignKey:EntityId"
	case "textarea":
		if f.Length > 255 {
			return "Data:StringPlusClob"
		}
	case "picklist":
		return "Data:DynamicEnum"
	case "multipicklist":
		return "Data:MultiEnum"
	case "boolean":
		return "Data:Boolean"
	case "int":
		return "Data:Integer"
	case "double":
		return "Data:Double"
	case "currency":
		return "Data:Currency"
	case "percent":
		return "Data:Percent"
	case "datetime":
		return "Data:DateTime"
	case "date":
		return "Data:DateOnly"
	case "time":
		return "Data:TimeOnly"
	}
	return "Data:Text"
}

// buildSchema derives the change event schema of obj.
func buildSchema(obj *schema.Object) (*entitySchema, error) {
	es := &entitySchema{entity: obj.Name, obj: obj, pos: map[string]int{}, member: map[string]memberRef{}}
	fields := []avroField{{Name: "ChangeEventHeader", Type: headerRecord(), Doc: "Data:ChangeEventHeader"}}
	defined := map[string]bool{} // nested record names already defined: later uses refer to them by name
	for _, f := range obj.Fields {
		if f.Name == "Id" || f.NotInChangeEvents || f.CompoundFieldName != "" {
			continue
		}
		pos := len(fields)
		if members := obj.CompoundComponents(f.Name); len(members) > 0 {
			slices.SortStableFunc(members, func(a, b schema.Field) int { return memberRank(a) - memberRank(b) })
			name, doc := f.Name, "Data:PersonName"
			if f.Type == "address" {
				name, doc = "Address", "Data:Address"
			}
			var typ any = namespace + "." + name
			if !defined[name] {
				defined[name] = true
				rec := avroRecord{Type: "record", Name: name}
				for _, m := range members {
					t := avroType(m.Type)
					if t == "" {
						return nil, fmt.Errorf("%s.%s: type %q cannot be in a change event", obj.Name, m.Name, m.Type)
					}
					rec.Fields = append(rec.Fields, nullable(memberName(m), t, fieldDoc(m)))
				}
				typ = rec
			}
			fields = append(fields, nullable(f.Name, typ, doc))
			for i, m := range members {
				ref := memberRef{pos: pos, idx: i}
				es.member[f.Name+"."+memberName(m)] = ref
				es.member[m.Name] = ref
			}
			es.body = append(es.body, bodyField{name: f.Name, members: members, record: namespace + "." + name, position: pos})
			es.pos[f.Name] = pos
			continue
		}
		t := avroType(f.Type)
		if t == "" {
			continue // e.g. a location or base64 field: not carried by change events
		}
		fields = append(fields, nullable(f.Name, t, fieldDoc(f)))
		es.body = append(es.body, bodyField{name: f.Name, typ: f.Type, position: pos})
		es.pos[f.Name] = pos
	}
	rec := avroRecord{Type: "record", Name: obj.Name + "ChangeEvent", Namespace: namespace, Fields: fields}
	raw, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("change event schema of %s: %w", obj.Name, err)
	}
	sum := sha256.Sum256(raw)
	es.id = base64.RawURLEncoding.EncodeToString(sum[:16])
	rec.UUID = es.id
	if raw, err = json.Marshal(rec); err != nil {
		return nil, fmt.Errorf("change event schema of %s: %w", obj.Name, err)
	}
	es.json = string(raw)
	// A fresh cache per schema: hamba's global cache is keyed by full name, and versions of one entity
	// share their full name.
	if es.avro, err = avro.ParseBytesWithCache(raw, "", &avro.SchemaCache{}); err != nil {
		return nil, fmt.Errorf("change event schema of %s is not valid Avro: %w", obj.Name, err)
	}
	return es, nil
}

func memberName(f schema.Field) string {
	if f.CompoundMember != "" {
		return f.CompoundMember
	}
	return f.Name
}

func memberRank(f schema.Field) int {
	if i := slices.Index(compoundOrder, memberName(f)); i >= 0 {
		return i
	}
	return len(compoundOrder)
}

var errUnknownEntity = errors.New("unknown entity")

// schemaCache builds each entity's schema once per registry snapshot and keeps every schema it ever
// built, by ID.
type schemaCache struct {
	reg     *schema.Registry
	mu      sync.Mutex
	byID    map[string]*entitySchema
	current map[string]*entitySchema // entity → schema of the newest snapshot seen
}

func newSchemaCache(reg *schema.Registry) *schemaCache {
	return &schemaCache{reg: reg, byID: map[string]*entitySchema{}, current: map[string]*entitySchema{}}
}

// forEntity returns the current schema of an entity.
func (c *schemaCache) forEntity(entity string) (*entitySchema, error) {
	obj, _, ok := c.reg.Get(entity)
	if !ok {
		return nil, fmt.Errorf("%w %q", errUnknownEntity, entity)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	// Snapshots are immutable and replaced on every change, so pointer identity says "unchanged" even
	// across a registry Reset, where version numbers start over.
	if cur := c.current[obj.Name]; cur != nil && cur.obj == obj {
		return cur, nil
	}
	es, err := buildSchema(obj)
	if err != nil {
		return nil, err
	}
	if known, ok := c.byID[es.id]; ok {
		known.obj = obj
		es = known
	}
	c.byID[es.id] = es
	c.current[obj.Name] = es
	return es, nil
}

// lookup returns a schema by ID, building the current schemas first so their IDs are known even before
// any topic was described. (An entity whose schema cannot be built has no ID to find.)
func (c *schemaCache) lookup(id string) (*entitySchema, bool) {
	for _, name := range c.reg.Names() {
		_, _ = c.forEntity(name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	es, ok := c.byID[id]
	return es, ok
}
