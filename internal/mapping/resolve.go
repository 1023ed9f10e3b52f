package mapping

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Config attribute paths used in problems.
const (
	PathSourceTable     = "source_table"
	PathDestTable       = "destination_table"
	PathPredefined      = "use_predefined_mappings"
	PathDeleteBehaviour = "delete_behaviour"
)

// ColumnPath is the attribute path of an override's source.
func ColumnPath(dest string) string { return "columns." + dest + ".source" }

// ExcludePath is the attribute path of the i-th exclusion.
func ExcludePath(i int) string { return fmt.Sprintf("exclude_columns[%d]", i) }

// PrimaryKey returns the primary-key column of a destination table: <table>id.
func PrimaryKey(destTable string) string { return strings.ToLower(destTable) + "id" }

// resolve computes the effective column mappings of one table config, sorted by destination with the key
// first. syncedSources are the source objects of every table mapping of the connector, for predefined pairs
// that need another table synced. It needs no schema: the problems it reports are about the config itself.
func resolve(cfg TableConfig, syncedSources []string) ([]Column, Problems) {
	if strings.TrimSpace(cfg.SourceTable) == "" {
		return nil, Problems{{Severity: Error, Code: CodeBadConfig, Path: PathSourceTable, Message: "source_table must name a Salesforce object, for example Contact"}}
	}
	r := resolution{cfg: cfg, dest: cfg.Destination(), seen: map[string]string{}}
	r.key = PrimaryKey(r.dest)
	switch cfg.DeleteBehaviour {
	case "", DeleteRow, DeleteIgnore, DeleteDeactivate:
	default:
		r.problem(Error, CodeBadConfig, "", PathDeleteBehaviour,
			"delete_behaviour %q is not one of %q, %q, %q", cfg.DeleteBehaviour, DeleteRow, DeleteIgnore, DeleteDeactivate)
	}
	r.byDest = map[string]Column{r.key: {Source: "Id", Destination: r.key, Predefined: true, Key: true}}
	if cfg.UsePredefined {
		r.predefined(syncedSources)
	}
	r.overrides()
	r.exclusions()
	return r.columns(), r.probs
}

// resolution is resolve's work in progress: the effective columns by destination, the overrides seen
// (normalised destination → as declared) and the problems found.
type resolution struct {
	cfg       TableConfig
	dest, key string
	byDest    map[string]Column
	seen      map[string]string
	probs     Problems
}

func (r *resolution) problem(sev Severity, code, column, path, format string, args ...any) {
	r.probs = append(r.probs, Problem{Severity: sev, Code: code, Column: column, Path: path, Message: fmt.Sprintf(format, args...)})
}

// predefined adds the predefined pairs of the table whose other table, when they need one, is synced.
func (r *resolution) predefined(syncedSources []string) {
	for _, p := range Predefined(r.cfg.SourceTable) {
		if p.Destination == r.key || p.RequiresSynced != "" && !containsFold(syncedSources, p.RequiresSynced) {
			continue
		}
		r.byDest[p.Destination] = Column{Source: p.Source, Destination: p.Destination, Predefined: true}
	}
}

// overrides adds or replaces the columns of the config's columns, in a stable order so problems come out
// the same way every time.
func (r *resolution) overrides() {
	for _, d := range slices.Sorted(maps.Keys(r.cfg.Columns)) {
		o := r.cfg.Columns[d]
		norm := strings.ToLower(strings.TrimSpace(d))
		switch {
		case norm == "":
			r.problem(Error, CodeBadConfig, "", "columns", "a column override has an empty destination column name")
		case strings.TrimSpace(o.Source) == "":
			r.problem(Error, CodeBadConfig, norm, ColumnPath(d), "column %s: source must name a Salesforce field", d)
		case norm == r.key:
			r.problem(Error, CodeBadConfig, norm, ColumnPath(d), "column %s is the primary key of %s; it is always mapped from Id and cannot be overridden", d, r.dest)
		case r.seen[norm] != "":
			other := r.seen[norm]
			r.problem(Error, CodeTwoSources, norm, ColumnPath(d), "destination column %s has two sources: %s (from %q) and %s (from %q)",
				norm, r.cfg.Columns[other].Source, other, o.Source, d)
		default:
			r.seen[norm] = d
			r.byDest[norm] = Column{Source: strings.TrimSpace(o.Source), Destination: norm, Truncate: o.Truncate}
		}
	}
}

