package provider

import (
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// This file turns the pure mapping rules into plan diagnostics: static validation (no network), problem
// paths as Terraform attribute paths, and the consequences of a change (what gets re-synced, what stops
// being updated).

// staticProblems runs every rule that needs nothing but the configuration: mapping.Check against the built-in
// catalog of standard columns. Custom fields and columns (Region__c, new_region) are left to the live rules.
//
// Other table mappings of the connector are not visible here, so tables a predefined lookup needs (Account
// for Contact's parentcustomerid) are assumed synced; the live rules and the activation preflight check the
// connector's real mappings.
func staticProblems(cfg mapping.TableConfig) mapping.Problems {
	_, probs := mapping.Check(cfg, assumedSynced(cfg), nil)
	return probs
}

// assumedSynced is the table itself plus the tables its predefined lookups need.
func assumedSynced(cfg mapping.TableConfig) mapping.Siblings {
	synced := mapping.SiblingsOf(cfg)
	for _, p := range mapping.Predefined(cfg.SourceTable) {
		if p.RequiresSynced != "" {
			synced[p.RequiresSynced] = mapping.TableConfig{SourceTable: p.RequiresSynced}.Destination()
		}
	}
	return synced
}

// problemKey identifies a problem across the static and live runs, so a live run reports only what the static
// run could not see.
func problemKey(p mapping.Problem) string { return p.Code + "|" + p.Path + "|" + p.Column }

// addProblems reports problems as diagnostics at their attribute paths, skipping those in skip. Errors stay
// errors, warnings stay warnings, except that a lookup whose target table is not synced is a warning: the
// mapping of that table may be created in the same apply, and the activation preflight fails if it is not.
//
// Each column-level diagnostic names its column in the summary, so Terraform's console view, which folds
// warnings of one summary into "(and N more similar warnings elsewhere)", never hides a mistake among the
// predefined mappings' known caveats; those caveats (a predefined column whose source is longer than its
// destination) are folded here into one note on use_predefined_mappings.
func addProblems(diags *diag.Diagnostics, probs mapping.Problems, cfg mapping.TableConfig, skip map[string]bool, live bool) {
	var caveats []string
	for _, p := range probs {
		if skip[problemKey(p)] || p.Code == mapping.CodeNotCheckedStatically {
			continue
		}
		if p.Code == mapping.CodeSourceLonger && p.Path == mapping.PathPredefined && p.Severity != mapping.Error {
			what, _, _ := strings.Cut(p.Message, ": longer values") // the advice is said once, below
			caveats = append(caveats, what)
			continue
		}
		at := problemPath(p.Path, cfg)
		summary := problemSummary(p.Code)
		if live {
			summary += " (live check)"
		}
		if where := problemColumn(p, cfg); where != "" {
			summary += ": " + where
		}
		switch {
		case p.Code == mapping.CodeLookupTargetNotSynced:
			diags.AddAttributeWarning(at, summary, p.Message+". Add a crmsync_table_mapping for that table to this connector; activation fails until one exists.")
		case p.Severity == mapping.Error:
			diags.AddAttributeError(at, summary, p.Message)
		default:
			diags.AddAttributeWarning(at, summary, p.Message)
		}
	}
	if len(caveats) > 0 {
		summary := "Known length caveats of the predefined mappings"
		if live {
			summary += " (live check)"
		}
		sort.Strings(caveats)
		diags.AddAttributeWarning(path.Root(mapping.PathPredefined), summary, predefinedCaveatsMessage(cfg, caveats))
	}
}

// predefinedCaveatsMessage is the one note for the predefined columns whose source can hold more than the
// destination takes.
func predefinedCaveatsMessage(cfg mapping.TableConfig, caveats []string) string {
	return fmt.Sprintf("%d predefined column(s) of %s → %s can receive values longer than Dataverse takes; such records are "+
		"dead-lettered (crmsync dead-letters list) unless the column sets truncate = true in columns, or is excluded:\n  - %s\n"+
		"This note shows when the mapping is created or its columns change.",
		len(caveats), cfg.SourceTable, cfg.Destination(), strings.Join(caveats, "\n  - "))
}

// problemColumn names the column a problem concerns, as declared: "jobtitle ← Titel" for a column of columns,
// the destination alone otherwise; "" for a problem of the whole mapping.
func problemColumn(p mapping.Problem, cfg mapping.TableConfig) string {
	if p.Column == "" {
		return ""
	}
	for dest, o := range cfg.Columns {
		if strings.EqualFold(strings.TrimSpace(dest), p.Column) && o.Source != "" {
			return p.Column + " ← " + o.Source
		}
	}
	return p.Column
}

// errorsOnly keeps the error problems.
func errorsOnly(probs mapping.Problems) mapping.Problems {
	var out mapping.Problems
	for _, p := range probs {
		if p.Severity == mapping.Error {
			out = append(out, p)
		}
	}
	return out
}

// warningsOnly keeps the problems that are not errors.
func warningsOnly(probs mapping.Problems) mapping.Problems {
	var out mapping.Problems
	for _, p := range probs {
		if p.Severity != mapping.Error {
			out = append(out, p)
		}
	}
	return out
}

func problemSummary(code string) string {
	switch code {
	case mapping.CodeUnknownTable:
		return "Unknown table"
	case mapping.CodeUnknownSource:
		return "Unknown Salesforce field"
	case mapping.CodeUnknownDestination:
		return "Unknown Dataverse column"
	case mapping.CodeIncompatibleTypes:
		return "Incompatible column types"
	case mapping.CodeTwoSources:
		return "Two sources for one destination column"
	case mapping.CodeRequiredUnmapped:
		return "Required destination column not mapped"
	case mapping.CodeNotWritable:
		return "Destination column cannot be written"
	case mapping.CodeSourceLonger:
		return "Source longer than destination"
	case mapping.CodeLookupTargetNotSynced:
		return "Lookup target table not synced"
	case mapping.CodeBadExclusion:
		return "Invalid column exclusion"
	default:
		return "Invalid table mapping"
	}
}

// problemPath converts a mapping.Problem path ("source_table", "columns.new_region.source",
// "exclude_columns[1]", "use_predefined_mappings", "columns") to the Terraform attribute path.
func problemPath(p string, cfg mapping.TableConfig) path.Path {
	switch {
	case strings.HasPrefix(p, "columns.") && strings.HasSuffix(p, ".source"):
		// The path stops at the map key: Terraform highlights an index step inside an attribute's
		// expression, but not an attribute below it.
		key := strings.TrimSuffix(strings.TrimPrefix(p, "columns."), ".source")
		return path.Root("columns").AtMapKey(key)
	case strings.HasPrefix(p, "exclude_columns["):
		var i int
		if _, err := fmt.Sscanf(p, "exclude_columns[%d]", &i); err == nil && i >= 0 && i < len(cfg.ExcludeColumns) {
			return path.Root("exclude_columns").AtSetValue(types.StringValue(cfg.ExcludeColumns[i]))
		}
		return path.Root("exclude_columns")
	case p == "":
		return path.Empty()
	default:
		// source_table, destination_table, use_predefined_mappings, delete_behaviour, columns.
		return path.Root(p)
	}
}

// effectiveColumn is the comparable part of an effective column.
type effectiveColumn struct {
	Source, Destination string
	Truncate            bool
}

// columnChanges compares the effective columns before and after a change: added are new destinations and
// destinations fed differently (both make the agent re-sync the table), removed are destinations no longer
// written.
func columnChanges(before, after []effectiveColumn) (added, removed []effectiveColumn) {
	byDest := func(cols []effectiveColumn) map[string]effectiveColumn {
		m := make(map[string]effectiveColumn, len(cols))
		for _, c := range cols {
			m[c.Destination] = c
		}
		return m
	}
	b, a := byDest(before), byDest(after)
	for _, c := range after {
		old, ok := b[c.Destination]
		if !ok || !strings.EqualFold(old.Source, c.Source) || old.Truncate != c.Truncate {
			added = append(added, c)
		}
	}
	for _, c := range before {
		if _, ok := a[c.Destination]; !ok {
			removed = append(removed, c)
		}
	}
	sort.Slice(added, func(i, j int) bool { return added[i].Destination < added[j].Destination })
	sort.Slice(removed, func(i, j int) bool { return removed[i].Destination < removed[j].Destination })
	return added, removed
}

func effectiveOf(cols []mapping.Column) []effectiveColumn {
	out := make([]effectiveColumn, len(cols))
	for i, c := range cols {
		out[i] = effectiveColumn{Source: c.Source, Destination: c.Destination, Truncate: c.Truncate}
	}
	return out
}

// estimate describes the cost of (re-)syncing records of a table, for plan warnings.
type estimate struct {
	Records *int64 // nil when unknown
	Why     string // why unknown
	// Load is the control plane's estimate (with the connector's Dataverse application users); nil when it
	// gave none: then one application user is assumed.
	Load *api.LoadEstimate
}

func (e estimate) String() string {
	if e.Records == nil {
		if e.Why == "" {
			return "the record count is not known yet"
		}
		return "the record count could not be estimated: " + e.Why
	}
	n := *e.Records
	l := api.LoadCost(n, 1)
	if e.Load != nil && e.Load.Records == n {
		l = *e.Load
	}
	return fmt.Sprintf("about %d records: roughly %d Salesforce API calls and %d Dataverse requests; the writes take %s",
		n, l.SalesforceCalls, l.DataverseRequests, l.Pace())
}

func columnList(cols []effectiveColumn, withSource bool) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		if withSource && c.Source != "" {
			parts[i] = fmt.Sprintf("%s (from %s)", c.Destination, c.Source)
		} else {
			parts[i] = c.Destination
		}
	}
	return strings.Join(parts, ", ")
}

