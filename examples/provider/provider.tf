terraform {
  required_providers {
    crmsync = {
      source = "crmsync/crmsync"
    }
  }
}

# The control plane's URL; the token comes from CRMSYNC_TOKEN, which keeps it out of the configuration.
provider "crmsync" {
  endpoint = "https://crmsync.internal:8787"
  ca_file  = "/etc/crmsync/ca.pem" # only when the control plane's certificate is signed by a private CA
}
