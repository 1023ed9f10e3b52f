package provider

import (
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

func preflightFailedMessage(id string, checks []api.PreflightCheck, fallback string) string {
	var failed, warned []string
	for _, ch := range checks {
		switch {
		case !ch.OK:
			failed = append(failed, fmt.Sprintf("  - %s: %s", ch.Name, ch.Message))
			for _, c := range ch.Caveats {
				warned = append(warned, fmt.Sprintf("  - %s: %s", ch.Name, c))
			}
		case ch.Warning:
			warned = append(warned, fmt.Sprintf("  - %s: %s", ch.Name, ch.Message))
		}
	}
	if len(failed) == 0 {
		return fallback
	}
	msg := fmt.Sprintf("Connector %s was not activated: %d preflight check(s) failed. Nothing was deployed.\n%s",
		id, len(failed), strings.Join(failed, "\n"))
	if len(warned) > 0 {
		msg += "\nCaveats, which do not block activation:\n" + strings.Join(warned, "\n")
	}
	return msg
}

// firstSyncBackup converts the activation's backup (null when there is none).
func firstSyncBackup(b *api.Backup) (types.Object, diag.Diagnostics) {
	if b == nil {
		return types.ObjectNull(firstSyncBackupType.AttrTypes), nil
	}
	rows := make(map[string]attr.Value, len(b.Tables))
	for _, t := range b.Tables {
		rows[t.Table] = types.Int64Value(t.Rows)
	}
	tables, diags := types.MapValue(types.Int64Type, rows)
	completed := types.StringNull()
	if b.CompletedAt != nil {
		completed = timeString(*b.CompletedAt)
	}
	obj, d := types.ObjectValue(firstSyncBackupType.AttrTypes, map[string]attr.Value{
		"id":           types.StringValue(b.ID),
		"state":        types.StringValue(b.State),
		"rows":         types.Int64Value(b.Rows),
		"bytes":        types.Int64Value(b.Bytes),
		"tables":       tables,
		"path":         types.StringValue(b.Path),
		"completed_at": completed,
	})
	diags.Append(d...)
	return obj, diags
}

func preflightList(checks []api.PreflightCheck) (types.List, diag.Diagnostics) {
	vals := make([]attr.Value, len(checks))
	for i, ch := range checks {
		vals[i] = types.ObjectValueMust(preflightCheckType.AttrTypes, map[string]attr.Value{
			"name":    types.StringValue(ch.Name),
			"ok":      types.BoolValue(ch.OK),
			"warning": types.BoolValue(ch.Warning),
			"message": types.StringValue(ch.Message),
		})
	}
	return types.ListValue(preflightCheckType, vals)
}
