// Package api holds crmsync's wire types: the control plane's REST API (v1), the agent protocol, and the
// agent's configuration, checkpoints, dead letters and status, which the agent persists or reports. With
// internal/mapping it is the ground floor: it imports nothing of the project's but internal/mapping (a table
// mapping as declared is a mapping.TableConfig on the wire), and internal/mapping never imports it, so the
// provider, the CLI, the control plane and the agent can all share it. docs/api/openapi.yaml documents the
// API; the server's tests check it against that document.
package api
