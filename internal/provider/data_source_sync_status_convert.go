package provider

import (
	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// syncStatusFromAPI converts the API's connector status.
func syncStatusFromAPI(st *api.ConnectorStatus) (syncStatusModel, diag.Diagnostics) {
	var diags diag.Diagnostics
	m := syncStatusModel{
		ConnectorID:        types.StringValue(st.ConnectorID),
		Name:               types.StringValue(st.Name),
		Active:             types.BoolValue(st.Active),
		State:              types.StringValue(st.State),
		Reason:             types.StringValue(st.Reason),
		LatestRevision:     types.Int64Value(st.LatestRevision),
		DeployedRevision:   types.Int64Value(st.DeployedRevision),
		LagSeconds:         types.Float64Value(st.LagSeconds),
		DeadLetters:        types.Int64Value(st.DeadLetters),
		SalesforceCalls:    types.Int64Value(st.SalesforceCalls),
		DataverseRequests:  types.Int64Value(st.DataverseCalls),
		DataverseThrottled: types.Int64Value(st.Throttled),
		UpdatedAt:          timeString(st.UpdatedAt),
	}
	if st.Agent != nil {
		m.Agent = types.ObjectValueMust(agentInfoType.AttrTypes, map[string]attr.Value{
			"id":           types.StringValue(st.Agent.ID),
			"host":         types.StringValue(st.Agent.Host),
			"pid":          types.Int64Value(int64(st.Agent.PID)),
			"revision":     types.Int64Value(st.Agent.Revision),
			"heartbeat_at": timeString(st.Agent.HeartbeatAt),
			"started_at":   timeString(st.Agent.StartedAt),
		})
	} else {
		m.Agent = types.ObjectNull(agentInfoType.AttrTypes)
	}
	var maxAge, retention float64
	var oobDetected, oobRepaired int64
	loaded := len(st.Tables) > 0
	tables := make([]attr.Value, len(st.Tables))
	for i, t := range st.Tables {
		pct := 0.0
		switch {
		case t.Phase == api.PhaseStreaming:
			pct = 100
		case t.LoadTotal > 0:
			pct = min(100, 100*float64(t.LoadDone)/float64(t.LoadTotal))
		}
		if t.Phase != api.PhaseStreaming {
			loaded = false
		}
		maxAge = max(maxAge, t.ReplayAgeSeconds)
		retention = max(retention, t.RetentionSeconds)
		if o := t.OutOfBand; o != nil {
			oobDetected += o.Detected
			oobRepaired += o.Repaired
		}
		tables[i] = types.ObjectValueMust(tableStatusType.AttrTypes, map[string]attr.Value{
			"table":              types.StringValue(t.Table),
			"destination":        types.StringValue(t.Destination),
			"phase":              types.StringValue(t.Phase),
			"reason":             types.StringValue(t.Reason),
			"load_done":          types.Int64Value(t.LoadDone),
			"load_total":         types.Int64Value(t.LoadTotal),
			"load_percent":       types.Float64Value(pct),
			"received":           types.Int64Value(t.Received),
			"written":            types.Int64Value(t.Written),
			"dead_lettered":      types.Int64Value(t.DeadLettered),
			"skipped":            types.Int64Value(t.Skipped),
			"lag_seconds":        types.Float64Value(t.LagSeconds),
			"replay_age_seconds": types.Float64Value(t.ReplayAgeSeconds),
			"retention_seconds":  types.Float64Value(t.RetentionSeconds),
			"last_error":         types.StringValue(t.LastError),
			"out_of_band":        outOfBandObject(t.OutOfBand),
			"reconcile":          reconcileObject(t.Reconcile),
		})
	}
	m.OutOfBandEdits = types.Int64Value(oobDetected)
	m.OutOfBandRepaired = types.Int64Value(oobRepaired)
	m.Backup = backupStatusObject(st.Backup)
	m.ReconcileRequest = types.ObjectNull(reconcileRequestType.AttrTypes)
	if r := st.ReconcileRequest; r != nil {
		m.ReconcileRequest = types.ObjectValueMust(reconcileRequestType.AttrTypes, map[string]attr.Value{
			"request_id":   types.Int64Value(r.RequestID),
			"requested_at": timeString(r.RequestedAt),
		})
	}
	if retention == 0 {
		retention = changeEventRetention.Seconds()
	}
	m.MaxReplayAge = types.Float64Value(maxAge)
	m.RetentionSeconds = types.Float64Value(retention)
	m.InitialLoadDone = types.BoolValue(loaded)
	var d diag.Diagnostics
	m.Tables, d = types.ListValue(tableStatusType, tables)
	diags.Append(d...)
	errs := make([]attr.Value, len(st.LastErrors))
	for i, e := range st.LastErrors {
		errs[i] = types.ObjectValueMust(errorEntryType.AttrTypes, map[string]attr.Value{
			"at":      timeString(e.At),
			"table":   types.StringValue(e.Table),
			"message": types.StringValue(e.Message),
		})
	}
	m.LastErrors, d = types.ListValue(errorEntryType, errs)
	diags.Append(d...)
	return m, diags
}

// outOfBandObject converts a table's out-of-band edit report (null before the detector first ran).
func outOfBandObject(o *api.OutOfBandStatus) types.Object {
	if o == nil {
		return types.ObjectNull(outOfBandType.AttrTypes)
	}
	examples := make([]attr.Value, len(o.Examples))
	for i, e := range o.Examples {
		examples[i] = types.ObjectValueMust(outOfBandEditType.AttrTypes, map[string]attr.Value{
			"record_id":        types.StringValue(e.RecordID),
			"key":              types.StringValue(e.Key),
			"columns":          stringListValue(e.Columns),
			"modified_by":      types.StringValue(e.ModifiedBy),
			"modified_by_name": stringOrNull(e.ModifiedByName),
			"modified_at":      timeString(e.ModifiedAt),
			"repaired":         types.BoolValue(e.Repaired),
		})
	}
	return types.ObjectValueMust(outOfBandType.AttrTypes, map[string]attr.Value{
		"detected":   types.Int64Value(o.Detected),
		"repaired":   types.Int64Value(o.Repaired),
		"repair":     types.BoolValue(o.Repair),
		"checked_at": timeString(o.CheckedAt),
		"since":      timeString(o.Since),
		"examples":   types.ListValueMust(outOfBandEditType, examples),
	})
}

// reconcileResult is the one-word outcome of a reconciliation, for check blocks.
func reconcileResult(r *api.ReconcileResult) string {
	switch {
	case r.Error != "":
		return reconcileError
	case r.FinishedAt.IsZero():
		return reconcileRunning
	case r.Match:
		return reconcileMatch
	}
	return reconcileDiffered
}

// reconcileObject converts a table's last reconciliation (null before the first).
func reconcileObject(r *api.ReconcileResult) types.Object {
	if r == nil {
		return types.ObjectNull(reconcileType.AttrTypes)
	}
	examples := make([]attr.Value, len(r.Examples))
	for i, e := range r.Examples {
		examples[i] = types.ObjectValueMust(reconcileDifferenceType.AttrTypes, map[string]attr.Value{
			"kind":      types.StringValue(e.Kind),
			"record_id": stringOrNull(e.RecordID),
			"key":       types.StringValue(e.Key),
			"columns":   stringListValue(e.Columns),
		})
	}
	return types.ObjectValueMust(reconcileType.AttrTypes, map[string]attr.Value{
		"trigger":            types.StringValue(r.Trigger),
		"request_id":         types.Int64Value(r.RequestID),
		"started_at":         timeString(r.StartedAt),
		"finished_at":        timeString(r.FinishedAt),
		"result":             types.StringValue(reconcileResult(r)),
		"match":              types.BoolValue(r.Match),
		"source_rows":        types.Int64Value(r.SourceRows),
		"destination_rows":   types.Int64Value(r.DestinationRows),
		"mismatches":         types.Int64Value(r.Missing + r.Different + r.Extra),
		"missing":            types.Int64Value(r.Missing),
		"different":          types.Int64Value(r.Different),
		"extra":              types.Int64Value(r.Extra),
		"kept":               types.Int64Value(r.Kept),
		"healed":             types.Int64Value(r.Healed),
		"unhealed":           types.Int64Value(r.Unhealed),
		"ranges":             types.Int64Value(int64(r.Ranges)),
		"differing_ranges":   types.Int64Value(int64(r.DifferingRanges)),
		"salesforce_calls":   types.Int64Value(r.SalesforceCalls),
		"dataverse_requests": types.Int64Value(r.DataverseCalls),
		"error":              types.StringValue(r.Error),
		"examples":           types.ListValueMust(reconcileDifferenceType, examples),
	})
}

// backupStatusObject converts the connector's unfinished backup (null when there is none).
func backupStatusObject(b *api.Backup) types.Object {
	if b == nil {
		return types.ObjectNull(backupStatusType.AttrTypes)
	}
	var estimated int64
	tables := make([]attr.Value, len(b.Tables))
	for i, t := range b.Tables {
		estimated += t.Estimated
		tables[i] = types.ObjectValueMust(backupTableType.AttrTypes, map[string]attr.Value{
			"table":          types.StringValue(t.Table),
			"source_table":   types.StringValue(t.SourceTable),
			"rows":           types.Int64Value(t.Rows),
			"estimated_rows": types.Int64Value(t.Estimated),
			"complete":       types.BoolValue(t.Complete),
		})
	}
	return types.ObjectValueMust(backupStatusType.AttrTypes, map[string]attr.Value{
		"id":             types.StringValue(b.ID),
		"trigger":        types.StringValue(b.Trigger),
		"state":          types.StringValue(b.State),
		"error":          types.StringValue(b.Error),
		"blocking":       types.BoolValue(b.Blocking),
		"rows":           types.Int64Value(b.Rows),
		"estimated_rows": types.Int64Value(estimated),
		"bytes":          types.Int64Value(b.Bytes),
		"tables":         types.ListValueMust(backupTableType, tables),
		"path":           types.StringValue(b.Path),
		"created_at":     timeString(b.CreatedAt),
		"updated_at":     timeString(b.UpdatedAt),
	})
}

// stringListValue converts a list of strings; none is an empty list, so expressions such as length() work
// without a null check.
func stringListValue(ss []string) types.List {
	vals := make([]attr.Value, len(ss))
	for i, s := range ss {
		vals[i] = types.StringValue(s)
	}
	return types.ListValueMust(types.StringType, vals)
}
