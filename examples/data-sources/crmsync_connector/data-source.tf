# A connector managed in another configuration, to add a table to it.
data "crmsync_connector" "shared" {
  name = "salesforce-prod"
}

resource "crmsync_table_mapping" "lead" {
  connector_id = data.crmsync_connector.shared.id
  source_table = "Lead"
}
