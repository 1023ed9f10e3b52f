package plansummary

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// tableChange describes a crmsync_table_mapping change; nil when nothing changes.
func tableChange(rc resourceChange) *Table {
	ch := rc.Change
	act := actionOf(ch.Actions)
	if act == actNone || act == actRead {
		return nil
	}
	vals := ch.After
	if act == actDelete {
		vals = ch.Before
	}
	t := &Table{Address: rc.Address, Source: str(vals, "source_table"), Destination: str(vals, "destination_table"), Action: string(act)}
	if t.Destination == "" {
		t.Destination = str(ch.Before, "destination_table")
	}
	if t.Destination == "" && t.Source != "" {
		t.Destination = mapping.TableConfig{SourceTable: t.Source}.Destination()
	}
	t.config = tableConfig(ch.After)
	before, after := effective(ch.Before, truncates(ch.Before)), effective(ch.After, truncates(ch.After))
	switch act {
	case actCreate:
		t.Added = columnsOf(after, t.Source, t.Destination)
		t.resync = "initial load"
		t.Changes = append(t.Changes, Item{Kind: "table_added", Text: fmt.Sprintf("Salesforce %s is synced into Dataverse %s: once the connector is active, "+
			"an initial load copies its existing records, then Change Data Capture keeps them in sync.", t.Source, t.Destination)})
		return t
	case actDelete:
		t.Changes = append(t.Changes, Item{Kind: "table_removed", Text: fmt.Sprintf("Salesforce %s is no longer synced: its rows stay in Dataverse %s and are no longer "+
			"updated (nothing is deleted).", t.Source, t.Destination)})
		return t
	case actReplace:
		reasons := replacePaths(ch.ReplacePaths)
		t.Added = columnsOf(after, t.Source, t.Destination)
		t.resync = "initial load"
		t.Changes = append(t.Changes, Item{Kind: "replaced", Attribute: strings.Join(reasons, ","), Text: fmt.Sprintf("Mapping replaced (%s): the old table mapping is deleted "+
			"(rows already written stay in Dataverse %s, no longer updated) and the new one starts with a full initial load of Salesforce %s into Dataverse %s.",
			strings.Join(reasons, ", "), str(ch.Before, "destination_table"), t.Source, t.Destination)})
		return t
	}
	if marked(ch.AfterUnknown, "effective_columns") || after == nil {
		t.Changes = append(t.Changes, Item{Kind: "setting", Attribute: "effective_columns",
			Text: "The effective columns are known only after apply (the control plane was not reachable during the plan): see the plan's columns and exclude_columns."})
	} else {
		t.Added, t.Refed, t.Removed = diffColumns(before, after, t.Source, t.Destination)
	}
	if len(t.Added)+len(t.Refed) > 0 {
		t.resync = "re-sync"
	}
	if b, a := str(ch.Before, "delete_behaviour"), str(ch.After, "delete_behaviour"); b != a && a != "" {
		t.Changes = append(t.Changes, Item{Kind: "delete_behaviour", Attribute: "delete_behaviour", Before: b, After: a,
			Text: fmt.Sprintf("A record deleted in Salesforce now %s the Dataverse row (it %s it before).", deleteVerb(a), deleteVerb(b))})
	}
	if b, a := at(ch.Before, "repair_out_of_band_edits"), at(ch.After, "repair_out_of_band_edits"); !reflect.DeepEqual(b, a) {
		text := "Rows of Dataverse " + t.Destination + " edited by someone other than the agent are rewritten from Salesforce as soon as they are found " +
			"(they are reported either way): make such changes in Salesforce."
		if a != true {
			text = "Rows of Dataverse " + t.Destination + " edited by someone other than the agent are reported but no longer rewritten."
		}
		t.Changes = append(t.Changes, Item{Kind: "repair_out_of_band_edits", Attribute: "repair_out_of_band_edits", Before: scalar(b), After: scalar(a), Text: text})
	}
	if len(t.Added)+len(t.Refed)+len(t.Removed)+len(t.Changes) == 0 {
		return nil
	}
	return t
}

func deleteVerb(b string) string {
	switch b {
	case mapping.DeleteIgnore:
		return "leaves"
	case mapping.DeleteDeactivate:
		return "deactivates"
	}
	return "deletes"
}

