package provider

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/resourcevalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

func (r *connectorResource) ConfigValidators(context.Context) []resource.ConfigValidator {
	sf, dv := path.MatchRoot("salesforce"), path.MatchRoot("dataverse")
	return []resource.ConfigValidator{
		resourcevalidator.ExactlyOneOf(dv.AtName("client_secret"), dv.AtName("client_secret_wo"), dv.AtName("client_secret_env"), dv.AtName("client_secret_file")),
		resourcevalidator.Conflicting(sf.AtName("client_secret"), sf.AtName("client_secret_wo"), sf.AtName("client_secret_env"), sf.AtName("client_secret_file")),
		resourcevalidator.Conflicting(sf.AtName("private_key"), sf.AtName("private_key_wo"), sf.AtName("private_key_env"), sf.AtName("private_key_file")),
	}
}

// ValidateConfig checks what each Salesforce auth flow needs: these depend on the value of auth, which the
// generic validators cannot express.
func (r *connectorResource) ValidateConfig(ctx context.Context, req resource.ValidateConfigRequest, resp *resource.ValidateConfigResponse) {
	var sf *salesforceModel
	resp.Diagnostics.Append(req.Config.GetAttribute(ctx, path.Root("salesforce"), &sf)...)
	if resp.Diagnostics.HasError() || sf == nil || sf.Auth.IsUnknown() || sf.Auth.IsNull() {
		return
	}
	set := func(v types.String) bool { return !v.IsNull() } // unknown counts as set: it will be
	base := path.Root("salesforce")
	switch sf.Auth.ValueString() {
	case authJWTBearer:
		if !set(sf.Username) {
			resp.Diagnostics.AddAttributeError(base.AtName("username"), "Missing Salesforce username",
				`auth = "jwt_bearer" signs in as a user: set salesforce.username to the integration user.`)
		}
		if !set(sf.PrivateKey) && !set(sf.PrivateKeyWO) && !set(sf.PrivateKeyEnv) && !set(sf.PrivateKeyFile) {
			resp.Diagnostics.AddAttributeError(base.AtName("private_key_file"), "Missing Salesforce private key",
				`auth = "jwt_bearer" signs its assertion with the connected app's private key: set one of private_key_file, private_key_env, private_key_wo or private_key.`)
		}
	case authClientCredentials:
		if !set(sf.ClientSecret) && !set(sf.ClientSecretWO) && !set(sf.ClientSecretEnv) && !set(sf.ClientSecretFile) {
			resp.Diagnostics.AddAttributeError(base.AtName("client_secret_env"), "Missing Salesforce client secret",
				`auth = "client_credentials" needs the connected app's consumer secret: set one of client_secret_env, client_secret_file, client_secret_wo or client_secret.`)
		}
	}
}

// ModifyPlan warns about the consequence of a team change, which the plan alone does not show, and, when the
// Salesforce settings are created or change, about a client-credentials connector without instance_url
// (here rather than in ValidateConfig, which Terraform runs twice per plan: the warning would show twice, and
// on every plan).
func (r *connectorResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.Plan.Raw.IsNull() {
		r.warnDestroy(ctx, req, resp)
		return
	}
	warnInlineSecrets(ctx, req.Config, &resp.Diagnostics)
	var sfPlan, sfState *salesforceModel
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("salesforce"), &sfPlan)...)
	if !req.State.Raw.IsNull() {
		resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("salesforce"), &sfState)...)
	}
	if resp.Diagnostics.HasError() {
		return
	}
	if sfPlan != nil && sfPlan.Auth.ValueString() == authClientCredentials && sfPlan.InstanceURL.IsNull() &&
		(sfState == nil || sfState.Auth.ValueString() != authClientCredentials || !sfState.InstanceURL.IsNull()) {
		resp.Diagnostics.AddAttributeWarning(path.Root("salesforce").AtName("instance_url"), "Salesforce instance_url recommended",
			`The client-credentials token endpoint is on the org's My Domain host; without instance_url the agent uses login_url.`)
	}
	if req.State.Raw.IsNull() {
		return
	}
	var before, after types.String
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("team_id"), &before)...)
	resp.Diagnostics.Append(req.Plan.GetAttribute(ctx, path.Root("team_id"), &after)...)
	if resp.Diagnostics.HasError() || after.IsUnknown() || before.Equal(after) {
		return
	}
	resp.Diagnostics.AddAttributeWarning(path.Root("team_id"), "Every synced row will be reassigned to another team",
		teamChangeMessage(before.ValueString(), after.ValueString()))
	r.checkTeam(ctx, req, after.ValueString(), &resp.Diagnostics)
}

