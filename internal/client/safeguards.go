package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// Activate calls PUT /v1/connectors/{id}/activation with every option of the request (SetActivation sends
// only the state): backup_before_first_sync chooses whether the first activation backs up the destination
// tables before the agent is deployed.
func (c *Client) Activate(ctx context.Context, connectorID string, req api.ActivationRequest) (*api.Activation, error) {
	var out api.Activation
	return &out, c.do(ctx, http.MethodPut, "/v1/connectors/"+esc(connectorID)+"/activation", req, &out)
}

// CreateBackup calls POST /v1/connectors/{id}/backups: a backup starts in the background.
func (c *Client) CreateBackup(ctx context.Context, connectorID string) (*api.Backup, error) {
	var out api.Backup
	return &out, c.do(ctx, http.MethodPost, "/v1/connectors/"+esc(connectorID)+"/backups", nil, &out)
}

// ListBackups calls GET /v1/backups (one connector's when connectorID is set), newest first.
func (c *Client) ListBackups(ctx context.Context, connectorID string) ([]api.Backup, error) {
	path := "/v1/backups"
	if connectorID != "" {
		path += "?connector_id=" + url.QueryEscape(connectorID)
	}
	var out api.BackupList
	return out.Backups, c.do(ctx, http.MethodGet, path, nil, &out)
}

// GetBackup calls GET /v1/backups/{id}.
func (c *Client) GetBackup(ctx context.Context, id string) (*api.Backup, error) {
	var out api.Backup
	return &out, c.do(ctx, http.MethodGet, "/v1/backups/"+esc(id), nil, &out)
}

// RestoreBackup calls POST /v1/backups/{id}/restore: a restore starts in the background. ErrConflict while
// the connector is active.
func (c *Client) RestoreBackup(ctx context.Context, id string, req api.RestoreRequest) (*api.Restore, error) {
	var out api.Restore
	return &out, c.do(ctx, http.MethodPost, "/v1/backups/"+esc(id)+"/restore", req, &out)
}

// GetRestore calls GET /v1/restores/{id}.
func (c *Client) GetRestore(ctx context.Context, id string) (*api.Restore, error) {
	var out api.Restore
	return &out, c.do(ctx, http.MethodGet, "/v1/restores/"+esc(id), nil, &out)
}

// Reconcile calls POST /v1/connectors/{id}/reconcile: the agent reconciles every table at its next
// heartbeat.
func (c *Client) Reconcile(ctx context.Context, connectorID string) (*api.ReconcileRequest, error) {
	var out api.ReconcileRequest
	return &out, c.do(ctx, http.MethodPost, "/v1/connectors/"+esc(connectorID)+"/reconcile", nil, &out)
}
