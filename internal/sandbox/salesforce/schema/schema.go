// Package schema holds the emulated Salesforce org's object metadata: the standard fields of Contact and
// Account a real org describes (docs/sandbox-salesforce.md), system fields included, in describe order. It is the one source for the REST describe, SOQL field checks, Bulk CSV headers and the CDC Avro
// schemas, so a custom field added through the admin API shows up in all of them.
//
// Record values held by the sandbox use these Go types per field type: string for id, reference and every
// text-like type; bool for boolean; int64 for int; float64 for double, currency and percent; time.Time (UTC)
// for date (midnight) and datetime; nil for null.
package schema

import (
	"fmt"
	"regexp"
	"slices"
	"sync"
)

// PicklistValue is one entry of a picklist field's picklistValues.
type PicklistValue struct {
	Active       bool    `json:"active"`
	DefaultValue bool    `json:"defaultValue"`
	Label        string  `json:"label"`
	ValidFor     *string `json:"validFor"`
	Value        string  `json:"value"`
}

// Field is one field's metadata. JSON keys follow the REST describe.
type Field struct {
	Name              string          `json:"name"`
	Label             string          `json:"label"`
	Type              string          `json:"type"` // lower-case describe type: id, reference, string, ...
	Length            int             `json:"length"`
	Digits            int             `json:"digits"`
	Precision         int             `json:"precision"`
	Scale             int             `json:"scale"`
	Nillable          bool            `json:"nillable"`
	Createable        bool            `json:"createable"`
	Updateable        bool            `json:"updateable"`
	Calculated        bool            `json:"calculated"`
	Custom            bool            `json:"custom"`
	NameField         bool            `json:"nameField"`
	ExternalID        bool            `json:"externalId"`
	Unique            bool            `json:"unique"`
	IDLookup          bool            `json:"idLookup"`
	DefaultedOnCreate bool            `json:"defaultedOnCreate"`
	ReferenceTo       []string        `json:"referenceTo"`
	RelationshipName  string          `json:"relationshipName,omitempty"`
	CompoundFieldName string          `json:"compoundFieldName,omitempty"`
	PicklistValues    []PicklistValue `json:"picklistValues"`
	// CompoundMember is the member name inside the compound field's change-event record, e.g. "Street" for
	// MailingStreet inside MailingAddress, "FirstName" for FirstName inside Name. Empty when not a component.
	CompoundMember string `json:"-"`
	// NotInChangeEvents marks fields that CDC never carries (IsDeleted, SystemModstamp, formula fields).
	NotInChangeEvents bool `json:"-"`
}

// SoapType is the describe soapType of the field's type.
func (f Field) SoapType() string { return SoapType(f.Type) }

// ByteLength is the describe byteLength: 3 × length for text, 18 for ids, 0 otherwise.
func (f Field) ByteLength() int {
	switch f.Type {
	case "id", "reference":
		return 18
	}
	if IsText(f.Type) {
		return 3 * f.Length
	}
	return 0
}

// SoapType maps a describe type to its soapType.
func SoapType(typ string) string {
	switch typ {
	case "id", "reference":
		return "tns:ID"
	case "boolean":
		return "xsd:boolean"
	case "int":
		return "xsd:int"
	case "long":
		return "xsd:long"
	case "double", "currency", "percent":
		return "xsd:double"
	case "date":
		return "xsd:date"
	case "datetime":
		return "xsd:dateTime"
	case "time":
		return "xsd:time"
	case "base64":
		return "xsd:base64Binary"
	case "address":
		return "urn:address"
	case "location":
		return "urn:location"
	case "anyType":
		return "xsd:anyType"
	default:
		return "xsd:string"
	}
}

// IsText reports whether values of the describe type are plain strings with a length.
func IsText(typ string) bool {
	switch typ {
	case "string", "textarea", "picklist", "multipicklist", "combobox", "email", "phone", "url", "encryptedstring":
		return true
	}
	return false
}