// tableConfig converts a planned table mapping to the mapping rules' configuration (for the estimator).
func tableConfig(v any) mapping.TableConfig {
	tc := mapping.TableConfig{SourceTable: str(v, "source_table"), DestinationTable: str(v, "destination_table"), UsePredefined: true,
		DeleteBehaviour: str(v, "delete_behaviour")}
	if b, ok := at(v, "use_predefined_mappings").(bool); ok {
		tc.UsePredefined = b
	}
	if r, ok := at(v, "repair_out_of_band_edits").(bool); ok {
		tc.RepairOutOfBandEdits = r
	}
	for _, dest := range sortedKeys(at(v, "columns")) {
		if tc.Columns == nil {
			tc.Columns = map[string]mapping.ColumnOverride{}
		}
		tr, _ := at(v, "columns", dest, "truncate").(bool)
		tc.Columns[dest] = mapping.ColumnOverride{Source: str(v, "columns", dest, "source"), Truncate: tr}
	}
	if list, ok := at(v, "exclude_columns").([]any); ok {
		for _, x := range list {
			if s, ok := x.(string); ok {
				tc.ExcludeColumns = append(tc.ExcludeColumns, s)
			}
		}
		sort.Strings(tc.ExcludeColumns)
	}
	return tc
}

// effective reads the effective_columns map of a table mapping (destination → column), with the truncate flags
// of its overrides.
func effective(v any, truncate map[string]bool) map[string]Column {
	m, ok := at(v, "effective_columns").(map[string]any)
	if !ok {
		return nil
	}
	out := make(map[string]Column, len(m))
	for dest, c := range m {
		out[dest] = Column{Destination: dest, Source: str(c, "source"), SourceType: str(c, "source_type"), DestinationType: str(c, "destination_type"),
			Truncate: truncate[dest]}
	}
	return out
}

// truncates reads the truncate flags of a table mapping's column overrides.
func truncates(v any) map[string]bool {
	out := map[string]bool{}
	for _, dest := range sortedKeys(at(v, "columns")) {
		if b, ok := at(v, "columns", dest, "truncate").(bool); ok && b {
			out[dest] = true
		}
	}
	return out
}

func columnsOf(cols map[string]Column, source, dest string) []Column {
	out := make([]Column, 0, len(cols))
	for _, c := range cols {
		c.Note = lengthNote(source, dest, c)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out
}

// diffColumns compares the effective columns before and after: destinations added, fed differently (another
// source, or truncate turned on or off), removed.
func diffColumns(before, after map[string]Column, source, dest string) (added, refed, removed []Column) {
	for d, a := range after {
		b, ok := before[d]
		switch {
		case !ok:
			a.Note = lengthNote(source, dest, a)
			added = append(added, a)
		case !strings.EqualFold(a.Source, b.Source):
			a.BeforeSource, a.BeforeType = b.Source, b.SourceType
			a.Note = lengthNote(source, dest, a)
			if a.BeforeType != "" && a.SourceType != "" && a.BeforeType != a.SourceType {
				a.Note = strings.TrimSpace(fmt.Sprintf("The source type changes from %s to %s. %s", a.BeforeType, a.SourceType, a.Note))
			}
			refed = append(refed, a)
		case a.Truncate != b.Truncate:
			a.BeforeSource, a.BeforeType = b.Source, b.SourceType
			if a.Truncate {
				a.Note = "Truncate turned on. " + lengthNote(source, dest, a)
			} else {
				a.Note = "Truncate turned off. " + lengthNote(source, dest, a)
			}
			a.Note = strings.TrimSpace(a.Note)
			refed = append(refed, a)
		}
	}
	for d, b := range before {
		if _, ok := after[d]; !ok {
			b.Note = "Its data stays in Dataverse and is no longer updated."
			removed = append(removed, b)
		}
	}
	for _, l := range [][]Column{added, refed, removed} {
		sort.Slice(l, func(i, j int) bool { return l[i].Destination < l[j].Destination })
	}
	return added, refed, removed
}

// lengthNote says what happens to text longer than its destination column, from the built-in catalog of
// standard Salesforce fields and Dataverse columns (custom ones are checked by the plan's live validation).
func lengthNote(sourceTable, destTable string, c Column) string {
	src, dst := mapping.StandardSource(sourceTable), mapping.StandardDestination(destTable)
	if src == nil || dst == nil {
		return ""
	}
	f, ok1 := src.Field(c.Source)
	d, ok2 := dst.Column(c.Destination)
	if !ok1 || !ok2 || d.MaxLength <= 0 || f.Length <= d.MaxLength || (d.AttributeType != "String" && d.AttributeType != "Memo") {
		return ""
	}
	if c.Truncate {
		return fmt.Sprintf("%s holds up to %d characters, %s %d: longer values are cut (truncate = true).", f.Name, f.Length, d.LogicalName, d.MaxLength)
	}
	return fmt.Sprintf("%s holds up to %d characters, %s %d: longer values are dead-lettered unless truncate = true.", f.Name, f.Length, d.LogicalName, d.MaxLength)
}
