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
