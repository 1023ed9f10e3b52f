# In a check block, every plan and apply asserts the sync is healthy (a failure is a warning).
check "sync_is_healthy" {
  data "crmsync_sync_status" "salesforce" {
    connector_id = crmsync_activation.salesforce.connector_id
  }

  assert {
    condition     = data.crmsync_sync_status.salesforce.state == "streaming" && data.crmsync_sync_status.salesforce.lag_seconds < 60
    error_message = "crmsync is unhealthy or more than a minute behind"
  }

  assert {
    # Salesforce keeps change events for 72 hours: a stream that cannot resume re-syncs its tables.
    condition     = data.crmsync_sync_status.salesforce.max_replay_age_seconds < data.crmsync_sync_status.salesforce.retention_seconds / 2
    error_message = "the stored change-stream position is getting close to Salesforce's 72 h retention"
  }
}
