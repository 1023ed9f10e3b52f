package provider

import (
	"context"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// tableConfig converts the configured (or planned) mapping to the rules' TableConfig. known is false when a
// value it needs is not known yet (the rules then wait for apply).
func (m *tableMappingModel) tableConfig(ctx context.Context) (tc mapping.TableConfig, known bool, diags diag.Diagnostics) {
	if m.SourceTable.IsUnknown() || m.DestinationTable.IsUnknown() || m.UsePredefined.IsUnknown() ||
		m.Columns.IsUnknown() || m.ExcludeColumns.IsUnknown() || m.DeleteBehaviour.IsUnknown() || m.RepairOutOfBand.IsUnknown() {
		return tc, false, nil
	}
	tc = mapping.TableConfig{
		SourceTable:          m.SourceTable.ValueString(),
		DestinationTable:     m.DestinationTable.ValueString(),
		UsePredefined:        m.UsePredefined.IsNull() || m.UsePredefined.ValueBool(),
		DeleteBehaviour:      m.DeleteBehaviour.ValueString(),
		RepairOutOfBandEdits: m.RepairOutOfBand.ValueBool(),
	}
	if !m.Columns.IsNull() {
		var cols map[string]types.Object
		diags.Append(m.Columns.ElementsAs(ctx, &cols, false)...)
		tc.Columns = make(map[string]mapping.ColumnOverride, len(cols))
		for dest, obj := range cols {
			if obj.IsUnknown() {
				return tc, false, diags
			}
			var o columnOverrideModel
			diags.Append(obj.As(ctx, &o, basetypes.ObjectAsOptions{})...)
			if o.Source.IsUnknown() || o.Truncate.IsUnknown() {
				return tc, false, diags
			}
			tc.Columns[dest] = mapping.ColumnOverride{Source: o.Source.ValueString(), Truncate: o.Truncate.ValueBool()}
		}
	}
	if !m.ExcludeColumns.IsNull() {
		var ex []types.String
		diags.Append(m.ExcludeColumns.ElementsAs(ctx, &ex, false)...)
		for _, e := range ex {
			if e.IsUnknown() {
				return tc, false, diags
			}
			tc.ExcludeColumns = append(tc.ExcludeColumns, e.ValueString())
		}
		sort.Strings(tc.ExcludeColumns) // a set: any stable order
	}
	return tc, !diags.HasError(), diags
}

// toSpec converts a planned model (every value known) to the API's mapping spec.
func (m *tableMappingModel) toSpec(ctx context.Context) (mapping.TableConfig, diag.Diagnostics) {
	tc, known, diags := m.tableConfig(ctx)
	if !known && !diags.HasError() {
		diags.AddError("Table mapping not fully known", "A value of the table mapping is still unknown at apply. This is a bug in the crmsync provider; please report it.")
	}
	return tc, diags
}

// fromAPI sets the model from a stored mapping. Empty and absent collections are the same to the API, so an
// empty map or set configured explicitly (prior) is kept as configured rather than turned into null.
func (m *tableMappingModel) fromAPI(ctx context.Context, tm *api.TableMapping, prior *tableMappingModel) diag.Diagnostics {
	var diags diag.Diagnostics
	m.ID = types.StringValue(tm.ID)
	m.ConnectorID = types.StringValue(tm.ConnectorID)
	m.SourceTable = types.StringValue(tm.SourceTable)
	m.DestinationTable = types.StringValue(tm.Destination())
	m.UsePredefined = types.BoolValue(tm.UsePredefined)
	behaviour := tm.DeleteBehaviour
	if behaviour == "" {
		behaviour = mapping.DeleteRow
	}
	m.DeleteBehaviour = types.StringValue(behaviour)
	m.RepairOutOfBand = types.BoolValue(tm.RepairOutOfBandEdits)

	if len(tm.Columns) == 0 && (prior == nil || prior.Columns.IsNull() || prior.Columns.IsUnknown() || len(prior.Columns.Elements()) > 0) {
		m.Columns = types.MapNull(columnOverrideType)
	} else {
		cols := make(map[string]attr.Value, len(tm.Columns))
		for dest, o := range tm.Columns {
			cols[dest] = types.ObjectValueMust(columnOverrideType.AttrTypes, map[string]attr.Value{
				"source":   types.StringValue(o.Source),
				"truncate": types.BoolValue(o.Truncate),
			})
		}
		v, d := types.MapValue(columnOverrideType, cols)
		diags.Append(d...)
		m.Columns = v
	}

	if len(tm.ExcludeColumns) == 0 && (prior == nil || prior.ExcludeColumns.IsNull() || prior.ExcludeColumns.IsUnknown() || len(prior.ExcludeColumns.Elements()) > 0) {
		m.ExcludeColumns = types.SetNull(types.StringType)
	} else {
		ex := append([]string{}, tm.ExcludeColumns...) // a nil slice would make a null set
		v, d := types.SetValueFrom(ctx, types.StringType, ex)
		diags.Append(d...)
		m.ExcludeColumns = v
	}

	v, d := effectiveMap(tm.EffectiveColumns)
	diags.Append(d...)
	m.EffectiveColumns = v
	return diags
}

// effectiveMap keys effective columns by destination: a map, so a change shows as the columns it adds and
// drops rather than as every later column of a list shifting.
func effectiveMap(cols []mapping.Column) (types.Map, diag.Diagnostics) {
	vals := make(map[string]attr.Value, len(cols))
	for _, c := range cols {
		vals[c.Destination] = effectiveColumnValue(c)
	}
	return types.MapValue(effectiveColumnType, vals)
}

// keepPlannedEffective keeps effective columns predicted at plan time. The control plane computes them with
// the same rules, so they differ only when another mapping of the connector changed in the same apply; then
// the next refresh brings the new list, instead of apply failing on a result inconsistent with its plan.
func (m *tableMappingModel) keepPlannedEffective(plan tableMappingModel) {
	if !plan.EffectiveColumns.IsUnknown() && !plan.EffectiveColumns.IsNull() {
		m.EffectiveColumns = plan.EffectiveColumns
	}
}

// effectiveColumns returns the stored effective columns (from state).
func (m *tableMappingModel) effectiveColumns(ctx context.Context) ([]effectiveColumn, diag.Diagnostics) {
	if m.EffectiveColumns.IsNull() || m.EffectiveColumns.IsUnknown() {
		return nil, nil
	}
	var cols map[string]effectiveColumnModel
	diags := m.EffectiveColumns.ElementsAs(ctx, &cols, false)
	dests := slices.Sorted(maps.Keys(cols))
	out := make([]effectiveColumn, len(dests))
	for i, d := range dests {
		out[i] = effectiveColumn{Source: cols[d].Source.ValueString(), Destination: d}
	}
	// The effective columns do not carry truncate: take it from the overrides, as the control plane does.
	if !m.Columns.IsNull() && !m.Columns.IsUnknown() {
		var overrides map[string]columnOverrideModel
		diags.Append(m.Columns.ElementsAs(ctx, &overrides, false)...)
		truncate := map[string]bool{}
		for d, o := range overrides {
			truncate[strings.ToLower(d)] = o.Truncate.ValueBool()
		}
		for i := range out {
			out[i].Truncate = truncate[out[i].Destination]
		}
	}
	return out, diags
}

// sameColumns reports whether the parts of two models that decide what is synced, and how, are equal
// (repair_out_of_band_edits aside: it changes what the agent does about edits made in Dataverse, not what it
// copies, so it needs no live validation and has no consequence for the synced columns).
func (m *tableMappingModel) sameColumns(o *tableMappingModel) bool {
	return m.ConnectorID.Equal(o.ConnectorID) && m.SourceTable.Equal(o.SourceTable) && m.DestinationTable.Equal(o.DestinationTable) &&
		m.UsePredefined.Equal(o.UsePredefined) && m.Columns.Equal(o.Columns) && m.ExcludeColumns.Equal(o.ExcludeColumns) &&
		m.DeleteBehaviour.Equal(o.DeleteBehaviour)
}
