package preflight

import (
	"errors"
	"fmt"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
)

// Clients builds a connector's Salesforce and Dataverse clients on the control plane's host, exactly as the
// preflight checks do (stored inline secrets, or *_env and *_file references resolved on this host), for the
// work the control plane does itself: backups and restores. The Dataverse client sends as every application
// user of the connector whose secret resolves here. A secret this host cannot resolve is an error
// that says so; the client of a side whose secret is missing is nil only when the error is not nil.
func (c *Checker) Clients(conn api.Connector, secrets store.Secrets) (*salesforce.Client, *dataverse.Client, error) {
	s := c.connect(conn, secrets)
	var errs []error
	if s.sf == nil {
		errs = append(errs, fmt.Errorf("salesforce: %w", s.sfErr))
	}
	if s.dvAll == nil {
		errs = append(errs, fmt.Errorf("dataverse: %w", s.dvErr))
	}
	return s.sf, s.dvAll, errors.Join(errs...)
}
