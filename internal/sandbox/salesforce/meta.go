package salesforce

import (
	"strings"
	"sync"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/schema"
)

// objMeta is a schema.Object with the lookups the store, SOQL and events need precomputed. Objects from
// the registry are immutable snapshots (AddField makes a new one), so metas are cached per snapshot.
type objMeta struct {
	obj     *schema.Object
	version int
	// index maps a lower-cased field name to its position in obj.Fields; exact maps the exact API name.
	index map[string]int
	exact map[string]int
	// Positions of the system fields every standard object has (-1 when absent).
	id, isDeleted, created, createdBy, modified, modifiedBy, modstamp, owner int
	// name is the read-only Full Name of Contact, computed from firstName and lastName (-1 elsewhere).
	name, firstName, lastName int
	// eventFields are the positions of the fields change events carry, in describe order: every field but
	// Id, those marked NotInChangeEvents and compound parents (their components are carried instead).
	eventFields []int
	// eventName is the name of a field in the header field lists: "Name.FirstName" for compound
	// components, the API name otherwise. Indexed by position.
	eventName []string
}

var metaCache sync.Map // *schema.Object → *objMeta

func metaOf(o *schema.Object, version int) *objMeta {
	if m, ok := metaCache.Load(o); ok {
		return m.(*objMeta)
	}
	m := &objMeta{obj: o, version: version, index: map[string]int{}, exact: map[string]int{}}
	for i, f := range o.Fields {
		m.index[strings.ToLower(f.Name)] = i
		m.exact[f.Name] = i
	}
	pos := func(name string) int {
		if i, ok := m.exact[name]; ok {
			return i
		}
		return -1
	}
	m.id, m.isDeleted, m.created, m.createdBy = pos("Id"), pos("IsDeleted"), pos("CreatedDate"), pos("CreatedById")
	m.modified, m.modifiedBy, m.modstamp, m.owner = pos("LastModifiedDate"), pos("LastModifiedById"), pos("SystemModstamp"), pos("OwnerId")
	m.name, m.firstName, m.lastName = -1, -1, -1
	if o.IsCompound("Name") {
		m.name, m.firstName, m.lastName = pos("Name"), pos("FirstName"), pos("LastName")
	}
	m.eventName = make([]string, len(o.Fields))
	for i, f := range o.Fields {
		m.eventName[i] = f.Name
		if f.CompoundFieldName != "" && f.CompoundMember != "" {
			m.eventName[i] = f.CompoundFieldName + "." + f.CompoundMember
		}
		if f.Name == "Id" || f.NotInChangeEvents || o.IsCompound(f.Name) {
			continue
		}
		m.eventFields = append(m.eventFields, i)
	}
	actual, _ := metaCache.LoadOrStore(o, m)
	return actual.(*objMeta)
}

// field returns the position of a field by case-insensitive name.
func (m *objMeta) field(name string) (int, bool) {
	i, ok := m.index[strings.ToLower(name)]
	return i, ok
}

// record is one stored row. Records are immutable once stored: a write makes a new record with a new value
// slice and swaps the pointer, so a snapshot of pointers (query cursors, Bulk results) never changes.
type record struct {
	vals []any // by field position in the object's schema; positions beyond len(vals) are null
}

func (r *record) get(i int) any {
	if i >= 0 && i < len(r.vals) {
		return r.vals[i]
	}
	return nil
}

// id returns the record's Id: package schema puts Id first in every object.
func (r *record) id() string {
	s, _ := r.vals[0].(string)
	return s
}

func (r *record) deleted(m *objMeta) bool {
	b, _ := r.get(m.isDeleted).(bool)
	return b
}

// clone returns a copy whose value slice covers n fields.
func (r *record) clone(n int) *record {
	vals := make([]any, max(n, len(r.vals)))
	copy(vals, r.vals)
	return &record{vals: vals}
}