// checkTeam asks the control plane whether an active connector's new team passes the checks the change
// affects (its privileges), so the plan fails where the apply would be refused. It degrades to a warning when
// the control plane cannot answer.
func (r *connectorResource) checkTeam(ctx context.Context, req resource.ModifyPlanRequest, team string, diags *diag.Diagnostics) {
	if r.data == nil || r.data.Client == nil {
		return
	}
	var id types.String
	diags.Append(req.State.GetAttribute(ctx, path.Root("id"), &id)...)
	if diags.HasError() || id.IsNull() || id.IsUnknown() {
		return
	}
	res, err := r.data.Client.ValidateTeam(ctx, api.ValidateTeamRequest{ConnectorID: id.ValueString(), TeamID: team})
	if err != nil {
		diags.AddAttributeWarning(path.Root("team_id"), "Team not checked",
			"The control plane could not check the new team's privileges, so the apply checks them: "+describeAPIError(err))
		return
	}
	for _, ch := range res.Checks {
		if !ch.OK && ch.Name == "team_privileges" {
			diags.AddAttributeError(path.Root("team_id"), "The new team cannot write the synced tables (live check)",
				"The connector is active and its team_privileges preflight check fails for team "+team+": "+ch.Message+
					". The apply would be refused: grant the privileges first, or deactivate the connector.")
		}
	}
}

// warnDestroy says, in the destroy plan, what destroying the connector does to the data and to its backups:
// the synced rows stay, the sync's own state goes, the backups stay restorable.
func (r *connectorResource) warnDestroy(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if req.State.Raw.IsNull() {
		return
	}
	var id, name types.String
	var dv *dataverseModel
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("id"), &id)...)
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("name"), &name)...)
	resp.Diagnostics.Append(req.State.GetAttribute(ctx, path.Root("dataverse"), &dv)...)
	if resp.Diagnostics.HasError() {
		return
	}
	env := ""
	if dv != nil {
		env = dv.EnvironmentURL.ValueString()
	}
	var backups []api.Backup
	known := false
	if r.data != nil && r.data.Client != nil && !id.IsNull() && !id.IsUnknown() {
		if bs, err := r.data.Client.ListBackups(ctx, id.ValueString()); err == nil {
			backups, known = bs, true
		} else {
			tflog.Debug(ctx, "listing the connector's backups for the destroy warning", map[string]any{"error": err.Error()})
		}
	}
	resp.Diagnostics.AddWarning("Destroying the connector: what happens to the data and the backups", destroyMessage(name.ValueString(), env, backups, known))
}

// destroyMessage is the destroy plan's warning for a connector.
func destroyMessage(name, env string, backups []api.Backup, known bool) string {
	msg := fmt.Sprintf("Destroying connector %s stops its sync and deletes its configuration, mappings, checkpoints, dead letters and status "+
		"history from the control plane. The rows it synced stay in Dataverse %s, no longer updated. A connector created again starts with a "+
		"full initial load. ", name, env)
	var complete []api.Backup
	for _, b := range backups {
		if b.State == api.BackupComplete {
			complete = append(complete, b)
		}
	}
	switch {
	case !known:
		msg += "Its backups, if any, stay on the control plane (crmsync backup list) and can be restored into a connector of the same " +
			"Dataverse environment: crmsync backup restore BACKUP --connector NAME."
	case len(complete) == 0:
		msg += "It has no complete backup, so the Dataverse rows cannot be rolled back to their state before the sync afterwards; take one first " +
			"with crmsync backup create " + name + " if that matters."
	default:
		newest := complete[0] // ListBackups is newest first
		msg += fmt.Sprintf("Its %d backup(s) stay on the control plane and can still be restored into a connector of the same Dataverse "+
			"environment, for a rollback: the newest is %s (%s, %d rows): crmsync backup restore %s --connector NAME.",
			len(complete), newest.ID, newest.CreatedAt.UTC().Format(time.RFC3339), newest.Rows, newest.ID)
	}
	return msg
}

func teamChangeMessage(before, after string) string {
	return fmt.Sprintf("team_id changes from %s to %s: the rows the agent writes are owned by team %s from now on, and the "+
		"agent re-syncs every table to reassign the rows already in Dataverse (one full read of each Salesforce table). "+
		"The team needs create, read, write, append and assign privileges on every destination table; for an active "+
		"connector they are checked now and again when the change is applied.", before, after, after)
}
