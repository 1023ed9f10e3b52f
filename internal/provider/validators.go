package provider

import (
	"context"
	"encoding/pem"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/int64validator"
	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// Name rules checked at plan time, so a typo fails in `terraform validate` with the attribute path rather than
// as a refusal from the control plane during apply.
var (
	// guidPattern is a Dataverse GUID (team IDs), hyphenated, any case.
	guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	// logicalNamePattern is a Dataverse logical name. The Web API reports them in lower case and matches
	// them without regard to case, as the mapping rules do; the control plane stores them as written.
	logicalNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,99}$`)
	// tableNamePattern is a Dataverse table logical name, in lower case as the control plane reports the
	// effective destination (a capitalised name would show as a diff on every plan).
	tableNamePattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,79}$`)
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
		"must be a Dataverse logical name: letters, digits and underscores, starting with a letter (for example new_region)")
}

func tableNameValidator() validator.String {
	return stringvalidator.RegexMatches(tableNamePattern,
		"must be a Dataverse table logical name in lower case, for example contact")
}

func apiNameValidator() validator.String {
	return stringvalidator.RegexMatches(apiNamePattern,
		"must be a Salesforce API name: letters, digits and underscores, starting with a letter (for example Region__c)")
}

// httpURLValidator accepts absolute https:// URLs, and http:// ones for loopback hosts (local emulators), as
// the control plane does.
type httpURLValidator struct{}

func httpURL() validator.String { return httpURLValidator{} }

func (httpURLValidator) Description(context.Context) string {
	return "value must be an absolute https:// URL (http:// only for loopback hosts)"
}

func (v httpURLValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (httpURLValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if fe := api.CheckURL(req.Path.String(), req.ConfigValue.ValueString(), false); fe != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid URL", fe.Message)
	}
}

// absolutePathValidator accepts absolute paths: files are read by the agent on its own host, whose working
// directory Terraform cannot know.
type absolutePathValidator struct{}

func absolutePath() validator.String { return absolutePathValidator{} }

func (absolutePathValidator) Description(context.Context) string {
	return "value must be an absolute path on the agent's host"
}

func (v absolutePathValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (absolutePathValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if v := req.ConfigValue.ValueString(); !strings.HasPrefix(v, "/") {
		resp.Diagnostics.AddAttributeError(req.Path, "Relative path",
			fmt.Sprintf("%q must be an absolute path: the agent reads it on its own host, from its own working directory (use abspath() for a path relative to the configuration).", v))
	}
}

// pemPrivateKeyValidator accepts a PEM block holding a private key.
type pemPrivateKeyValidator struct{}

func pemPrivateKey() validator.String { return pemPrivateKeyValidator{} }

func (pemPrivateKeyValidator) Description(context.Context) string {
	return "value must be a PEM private key"
}

func (v pemPrivateKeyValidator) MarkdownDescription(ctx context.Context) string {
	return v.Description(ctx)
}

func (pemPrivateKeyValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	// The value is a secret: the message never echoes it.
	if block, _ := pem.Decode([]byte(req.ConfigValue.ValueString())); block == nil || !strings.Contains(block.Type, "PRIVATE KEY") {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid private key",
			"The value is not a PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----). Use file() to read a key file, or better, private_key_file.")
	}
}

// durationOff is the value of an interval that turns its check off; the API spells it as a negative duration.
const durationOff = "off"

// durationValidator accepts a Go duration string within [min, max], and with allowOff the word "off".
type durationValidator struct {
	min, max time.Duration
	allowOff bool
}

func durationBetween(lo, hi time.Duration, allowOff bool) validator.String {
	return durationValidator{min: lo, max: hi, allowOff: allowOff}
}

// durationIn accepts a duration within one of api's bounds ("off" where the bound allows turning it off).
func durationIn(b api.DurationBound) validator.String { return durationBetween(b.Min, b.Max, b.Off) }

