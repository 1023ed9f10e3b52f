data "crmsync_sync_status" "salesforce" {
  connector_id = crmsync_activation.salesforce.connector_id
}

# Every plan and apply asserts the sync is healthy (a failed assertion is a warning). Keep the data source at
# the top level: Terraform plans a re-read of a data source nested in a check block on every plan, so
# `terraform plan -detailed-exitcode` would never exit 0.
check "sync_is_healthy" {
  assert {
    condition     = data.crmsync_sync_status.salesforce.state == "streaming" && data.crmsync_sync_status.salesforce.lag_seconds < 60
    error_message = "crmsync is unhealthy or more than a minute behind: ${data.crmsync_sync_status.salesforce.reason}"
  }

  assert {
    # Salesforce keeps change events for 72 hours: a stream that cannot resume re-syncs its tables.
    condition     = data.crmsync_sync_status.salesforce.max_replay_age_seconds < data.crmsync_sync_status.salesforce.retention_seconds / 2
    error_message = "the stored change-stream position is getting close to Salesforce's 72 h retention"
  }
}

# Synced data edited in Dataverse, and the last reconciliation of each table.
check "synced_data_is_left_alone" {
  assert {
    condition = data.crmsync_sync_status.salesforce.out_of_band_edits == 0
    error_message = "${data.crmsync_sync_status.salesforce.out_of_band_edits} synced rows were edited in Dataverse (${data.crmsync_sync_status.salesforce.out_of_band_edits_repaired} rewritten from Salesforce): ${join("; ", flatten([
      for t in data.crmsync_sync_status.salesforce.tables : [
        for e in(t.out_of_band == null ? [] : t.out_of_band.examples) :
        "${t.destination} ${e.key} (${join(", ", e.columns)}) by ${coalesce(e.modified_by_name, e.modified_by)} at ${e.modified_at}"
      ]
    ]))}"
  }

  assert {
    condition = alltrue([
      for t in data.crmsync_sync_status.salesforce.tables : t.reconcile == null || contains(["match", "running"], t.reconcile.result)
    ])
    error_message = "the last reconciliation found differences: ${join(", ", [
      for t in data.crmsync_sync_status.salesforce.tables : "${t.table} ${t.reconcile.result} (${t.reconcile.mismatches} found, ${t.reconcile.healed} healed)"
      if t.reconcile != null
    ])}"
  }
}
