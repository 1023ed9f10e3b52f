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

  # Optional: everything left out keeps the agent's default.
  tuning = {
    out_of_band_interval = "5m"  # look for rows edited in Dataverse every 5 minutes (default 1m)
    reconcile_interval   = "24h" # compare both sides daily (default 6h); "off" leaves only `crmsync reconcile`
  }
}

# Write-only secrets (Terraform 1.11+, OpenTofu 1.11+): the values go to the control plane and are kept in
# neither the plan nor the state. Here they come from a secrets manager through an ephemeral resource of its
# provider; a variable declared with `ephemeral = true` works too. Bump a *_wo_version to rotate.
ephemeral "vault_kv_secret_v2" "crmsync" {
  mount = "secret"
  name  = "crmsync/prod"
}

resource "crmsync_connector" "write_only" {
  name    = "salesforce-prod-wo"
  team_id = var.dataverse_team_id

  salesforce = {
    login_url              = "https://login.salesforce.com"
    auth                   = "jwt_bearer"
    client_id              = var.salesforce_client_id
    username               = "integration@acme.example"
    private_key_wo         = ephemeral.vault_kv_secret_v2.crmsync.data["salesforce_private_key"]
    private_key_wo_version = 1
  }

  dataverse = {
    environment_url          = "https://acme.crm.dynamics.com"
    tenant_id                = var.tenant_id
    client_id                = var.dataverse_client_id
    client_secret_wo         = ephemeral.vault_kv_secret_v2.crmsync.data["dataverse_client_secret"]
    client_secret_wo_version = 2 # was 1: this apply sends the rotated secret
  }
}
