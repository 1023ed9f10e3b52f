package controlplane

import (
	"context"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
)

// Checker talks to Salesforce and Dataverse on the control plane's behalf: activation preflight and live
// schemas for mapping validation. Package preflight implements it. Secrets referenced by *_env/*_file are
// resolved on the control plane's host when possible; a check that cannot run for that reason is reported
// as a warning, not a failure, since the agent resolves them on its own host.
type Checker interface {
	// Preflight runs every activation check and returns them all (failed ones with OK false and a message
	// naming what is missing, e.g. the missing privilege names).
	Preflight(ctx context.Context, conn api.Connector, secrets store.Secrets, mappings []api.TableMapping) []api.PreflightCheck
	// LiveSchemas returns the Salesforce describe of sourceTable, the Dataverse metadata of destTable and the
	// number of source records.
	LiveSchemas(ctx context.Context, conn api.Connector, secrets store.Secrets, sourceTable, destTable string) (*mapping.SourceSchema, *mapping.DestSchema, int64, error)
}

// Deployer is told when a connector's desired state may have changed (activated, deactivated, a new
// revision); package supervisor implements it. Changed must not block.
type Deployer interface {
	Changed(connectorID string)
}
