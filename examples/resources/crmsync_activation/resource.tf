resource "crmsync_activation" "salesforce" {
  connector_id = crmsync_connector.salesforce.id
  wait_for     = "initial_load" # apply returns once every table finished its initial load

  # Activate once the tables are mapped: the preflight checks validate the mappings against the live schemas.
  depends_on = [crmsync_table_mapping.contact, crmsync_table_mapping.account]

  timeouts {
    create = "1h" # a large initial load
  }
}
