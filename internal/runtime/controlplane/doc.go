// Package controlplane is `crmsync serve`: the REST API (v1) the Terraform provider and agents talk to,
// backed by a Store, with preflight checks, live mapping validation and a supervisor that deploys agents.
package controlplane