// Object is one sObject's metadata. Fields are in describe order.
type Object struct {
	Name        string
	Label       string
	LabelPlural string
	KeyPrefix   string
	Fields      []Field
}

// Field returns the named field, matching case-insensitively as SOQL does.
func (o *Object) Field(name string) (Field, bool) {
	for _, f := range o.Fields {
		if equalFold(f.Name, name) {
			return f, true
		}
	}
	return Field{}, false
}

// IsCompound reports whether the named field is a compound field (an address, or Contact's Name) whose
// value is made of component fields.
func (o *Object) IsCompound(name string) bool { return len(o.CompoundComponents(name)) > 0 }

// CompoundComponents returns the component fields of a compound field, in describe order.
func (o *Object) CompoundComponents(compound string) []Field {
	var out []Field
	for _, f := range o.Fields {
		if f.CompoundFieldName == compound {
			out = append(out, f)
		}
	}
	return out
}

// Registry holds the org's objects. Objects returned by Get are snapshots: callers may keep them, and a
// later AddField produces a new snapshot with a higher Version.
type Registry struct {
	mu      sync.RWMutex
	objects map[string]*Object
	version map[string]int
}

// NewRegistry returns a registry holding the standard Contact and Account objects.
func NewRegistry() *Registry {
	r := &Registry{objects: map[string]*Object{}, version: map[string]int{}}
	for _, o := range []*Object{Contact(), Account()} {
		r.objects[o.Name] = o
		r.version[o.Name] = 1
	}
	return r
}

// Get returns the object by API name (case-insensitive) and its schema version.
func (r *Registry) Get(name string) (*Object, int, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for n, o := range r.objects {
		if equalFold(n, name) {
			return o, r.version[n], true
		}
	}
	return nil, 0, false
}

// Names returns the object names in a stable order.
func (r *Registry) Names() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make([]string, 0, len(r.objects))
	for n := range r.objects {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

var customName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,36}__c$`)

// AddField adds a custom field (name ending in __c) to an object, as an admin does in Setup. Supported
// types are the text types, boolean, int, double, currency, percent, date and datetime.
func (r *Registry) AddField(object string, f Field) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var key string
	for n := range r.objects {
		if equalFold(n, object) {
			key = n
		}
	}
	if key == "" {
		return fmt.Errorf("sObject type '%s' is not supported", object)
	}
	if !customName.MatchString(f.Name) {
		return fmt.Errorf("custom field name %q must be letters, digits and underscores ending in __c", f.Name)
	}
	old := r.objects[key]
	if _, exists := old.Field(f.Name); exists {
		return fmt.Errorf("field %s already exists on %s", f.Name, key)
	}
	switch {
	case IsText(f.Type):
		if f.Length <= 0 {
			f.Length = 255
		}
	case f.Type == "boolean", f.Type == "date", f.Type == "datetime":
	case f.Type == "int":
		if f.Digits == 0 {
			f.Digits = 9
		}
	case f.Type == "double", f.Type == "currency", f.Type == "percent":
		if f.Precision == 0 {
			f.Precision, f.Scale = 18, 2
		}
	default:
		return fmt.Errorf("custom field type %q is not supported by the sandbox", f.Type)
	}
	if f.Label == "" {
		f.Label = f.Name[:len(f.Name)-3]
	}
	f.Custom, f.Createable, f.Updateable = true, true, true
	f.Nillable = f.Type != "boolean"
	if f.ReferenceTo == nil {
		f.ReferenceTo = []string{}
	}
	if f.PicklistValues == nil {
		f.PicklistValues = []PicklistValue{}
	}
	next := *old
	next.Fields = append(slices.Clone(old.Fields), f)
	r.objects[key] = &next
	r.version[key]++
	return nil
}

// Reset restores the standard objects.
func (r *Registry) Reset() {
	fresh := NewRegistry()
	r.mu.Lock()
	r.objects, r.version = fresh.objects, fresh.version
	r.mu.Unlock()
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if ca >= 'A' && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if cb >= 'A' && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}
