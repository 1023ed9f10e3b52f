resource "crmsync_connector" "salesforce" {
  name    = "salesforce-prod"
  team_id = var.dataverse_team_id # owns and writes the synced rows

  salesforce = {
    login_url        = "https://login.salesforce.com"
    auth             = "jwt_bearer"
    client_id        = var.salesforce_client_id
    username         = "integration@acme.example"
    private_key_file = "/etc/crmsync/salesforce.key" # read by the agent on its own host
  }

  dataverse = {
    environment_url   = "https://acme.crm.dynamics.com"
    tenant_id         = var.tenant_id
    client_id         = var.dataverse_client_id
    client_secret_env = "CRMSYNC_DATAVERSE_SECRET" # read by the agent on its own host
  }
}
