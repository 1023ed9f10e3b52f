// Package api holds crmsync's wire types: the control plane's REST API (v1), the agent protocol, and the
// agent's configuration, checkpoints, dead letters and status, which the agent persists or reports. It
// depends only on the pure mapping package, so the provider, the CLI, the control plane and the agent can
// all share it. docs/api/openapi.yaml documents the API; the server's tests check it against that
// document.
package api
