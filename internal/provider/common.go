package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
)

// providerDataFrom converts the provider data Terraform hands to a resource or data source. It returns nil
// without a diagnostic when the provider is not configured yet (Terraform calls Configure on resources
// before the provider's own Configure ran, during validation), and reports a provider bug on a wrong type.
func providerDataFrom(data any, diags *diag.Diagnostics) *providerData {
	if data == nil {
		return nil
	}
	pd, ok := data.(*providerData)
	if !ok {
		diags.AddError("Unexpected provider data type",
			fmt.Sprintf("Expected *provider.providerData, got %T. This is a bug in the crmsync provider; please report it.", data))
		return nil
	}
	return pd
}

// clientOf returns the configured client, or adds an error saying why there is none.
func clientOf(pd *providerData, diags *diag.Diagnostics, action string) *client.Client {
	if pd == nil || pd.Client == nil {
		diags.AddError("crmsync provider not configured",
			action+" needs the crmsync control plane, but the provider's endpoint and token are not known yet. "+
				"Set them to values known at plan time (or apply the resources they depend on first).")
		return nil
	}
	return pd.Client
}

// describeAPIError is the detail of a diagnostic about a failed API call: the control plane's message, with
// the field it names.
func describeAPIError(err error) string {
	var e *client.Error
	if errors.As(err, &e) {
		msg := e.Body.Message
		if e.Body.Field != "" {
			msg += " (field " + e.Body.Field + ")"
		}
		if probs := problemsOf(e); len(probs) > 0 {
			lines := make([]string, 0, len(probs))
			for _, p := range probs {
				lines = append(lines, fmt.Sprintf("  - %s %s: %s", p.Severity, p.Path, p.Message))
			}
			msg += "\n" + strings.Join(lines, "\n")
		}
		return fmt.Sprintf("The control plane answered HTTP %d %s: %s", e.Status, e.Body.Code, msg)
	}
	return err.Error()
}

// preflightChecks decodes the checks a refused activation carries in its details.
func preflightChecks(err error) []api.PreflightCheck {
	var e *client.Error
	if !errors.As(err, &e) || len(e.Body.Details) == 0 {
		return nil
	}
	var direct []api.PreflightCheck
	if json.Unmarshal(e.Body.Details, &direct) == nil && len(direct) > 0 {
		return direct
	}
	var wrapped struct {
		Checks    []api.PreflightCheck `json:"checks"`
		Preflight []api.PreflightCheck `json:"preflight"`
	}
	if json.Unmarshal(e.Body.Details, &wrapped) == nil {
		if len(wrapped.Checks) > 0 {
			return wrapped.Checks
		}
		return wrapped.Preflight
	}
	return nil
}

// problemsOf decodes the mapping problems a refused mapping write carries in its details.
func problemsOf(e *client.Error) []problemDetail {
	if len(e.Body.Details) == 0 {
		return nil
	}
	var direct []problemDetail
	if json.Unmarshal(e.Body.Details, &direct) == nil && len(direct) > 0 && direct[0].Message != "" {
		return direct
	}
	var wrapped struct {
		Problems []problemDetail `json:"problems"`
	}
	if json.Unmarshal(e.Body.Details, &wrapped) == nil {
		return wrapped.Problems
	}
	return nil
}

type problemDetail struct {
	Severity string `json:"severity"`
	Path     string `json:"path"`
	Message  string `json:"message"`
}

// stringOrNull maps "" to null, for optional attributes the API omits when empty.
func stringOrNull(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

// timeString formats a time for a computed attribute (RFC 3339, UTC); the zero time is null.
func timeString(t time.Time) types.String {
	if t.IsZero() {
		return types.StringNull()
	}
	return types.StringValue(t.UTC().Format(time.RFC3339))
}

// isNotFound reports whether err is the control plane's not_found.
func isNotFound(err error) bool { return errors.Is(err, client.ErrNotFound) }

// isUnreachable reports whether err means the control plane could not answer at all (a network failure,
// a gateway or unavailable status): the cases where live checks degrade to a warning.
func isUnreachable(err error) bool {
	if err == nil {
		return false
	}
	var e *client.Error
	if errors.As(err, &e) {
		return e.Status >= 500 || e.Body.Code == "unavailable"
	}
	return !errors.Is(err, context.Canceled)
}
