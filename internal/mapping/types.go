package mapping

import (
	"fmt"
	"strings"
)

// SourceField is a Salesforce field as the describe call reports it.
type SourceField struct {
	Name              string   `json:"name"`
	Type              string   `json:"type"` // describe type: id, reference, string, textarea, email, date, ...
	Length            int      `json:"length,omitempty"`
	Nillable          bool     `json:"nillable,omitempty"`
	ReferenceTo       []string `json:"reference_to,omitempty"`
	CompoundFieldName string   `json:"compound_field_name,omitempty"`
}

// SourceSchema is a Salesforce object's fields.
type SourceSchema struct {
	Object string        `json:"object"`
	Fields []SourceField `json:"fields"`
}

// Field returns the named field (case-insensitive, as Salesforce matches field names).
func (s *SourceSchema) Field(name string) (SourceField, bool) {
	for _, f := range s.Fields {
		if strings.EqualFold(f.Name, name) {
			return f, true
		}
	}
	return SourceField{}, false
}

// Dataverse RequiredLevel values.
const (
	RequiredNone        = "None"
	RequiredSystem      = "SystemRequired"
	RequiredApplication = "ApplicationRequired"
	RequiredRecommended = "Recommended"
)

// DestColumn is a Dataverse column as its attribute metadata reports it.
type DestColumn struct {
	LogicalName    string   `json:"logical_name"`
	AttributeType  string   `json:"attribute_type"` // String, Memo, Lookup, Customer, Owner, DateTime, ...
	MaxLength      int      `json:"max_length,omitempty"`
	RequiredLevel  string   `json:"required_level,omitempty"`
	ValidForCreate bool     `json:"valid_for_create"`
	ValidForUpdate bool     `json:"valid_for_update"`
	Targets        []string `json:"targets,omitempty"` // lookup target tables
	DateOnly       bool     `json:"date_only,omitempty"`
	// MinValue and MaxValue bound Integer and BigInt columns when known (both zero: unbounded).
	MinValue int64 `json:"min_value,omitempty"`
	MaxValue int64 `json:"max_value,omitempty"`
}

// DestSchema is a Dataverse table's columns.
type DestSchema struct {
	Table         string       `json:"table"`
	EntitySetName string       `json:"entity_set_name"`
	PrimaryID     string       `json:"primary_id"`
	Columns       []DestColumn `json:"columns"`
}

// Column returns the named column (logical names are lower-case; matching ignores case).
func (d *DestSchema) Column(name string) (DestColumn, bool) {
	for _, c := range d.Columns {
		if strings.EqualFold(c.LogicalName, name) {
			return c, true
		}
	}
	return DestColumn{}, false
}

// Delete behaviours of a table mapping: what a Salesforce delete does in Dataverse.
const (
	DeleteRow        = "delete"     // delete the row (default, as the original connector does)
	DeleteIgnore     = "ignore"     // leave the row as it is
	DeleteDeactivate = "deactivate" // set statecode 1 (Inactive) and statuscode 2
)

// TableConfig is one declared table mapping, as crmsync_table_mapping and the agent config carry it.
type TableConfig struct {
	SourceTable string `json:"source_table" crmsync:"required"`
	// DestinationTable defaults to the predefined pairing (Contact → contact, Account → account), else the
	// lower-cased source name.
	DestinationTable string `json:"destination_table,omitempty"`
	// UsePredefined starts from the predefined mappings of the table. Callers default it to true.
	UsePredefined bool `json:"use_predefined_mappings"`
	// Columns are overrides keyed by destination column: they add a column or replace a predefined source.
	Columns map[string]ColumnOverride `json:"columns,omitempty"`
	// ExcludeColumns removes destination columns from the effective mapping.
	ExcludeColumns []string `json:"exclude_columns,omitempty"`
	// DeleteBehaviour is one of DeleteRow (default), DeleteIgnore, DeleteDeactivate.
	DeleteBehaviour string `json:"delete_behaviour,omitempty"`
	// RepairOutOfBandEdits asks the agent to rewrite, from Salesforce, synced rows that someone other than
	// the agent changed in Dataverse (they are reported either way).
	RepairOutOfBandEdits bool `json:"repair_out_of_band_edits,omitempty"`
}

// ColumnOverride maps a destination column from a source field.
type ColumnOverride struct {
	Source string `json:"source" crmsync:"required"`
	// Truncate cuts text longer than the destination's MaxLength instead of rejecting the record.
	Truncate bool `json:"truncate,omitempty"`
}

// Destination returns the effective destination table name.
func (c TableConfig) Destination() string {
	if c.DestinationTable != "" {
		return strings.ToLower(c.DestinationTable)
	}
	if p, ok := predefinedTables[canonicalSource(c.SourceTable)]; ok {
		return p
	}
	return strings.ToLower(c.SourceTable)
}

// Column is one effective column mapping.
type Column struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	// SourceType and DestinationType are filled in when a schema knows them.
	SourceType      string `json:"source_type,omitempty"`
	DestinationType string `json:"destination_type,omitempty"`
	Predefined      bool   `json:"predefined"`
	Truncate        bool   `json:"truncate,omitempty"`
	// Key marks the primary-key column (Id → <table>id).
	Key bool `json:"key,omitempty"`
}

// Severity of a Problem.
type Severity string

// Severities.
const (
	Error   Severity = "error"
	Warning Severity = "warning"
)

// Problem codes, stable for API clients and tests.
const (
	CodeUnknownTable          = "unknown_table"
	CodeUnknownSource         = "unknown_source_column"
	CodeUnknownDestination    = "unknown_destination_column"
	CodeIncompatibleTypes     = "incompatible_types"
	CodeTwoSources            = "two_sources_for_destination"
	CodeRequiredUnmapped      = "required_column_unmapped"
	CodeNotWritable           = "destination_not_writable"
	CodeSourceLonger          = "source_longer_than_destination"
	CodeLookupTargetNotSynced = "lookup_target_not_synced"
	CodeBadExclusion          = "bad_exclusion"
	CodeBadConfig             = "invalid_config"
	CodeNotCheckedStatically  = "not_checked_statically"
)

// Problem is one finding of Check or Compile.
type Problem struct {
	Severity Severity `json:"severity"`
	Code     string   `json:"code"`
	// Column is the destination column concerned ("" for the table as a whole).
	Column string `json:"column,omitempty"`
	// Path is the configuration attribute at fault, in Terraform's terms: "source_table",
	// "columns.new_region.source", "exclude_columns[1]".
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (p Problem) String() string { return fmt.Sprintf("%s: %s (%s)", p.Severity, p.Message, p.Path) }

// Problems is a list of findings.
type Problems []Problem

// Errors returns only the errors.
func (ps Problems) Errors() Problems {
	var out Problems
	for _, p := range ps {
		if p.Severity == Error {
			out = append(out, p)
		}
	}
	return out
}

// HasErrors reports whether any problem is an error.
func (ps Problems) HasErrors() bool { return len(ps.Errors()) > 0 }
