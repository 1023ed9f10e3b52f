package mapping

import "slices"

// compatible is the data-type table (docs/architecture.md, "Mapping rules"): destination attribute type → the
// Salesforce field types it accepts.
var compatible = map[string][]string{
	"Boolean":          {"boolean"},
	"Integer":          {"int", "double", "currency", "percent"},
	"BigInt":           {"int", "double", "currency", "percent"},
	"Decimal":          {"double", "currency", "percent", "int"},
	"Double":           {"double", "currency", "percent", "int"},
	"Money":            {"double", "currency", "percent", "int"},
	"String":           {"string", "textarea", "email", "phone", "url", "picklist", "multipicklist", "combobox", "date", "datetime"},
	"Memo":             {"string", "textarea", "email", "phone", "url", "picklist", "multipicklist", "combobox", "date", "datetime"},
	"Uniqueidentifier": {"id", "reference"},
	"Lookup":           {"id", "reference"},
	"Owner":            {"id", "reference"},
	"Customer":         {"id", "reference"},
	"DateTime":         {"date", "datetime"},
}

// neverDestination lists attribute types no mapping may write (section 4: Virtual, EntityName), plus types
// the Web API sets only through other messages.
var neverDestination = map[string]string{
	"Virtual":         "Virtual columns (images, files, multi-select choices) cannot be written by a mapping",
	"EntityName":      "EntityName columns are set implicitly by a lookup bind and cannot be mapped",
	"PartyList":       "PartyList columns exist only on activities",
	"CalendarRules":   "CalendarRules columns are written only through special messages",
	"ManagedProperty": "ManagedProperty columns are metadata, not data",
	"State":           "statecode is set by the delete behaviour \"deactivate\", not by a mapping",
	"Status":          "statuscode is set by the delete behaviour \"deactivate\", not by a mapping",
}

// Compatible reports whether a Salesforce field type may be written to a Dataverse attribute type.
func Compatible(sourceType, destType string) bool {
	return slices.Contains(compatible[destType], sourceType)
}

// AcceptedSourceTypes returns the Salesforce field types a destination attribute type accepts.
func AcceptedSourceTypes(destType string) []string { return slices.Clone(compatible[destType]) }

func isTextDest(t string) bool { return t == "String" || t == "Memo" }

func isLookupDest(t string) bool { return t == "Lookup" || t == "Customer" || t == "Owner" }

// textLength is the length a source value can reach when written as text: its declared length for text
// types, the formatted length for dates and datetimes.
func textLength(f SourceField) int {
	switch f.Type {
	case "date":
		return len("2006-01-02")
	case "datetime":
		return len("2006-01-02T15:04:05Z")
	}
	return f.Length
}