// whenActive qualifies a consequence by the connector's activation.
func whenActive(active *bool) string {
	switch {
	case active == nil:
		return "When the connector is active, "
	case *active:
		return "The connector is active: "
	default:
		return "The connector is not active; once it is, "
	}
}

func tableAddedMessage(cfg mapping.TableConfig, est estimate, active *bool) string {
	return fmt.Sprintf("%sthe existing records of Salesforce %s are copied into Dataverse %s by an initial load (%s), then kept in sync by Change Data Capture.",
		whenActive(active), cfg.SourceTable, cfg.Destination(), est)
}

func columnsAddedMessage(cfg mapping.TableConfig, added []effectiveColumn, est estimate, active *bool) string {
	return fmt.Sprintf("%scolumns %s of Dataverse %s are added or fed differently, so the existing records of Salesforce %s will be re-synced to fill them (%s).",
		whenActive(active), columnList(added, true), cfg.Destination(), cfg.SourceTable, est)
}

func columnsRemovedMessage(cfg mapping.TableConfig, removed []effectiveColumn) string {
	return fmt.Sprintf("Columns %s of Dataverse %s will no longer be synced: their data stays in Dataverse and is no longer updated from Salesforce %s.",
		columnList(removed, false), cfg.Destination(), cfg.SourceTable)
}

func repairOnMessage(source, dest string) string {
	return fmt.Sprintf("repair_out_of_band_edits = true: rows of Dataverse %s that the sync wrote and that someone else changes in a "+
		"synced column are rewritten with the values of Salesforce %s as soon as the agent finds them (every tuning.out_of_band_interval "+
		"of the connector). Make the change in Salesforce instead; the edits are reported in crmsync_sync_status either way.", dest, source)
}

func tableRemovedMessage(source, dest string) string {
	return fmt.Sprintf("Salesforce %s will no longer be synced: its rows stay in Dataverse %s and are no longer updated (nothing is deleted).", source, dest)
}
