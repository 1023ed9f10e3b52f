package provider

import (
	"context"
	"fmt"
	"net/url"
	"regexp"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
)

// Name rules checked at plan time, so a typo fails in `terraform validate` with the attribute path rather than
// as a refusal from the control plane during apply.
var (
	// guidPattern is a Dataverse GUID (team IDs), hyphenated, any case.
	guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	// logicalNamePattern is a Dataverse logical name: lower case, as the Web API reports them. Requiring
	// lower case keeps the map keys and exclusions equal to what the control plane stores, so no diff
	// appears from a change of case.
	logicalNamePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,127}$`)
	// apiNamePattern is a Salesforce API name (objects and fields, custom ones end in __c).
	apiNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,79}$`)
	// envVarPattern is a portable environment variable name.
	envVarPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// connectorNamePattern keeps connector names usable in URLs, file names and CLI arguments.
	connectorNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	// apiVersionPattern is a Salesforce API version.
	apiVersionPattern = regexp.MustCompile(`^[0-9]{2,3}\.0$`)
)

func guidValidator() validator.String {
	return stringvalidator.RegexMatches(guidPattern, "must be a GUID such as 6f1c2a9e-0b7d-4c1e-9a53-2f0d1c7e8b44")
}

func logicalNameValidator() validator.String {
	return stringvalidator.RegexMatches(logicalNamePattern,
		"must be a Dataverse logical name: lower-case letters, digits and underscores, starting with a letter (for example new_region)")
}

func apiNameValidator() validator.String {
	return stringvalidator.RegexMatches(apiNamePattern,
		"must be a Salesforce API name: letters, digits and underscores, starting with a letter (for example Region__c)")
}

// httpURLValidator accepts absolute http:// and https:// URLs.
type httpURLValidator struct{}

func httpURL() validator.String { return httpURLValidator{} }

func (httpURLValidator) Description(context.Context) string {
	return "value must be an absolute http:// or https:// URL"
}

func (v httpURLValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (httpURLValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := checkHTTPURL(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid URL", err.Error())
	}
}

func checkHTTPURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", s, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q must be an absolute http:// or https:// URL, for example https://login.salesforce.com", s)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must not carry a query or a fragment", s)
	}
	return nil
}
