# The Dataverse row a Salesforce record is synced to, for example to link to it.
output "contact_row_url" {
  value = "https://acme.crm.dynamics.com/main.aspx?etn=contact&id=${provider::crmsync::salesforce_id_to_guid("003D000000QV9n2")}"
}