// exclusions removes the excluded columns.
func (r *resolution) exclusions() {
	for i, ex := range r.cfg.ExcludeColumns {
		norm := strings.ToLower(strings.TrimSpace(ex))
		switch {
		case norm == r.key:
			r.problem(Error, CodeBadExclusion, norm, ExcludePath(i), "%s is the primary key of %s and cannot be excluded", norm, r.dest)
		case r.seen[norm] != "":
			r.problem(Error, CodeBadExclusion, norm, ExcludePath(i), "%s is both overridden in columns and excluded; remove one of the two", norm)
		default:
			if _, ok := r.byDest[norm]; !ok {
				r.problem(Warning, CodeBadExclusion, norm, ExcludePath(i), "%s is not in the effective mapping of %s, so excluding it changes nothing", norm, r.cfg.SourceTable)
			}
			delete(r.byDest, norm)
		}
	}
}

// columns returns the effective columns, the key first, then by destination. Two destinations fed by one
// source are fine; two sources into one destination cannot happen: the columns are keyed by destination.
func (r *resolution) columns() []Column {
	cols := slices.Collect(maps.Values(r.byDest))
	sort.Slice(cols, func(i, j int) bool {
		if cols[i].Key != cols[j].Key {
			return cols[i].Key
		}
		return cols[i].Destination < cols[j].Destination
	})
	return cols
}

// sides are the two sides' schemas for validate. A nil side means "unknown": static validation uses the
// catalog (StandardSource/StandardDestination) and skips custom fields it cannot know.
type sides struct {
	Source *SourceSchema
	Dest   *DestSchema
	// Static marks validation without live schemas: names the catalog cannot know (custom fields and
	// columns) are not reported as unknown.
	Static bool
	// SyncedTables maps the source object of every table mapping of the connector to its destination table,
	// for checking lookup targets.
	SyncedTables map[string]string
}

// staticSchemas returns the catalog's schemas for a table config.
func staticSchemas(cfg TableConfig, synced map[string]string) sides {
	return sides{Source: StandardSource(cfg.SourceTable), Dest: StandardDestination(cfg.Destination()), Static: true, SyncedTables: synced}
}

// validate checks effective columns (from resolve) against both schemas, filling in their types, and
// returns every problem found. cfg gives the paths problems point at.
func validate(cfg TableConfig, cols []Column, s sides) Problems {
	var probs Problems
	if s.Source == nil && !s.Static {
		probs = append(probs, Problem{Severity: Error, Code: CodeUnknownTable, Path: PathSourceTable, Message: fmt.Sprintf("Salesforce object %s does not exist or is not readable", cfg.SourceTable)})
	}
	if s.Dest == nil && !s.Static {
		probs = append(probs, Problem{Severity: Error, Code: CodeUnknownTable, Path: PathDestTable, Message: fmt.Sprintf("Dataverse table %s does not exist or is not readable", cfg.Destination())})
	}
	mapped := map[string]bool{}
	for i := range cols {
		mapped[cols[i].Destination] = true
		probs = append(probs, validateColumn(cfg, &cols[i], s)...)
	}
	if s.Dest != nil {
		probs = append(probs, requiredUnmapped(cfg, s.Dest, mapped)...)
	}
	return probs
}

// validateColumn checks one effective column against the schemas it has, filling in its types.
//
// Live, a name the schema lacks is an error. Statically only the catalog of standard columns is at hand,
// which cannot know every column of every org (field-level settings, custom fields, newer standard columns):
// a name it lacks is a warning, and the live check (plan with a reachable control plane, and activation's
// preflight) decides.
func validateColumn(cfg TableConfig, c *Column, s sides) Problems {
	var probs Problems
	path := pathOf(cfg, *c)
	var sField SourceField
	var dCol DestColumn
	haveSrc, haveDst := false, false
	if src := s.Source; src != nil {
		sField, haveSrc = src.Field(c.Source)
		switch {
		case haveSrc || s.Static && isCustomSource(c.Source):
		case s.Static:
			probs = append(probs, Problem{Severity: Warning, Code: CodeUnknownSource, Column: c.Destination, Path: path,
				Message: fmt.Sprintf("%s is not a standard %s field crmsync knows (column %s)%s; it is checked against the live describe before activation",
					c.Source, src.Object, c.Destination, didYouMean(c.Source, src.fieldNames()))})
		default:
			probs = append(probs, Problem{Severity: Error, Code: CodeUnknownSource, Column: c.Destination, Path: path,
				Message: fmt.Sprintf("Salesforce field %s.%s does not exist (column %s)%s", src.Object, c.Source, c.Destination, didYouMean(c.Source, src.fieldNames()))})
		}
	}
	if dst := s.Dest; dst != nil {
		dCol, haveDst = dst.Column(c.Destination)
		switch {
		case haveDst || s.Static && isCustomDestination(c.Destination):
		case s.Static:
			probs = append(probs, Problem{Severity: Warning, Code: CodeUnknownDestination, Column: c.Destination, Path: path,
				Message: fmt.Sprintf("%s is not a standard %s column crmsync knows%s; it is checked against the live metadata before activation",
					c.Destination, dst.Table, didYouMean(c.Destination, dst.columnNames()))})
		default:
			probs = append(probs, Problem{Severity: Error, Code: CodeUnknownDestination, Column: c.Destination, Path: path,
				Message: fmt.Sprintf("Dataverse column %s.%s does not exist%s", dst.Table, c.Destination, didYouMean(c.Destination, dst.columnNames()))})
		}
	}
	if haveSrc {
		c.Source, c.SourceType = sField.Name, sField.Type
	}
	if haveDst {
		c.DestinationType = dCol.AttributeType
	}
	if !haveSrc || !haveDst {
		return probs
	}
	return append(probs, compatibility(*c, sField, dCol, s.SyncedTables, path)...)
}