// intBetween accepts an integer within one of api's bounds.
func intBetween(b api.IntBound) validator.Int64 {
	return int64validator.Between(int64(b.Min), int64(b.Max))
}

func (v durationValidator) Description(context.Context) string {
	d := fmt.Sprintf("value must be a Go duration (such as 90s, 5m or 6h) from %s to %s", shortDuration(v.min), shortDuration(v.max))
	if v.allowOff {
		d += `, or "off"`
	}
	return d
}

func (v durationValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v durationValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := v.check(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid duration", err.Error())
	}
}

func (v durationValidator) check(s string) error {
	if v.allowOff && s == durationOff {
		return nil
	}
	off := ""
	if v.allowOff {
		off = ` (or "off" to turn it off)`
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q is not a Go duration such as 90s, 5m or 6h%s", s, off)
	}
	if d < v.min || d > v.max {
		return fmt.Errorf("%q is out of range: it must be from %s to %s%s", s, shortDuration(v.min), shortDuration(v.max), off)
	}
	return nil
}

// shortDuration writes d as time.Duration does, without the zero minutes and seconds it appends to whole
// hours and minutes: 6h rather than 6h0m0s, 1m rather than 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// durationToAPI converts a validated duration attribute; null is zero (the default), "off" a negative
// duration.
func durationToAPI(v types.String) api.Duration {
	if v.IsNull() || v.IsUnknown() {
		return 0
	}
	if v.ValueString() == durationOff {
		return api.Duration(-time.Second)
	}
	d, _ := time.ParseDuration(v.ValueString()) // validated at plan time
	return api.Duration(d)
}

// durationFromAPI converts a duration the API returned: zero is null (the default), negative "off"; prior's
// spelling is kept when it means the same duration.
func durationFromAPI(d api.Duration, prior types.String) types.String {
	switch {
	case d == 0:
		return types.StringNull()
	case d < 0:
		return types.StringValue(durationOff)
	}
	if !prior.IsNull() && !prior.IsUnknown() {
		if p, err := time.ParseDuration(prior.ValueString()); err == nil && p == time.Duration(d) {
			return prior
		}
	}
	return types.StringValue(shortDuration(time.Duration(d)))
}

// inlineSecrets are the inline secret arguments: Terraform keeps their values in state in clear.
var inlineSecrets = []path.Path{
	path.Root("salesforce").AtName("client_secret"),
	path.Root("salesforce").AtName("private_key"),
	path.Root("dataverse").AtName("client_secret"),
}

// warnInlineSecrets warns, deprecation-style, for each secret given inline, naming the forms that keep it out of
// state: the write-only argument (Terraform and OpenTofu 1.11 and later) and the references. It runs from
// ModifyPlan, once per plan: an attribute validator runs in both of Terraform's validations of a plan, so its
// warning showed twice.
func warnInlineSecrets(ctx context.Context, config tfsdk.Config, diags *diag.Diagnostics) {
	paths := slices.Clone(inlineSecrets)
	var users []applicationUserModel
	if d := config.GetAttribute(ctx, path.Root("dataverse").AtName("additional_application_users"), &users); !d.HasError() {
		for i := range users {
			paths = append(paths, path.Root("dataverse").AtName("additional_application_users").AtListIndex(i).AtName("client_secret"))
		}
	}
	for _, p := range paths {
		var v types.String
		if d := config.GetAttribute(ctx, p, &v); d.HasError() || v.IsNull() {
			continue
		}
		name := p.Steps()[len(p.Steps())-1].String()
		diags.AddAttributeWarning(p, "Inline secret stored in Terraform state", fmt.Sprintf(
			"%[1]s is stored in Terraform state (and in saved plans) in clear, sensitive or not. Use %[1]s_wo with "+
				"%[1]s_wo_version instead (write-only, Terraform or OpenTofu 1.11 and later: kept in neither plan nor "+
				"state, ephemeral values accepted), or a reference resolved on the agent's host: %[1]s_env or %[1]s_file.", name))
	}
}
