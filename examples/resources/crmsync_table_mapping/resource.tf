# Contact → contact with the predefined mappings, without fax, plus a custom column. Synced contacts edited in
# Dataverse by anyone but the sync are rewritten from Salesforce (they are reported either way).
resource "crmsync_table_mapping" "contact" {
  connector_id             = crmsync_connector.salesforce.id
  source_table             = "Contact"
  exclude_columns          = ["fax"]
  repair_out_of_band_edits = true

  columns = {
    new_region  = { source = "Region__c" }
    description = { source = "Description", truncate = true } # 32,000 characters into 2,000
  }
}

# Account → account with the predefined mappings; deleted accounts are deactivated rather than deleted.
resource "crmsync_table_mapping" "account" {
  connector_id     = crmsync_connector.salesforce.id
  source_table     = "Account"
  delete_behaviour = "deactivate"
}
