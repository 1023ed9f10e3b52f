data "crmsync_predefined_mappings" "contact" {
  source_table = "Contact"
}

# Which Salesforce field feeds each Dataverse column by default.
output "contact_predefined" {
  value = { for c in data.crmsync_predefined_mappings.contact.columns : c.destination => c.source }
}
