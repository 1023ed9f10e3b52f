package plansummary

import (
	"context"
	"errors"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// ClientEstimator counts records with the control plane's live mapping validation: the number of records a
// (re-)sync of the table would copy, counted in Salesforce (POST /v1/validate/mapping with live = true).
type ClientEstimator struct{ Client *client.Client }

// EstimateRecords implements Estimator.
func (e ClientEstimator) EstimateRecords(ctx context.Context, connectorID string, table mapping.TableConfig) (int64, error) {
	res, err := e.Client.ValidateMapping(ctx, api.ValidateRequest{ConnectorID: connectorID, Mapping: table, Live: true})
	if err != nil {
		var apiErr *client.Error
		if errors.As(err, &apiErr) && apiErr.Body.Message != "" {
			return 0, errors.New(strings.TrimSpace(apiErr.Body.Message))
		}
		return 0, err
	}
	if res.EstimatedRecords == nil {
		return 0, errors.New("the control plane did not count them")
	}
	return *res.EstimatedRecords, nil
}
