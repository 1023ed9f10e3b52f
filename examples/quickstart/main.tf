# crmsync quick start: sync Salesforce Contact and Account into Dataverse contact and account, against the
# local sandbox (`crmsync sandbox --dir DIR`, or `make demo`). Point it at a real org and environment by
# replacing the sandbox locals (see the README).
#
#   export CRMSYNC_ENDPOINT=http://127.0.0.1:8787 CRMSYNC_TOKEN=...   # the control plane (`crmsync serve`)
#   terraform init && terraform apply -var sandbox_json=/tmp/crmsync-sandbox/sandbox.json

terraform {
  required_version = ">= 1.8.0" # provider functions
  required_providers {
    crmsync = {
      source = "crmsync/crmsync"
    }
  }
}

variable "sandbox_json" {
  description = "Path of the sandbox.json that `crmsync sandbox --dir DIR` writes into DIR."
  type        = string
}

variable "connector_name" {
  description = "Name of the connector."
  type        = string
  default     = "quickstart"
}

locals {
  sandbox    = jsondecode(file(var.sandbox_json))
  salesforce = local.sandbox.salesforce
  dataverse  = local.sandbox.dataverse
  plaintext  = try(local.sandbox.plaintext, false)
}

# The endpoint and token come from CRMSYNC_ENDPOINT and CRMSYNC_TOKEN.
provider "crmsync" {}

resource "crmsync_connector" "sandbox" {
  name    = var.connector_name
  team_id = local.dataverse.team_id # the Dataverse team that owns the synced rows

  salesforce = {
    login_url        = local.salesforce.login_url
    instance_url     = local.salesforce.instance_url
    api_version      = local.salesforce.api_version
    pubsub_addr      = local.salesforce.pubsub_addr
    pubsub_plaintext = local.plaintext
    auth             = "jwt_bearer"
    client_id        = local.salesforce.client_id
    username         = local.salesforce.username
    private_key_file = local.salesforce.private_key_file # read by the agent on its own host
    ca_file          = try(local.salesforce.ca_file, null)
  }

  dataverse = {
    environment_url = local.dataverse.environment_url
    authority_url   = local.dataverse.authority_url
    tenant_id       = local.dataverse.tenant_id
    client_id       = local.dataverse.client_id
    # A reference: the agent reads the secret from this file on its own host, and no secret reaches Terraform
    # state or plans (the sandbox writes the file; the demo's control plane allows references inside its
    # directory). See the crmsync_connector documentation for when to use *_env, *_file or *_wo.
    client_secret_file = local.dataverse.client_secret_file
    ca_file            = try(local.dataverse.ca_file, null)
  }
}

resource "crmsync_table_mapping" "account" {
  connector_id = crmsync_connector.sandbox.id
  source_table = "Account" # destination account, predefined mappings
}

resource "crmsync_table_mapping" "contact" {
  connector_id = crmsync_connector.sandbox.id
  source_table = "Contact" # destination contact, predefined mappings (and parentcustomerid, as Account is synced)

  # One column the predefined mappings do not carry, keyed by its Dataverse column. Title holds up to 128
  # characters and jobtitle 100: truncate instead of dead-lettering the rare longer title.
  columns = {
    jobtitle = { source = "Title", truncate = true }
  }

  # Created after Account, so its effective columns include parentcustomerid from the start (the lookup
  # is mapped only while Account is synced too).
  depends_on = [crmsync_table_mapping.account]
}

resource "crmsync_activation" "sandbox" {
  connector_id = crmsync_connector.sandbox.id
  wait_for     = "initial_load" # apply returns once every record is in Dataverse

  # Before the first sync writes anything, back up the contact and account rows Dataverse holds (the default):
  # `crmsync backup restore` rolls back to it. The agent starts once the backup is complete.
  backup_before_first_sync = true

  depends_on = [crmsync_table_mapping.account, crmsync_table_mapping.contact]
}

# What the agent reports. Declared at the top level rather than inside the check block: Terraform plans a
# re-read of a check block's own data source on every plan, which would make `plan -detailed-exitcode`
# report changes forever.
data "crmsync_sync_status" "sandbox" {
  connector_id = crmsync_activation.sandbox.connector_id
}

# Every plan and apply checks the sync is healthy; a failed assertion is a warning, not an error.
check "sync_is_healthy" {
  assert {
    condition     = data.crmsync_sync_status.sandbox.state == "streaming" && data.crmsync_sync_status.sandbox.lag_seconds < 60
    error_message = "crmsync is not streaming, or is more than a minute behind: ${data.crmsync_sync_status.sandbox.state} ${data.crmsync_sync_status.sandbox.reason}"
  }

  assert {
    condition     = data.crmsync_sync_status.sandbox.dead_letters == 0
    error_message = "${data.crmsync_sync_status.sandbox.dead_letters} records were refused by Dataverse: see `crmsync status ${crmsync_connector.sandbox.name}`."
  }

  # Synced rows are Salesforce's: an edit made in Dataverse is not sent back and is overwritten by the next
  # change (or at once, where a mapping sets repair_out_of_band_edits).
  assert {
    condition = data.crmsync_sync_status.sandbox.out_of_band_edits == 0
    error_message = "${data.crmsync_sync_status.sandbox.out_of_band_edits} synced rows were edited in Dataverse; make such changes in Salesforce: ${join("; ", flatten([
      for t in data.crmsync_sync_status.sandbox.tables : [
        for e in(t.out_of_band == null ? [] : t.out_of_band.examples) : "${t.destination} ${e.key} (${join(", ", e.columns)}) at ${e.modified_at}"
      ]
    ]))}"
  }
}

output "connector_id" {
  value = crmsync_connector.sandbox.id
}

output "contact_columns" {
  description = "Dataverse contact columns and the Salesforce fields that feed them."
  value       = { for column, m in crmsync_table_mapping.contact.effective_columns : column => m.source }
}

output "activation_health" {
  value = crmsync_activation.sandbox.health
}

output "first_sync_backup" {
  description = "The backup taken before the first sync (restore it with `crmsync backup restore <id>`)."
  value       = crmsync_activation.sandbox.backup == null ? null : crmsync_activation.sandbox.backup.id
}

output "first_contact_guid" {
  description = "The Dataverse contactid of an example Salesforce Id: what the agent writes it as."
  value       = provider::crmsync::salesforce_id_to_guid("003D000000QV9n2IAD")
}