// compatibility checks a column both of whose sides are known: the destination can be written, takes the
// source's type, points a lookup at a synced table, and holds the source's longest text.
func compatibility(c Column, sField SourceField, dCol DestColumn, synced map[string]string, path string) Problems {
	fail := func(code, format string, args ...any) Problems {
		return Problems{{Severity: Error, Code: code, Column: c.Destination, Path: path, Message: fmt.Sprintf(format, args...)}}
	}
	if why, never := neverDestination[dCol.AttributeType]; never {
		return fail(CodeNotWritable, "column %s is %s: %s", c.Destination, dCol.AttributeType, why)
	}
	if !c.Key && !dCol.ValidForCreate && !dCol.ValidForUpdate {
		return fail(CodeNotWritable, "column %s is read-only in Dataverse (not valid for create or update)", c.Destination)
	}
	if !Compatible(sField.Type, dCol.AttributeType) {
		return fail(CodeIncompatibleTypes, "%s (%s) cannot be written to %s (%s); %s accepts %s", sField.Name, sField.Type, c.Destination,
			dCol.AttributeType, dCol.AttributeType, strings.Join(AcceptedSourceTypes(dCol.AttributeType), ", "))
	}
	var probs Problems
	if isLookupDest(dCol.AttributeType) && sField.Type == "reference" {
		if p := checkLookupTarget(c, sField, dCol, synced, path); p != nil {
			probs = append(probs, *p)
		}
	}
	if isTextDest(dCol.AttributeType) && dCol.MaxLength > 0 && textLength(sField) > dCol.MaxLength && !c.Truncate {
		probs = append(probs, Problem{Severity: Warning, Code: CodeSourceLonger, Column: c.Destination, Path: path,
			Message: fmt.Sprintf("%s holds up to %d characters but %s takes %d: longer values will be dead-lettered; set truncate = true on the column to cut them instead",
				sField.Name, textLength(sField), c.Destination, dCol.MaxLength)})
	}
	return probs
}

// requiredUnmapped reports the destination's required columns no effective column writes.
func requiredUnmapped(cfg TableConfig, dst *DestSchema, mapped map[string]bool) Problems {
	var probs Problems
	key := PrimaryKey(cfg.Destination())
	for _, dc := range dst.Columns {
		required := dc.RequiredLevel == RequiredApplication || dc.RequiredLevel == RequiredSystem
		if !required || !dc.ValidForCreate || dc.LogicalName == key || dc.LogicalName == dst.PrimaryID || dc.AttributeType == "Owner" || mapped[dc.LogicalName] {
			continue
		}
		probs = append(probs, Problem{Severity: Error, Code: CodeRequiredUnmapped, Column: dc.LogicalName, Path: requiredPath(cfg, dc.LogicalName),
			Message: fmt.Sprintf("required column %s.%s is not mapped; map it in columns or stop excluding it", dst.Table, dc.LogicalName)})
	}
	return probs
}

func checkLookupTarget(c Column, sField SourceField, dCol DestColumn, synced map[string]string, path string) *Problem {
	for _, obj := range sField.ReferenceTo {
		for so, dt := range synced {
			if strings.EqualFold(so, obj) && slices.Contains(dCol.Targets, dt) {
				return nil
			}
		}
	}
	return &Problem{Severity: Error, Code: CodeLookupTargetNotSynced, Column: c.Destination, Path: path,
		Message: fmt.Sprintf("%s references %s, which no table mapping of this connector syncs into one of %s's targets (%s)",
			sField.Name, strings.Join(sField.ReferenceTo, ", "), c.Destination, strings.Join(dCol.Targets, ", "))}
}

func pathOf(cfg TableConfig, c Column) string {
	for d := range cfg.Columns {
		if strings.EqualFold(strings.TrimSpace(d), c.Destination) {
			return ColumnPath(d)
		}
	}
	if c.Key {
		return PathSourceTable
	}
	return PathPredefined
}

func requiredPath(cfg TableConfig, col string) string {
	for i, ex := range cfg.ExcludeColumns {
		if strings.EqualFold(strings.TrimSpace(ex), col) {
			return ExcludePath(i)
		}
	}
	return "columns"
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(x, s) })
}
