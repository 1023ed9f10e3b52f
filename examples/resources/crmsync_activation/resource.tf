resource "crmsync_activation" "salesforce" {
  connector_id = crmsync_connector.salesforce.id
  wait_for     = "initial_load" # apply returns once every table finished its initial load

  # The default: before the first sync writes anything, the control plane backs up the current rows of every
  # destination table under its data directory, and the agent starts once the backup is complete. Roll back
  # with `crmsync backup restore <backup.id>` after deactivating the connector.
  backup_before_first_sync = true

  # Activate once the tables are mapped: the preflight checks validate the mappings against the live schemas.
  depends_on = [crmsync_table_mapping.contact, crmsync_table_mapping.account]

  timeouts {
    create = "1h" # the backup and a large initial load
  }
}

output "first_sync_backup" {
  description = "The backup taken before the first sync: ID, rows per table and where it is."
  value       = crmsync_activation.salesforce.backup
}
