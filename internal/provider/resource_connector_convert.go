package provider

import (
	"slices"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// toSpec converts the model to the API's connector spec (the body of create and update).
func (m *connectorModel) toSpec() api.ConnectorSpec {
	spec := api.ConnectorSpec{Name: m.Name.ValueString(), TeamID: m.TeamID.ValueString()}
	if sf := m.Salesforce; sf != nil {
		spec.Salesforce = api.SalesforceSettings{
			LoginURL:         sf.LoginURL.ValueString(),
			InstanceURL:      sf.InstanceURL.ValueString(),
			APIVersion:       sf.APIVersion.ValueString(),
			PubSubAddr:       sf.PubSubAddr.ValueString(),
			PubSubPlaintext:  sf.PubSubPlaintext.ValueBool(),
			Auth:             sf.Auth.ValueString(),
			ClientID:         sf.ClientID.ValueString(),
			Username:         sf.Username.ValueString(),
			ClientSecret:     sf.ClientSecret.ValueString(),
			ClientSecretEnv:  sf.ClientSecretEnv.ValueString(),
			ClientSecretFile: sf.ClientSecretFile.ValueString(),
			PrivateKey:       sf.PrivateKey.ValueString(),
			PrivateKeyEnv:    sf.PrivateKeyEnv.ValueString(),
			PrivateKeyFile:   sf.PrivateKeyFile.ValueString(),
			CAFile:           sf.CAFile.ValueString(),
		}
	}
	if dv := m.Dataverse; dv != nil {
		spec.Dataverse = api.DataverseSettings{
			EnvironmentURL:   dv.EnvironmentURL.ValueString(),
			AuthorityURL:     dv.AuthorityURL.ValueString(),
			TenantID:         dv.TenantID.ValueString(),
			ClientID:         dv.ClientID.ValueString(),
			ClientSecret:     dv.ClientSecret.ValueString(),
			ClientSecretEnv:  dv.ClientSecretEnv.ValueString(),
			ClientSecretFile: dv.ClientSecretFile.ValueString(),
			CAFile:           dv.CAFile.ValueString(),
		}
		for _, u := range dv.AdditionalUsers {
			spec.Dataverse.AdditionalUsers = append(spec.Dataverse.AdditionalUsers, api.DataverseApplicationUser{
				ClientID:         u.ClientID.ValueString(),
				ClientSecret:     u.ClientSecret.ValueString(),
				ClientSecretEnv:  u.ClientSecretEnv.ValueString(),
				ClientSecretFile: u.ClientSecretFile.ValueString(),
			})
		}
	}
	if t := m.Tuning; t != nil {
		spec.Tuning = &api.Tuning{
			BatchSize:         int(t.BatchSize.ValueInt64()),
			FlushInterval:     durationToAPI(t.FlushInterval),
			WriteConcurrency:  int(t.WriteConcurrency.ValueInt64()),
			PageSize:          int(t.PageSize.ValueInt64()),
			StatusInterval:    durationToAPI(t.StatusInterval),
			OutOfBandInterval: durationToAPI(t.OutOfBandInterval),
			ReconcileInterval: durationToAPI(t.ReconcileInterval),
		}
	}
	return spec
}

// tuningFromAPI converts the stored tuning. Each duration keeps prior's spelling when it means the same
// duration ("360m" and the API's "6h0m0s"), so neither a refresh nor an apply shows a diff; a value set out of
// band or imported takes Go's short form. A tuning with nothing set is null, unless prior declared it empty.
func tuningFromAPI(t *api.Tuning, prior *tuningModel) *tuningModel {
	if t == nil || *t == (api.Tuning{}) {
		if prior != nil && prior.empty() {
			return prior
		}
		return nil
	}
	var p tuningModel
	if prior != nil {
		p = *prior
	}
	return &tuningModel{
		BatchSize:         int64OrNull(int64(t.BatchSize)),
		FlushInterval:     durationFromAPI(t.FlushInterval, p.FlushInterval),
		WriteConcurrency:  int64OrNull(int64(t.WriteConcurrency)),
		PageSize:          int64OrNull(int64(t.PageSize)),
		StatusInterval:    durationFromAPI(t.StatusInterval, p.StatusInterval),
		OutOfBandInterval: durationFromAPI(t.OutOfBandInterval, p.OutOfBandInterval),
		ReconcileInterval: durationFromAPI(t.ReconcileInterval, p.ReconcileInterval),
	}
}

// empty reports whether no attribute of the tuning is set (`tuning = {}`).
func (t *tuningModel) empty() bool {
	return t.BatchSize.IsNull() && t.FlushInterval.IsNull() && t.WriteConcurrency.IsNull() && t.PageSize.IsNull() &&
		t.StatusInterval.IsNull() && t.OutOfBandInterval.IsNull() && t.ReconcileInterval.IsNull()
}

func int64OrNull(v int64) types.Int64 {
	if v == 0 {
		return types.Int64Null()
	}
	return types.Int64Value(v)
}

// fromAPI sets the model from a stored connector. Inline secrets are never returned, so each keeps the
// value of prior (the plan after a write, the state on refresh) while the control plane says it is stored;
// a secret removed out of band becomes null so the plan sets it again.
func (m *connectorModel) fromAPI(c *api.Connector, prior *connectorModel) {
	m.ID = types.StringValue(c.ID)
	m.Name = types.StringValue(c.Name)
	m.TeamID = types.StringValue(c.TeamID)
	stored := func(name string) bool { return slices.Contains(c.SecretsSet, name) }
	keep := func(name string, v types.String) types.String {
		if v.IsNull() || v.IsUnknown() || !stored(name) {
			return types.StringNull()
		}
		return v
	}
	// A write-only secret's version stays while the control plane holds the secret; once it does not (removed out
	// of band), the version becomes null so the next plan sends the configured value again.
	keepVersion := func(name string, v types.Int64) types.Int64 {
		if v.IsNull() || v.IsUnknown() || !stored(name) {
			return types.Int64Null()
		}
		return v
	}
	var priorSF salesforceModel
	var priorDV dataverseModel
	if prior != nil && prior.Salesforce != nil {
		priorSF = *prior.Salesforce
	}
	if prior != nil && prior.Dataverse != nil {
		priorDV = *prior.Dataverse
	}
	sf := c.Salesforce
	apiVersion := sf.APIVersion
	if apiVersion == "" {
		apiVersion = defaultSalesforceAPIVersion
	}
	m.Salesforce = &salesforceModel{
		LoginURL:              types.StringValue(sf.LoginURL),
		InstanceURL:           stringOrNull(sf.InstanceURL),
		APIVersion:            types.StringValue(apiVersion),
		PubSubAddr:            stringOrNull(sf.PubSubAddr),
		PubSubPlaintext:       types.BoolValue(sf.PubSubPlaintext),
		Auth:                  types.StringValue(sf.Auth),
		ClientID:              types.StringValue(sf.ClientID),
		Username:              stringOrNull(sf.Username),
		ClientSecret:          keep(secretSalesforceClientSecret, priorSF.ClientSecret),
		ClientSecretEnv:       stringOrNull(sf.ClientSecretEnv),
		ClientSecretFile:      stringOrNull(sf.ClientSecretFile),
		ClientSecretWO:        types.StringNull(),
		ClientSecretWOVersion: keepVersion(secretSalesforceClientSecret, priorSF.ClientSecretWOVersion),
		PrivateKey:            keep(secretSalesforcePrivateKey, priorSF.PrivateKey),
		PrivateKeyEnv:         stringOrNull(sf.PrivateKeyEnv),
		PrivateKeyFile:        stringOrNull(sf.PrivateKeyFile),
		PrivateKeyWO:          types.StringNull(),
		PrivateKeyWOVersion:   keepVersion(secretSalesforcePrivateKey, priorSF.PrivateKeyWOVersion),
		CAFile:                stringOrNull(sf.CAFile),
	}
	dv := c.Dataverse
	m.Dataverse = &dataverseModel{
		EnvironmentURL:        types.StringValue(dv.EnvironmentURL),
		AuthorityURL:          stringOrNull(dv.AuthorityURL),
		TenantID:              types.StringValue(dv.TenantID),
		ClientID:              types.StringValue(dv.ClientID),
		ClientSecret:          keep(secretDataverseClientSecret, priorDV.ClientSecret),
		ClientSecretEnv:       stringOrNull(dv.ClientSecretEnv),
		ClientSecretFile:      stringOrNull(dv.ClientSecretFile),
		ClientSecretWO:        types.StringNull(),
		ClientSecretWOVersion: keepVersion(secretDataverseClientSecret, priorDV.ClientSecretWOVersion),
		CAFile:                stringOrNull(dv.CAFile),
	}
	for _, u := range dv.AdditionalUsers {
		// Each user's secret and version follow it by client id (the list may have been reordered).
		var pu applicationUserModel
		if p := findUser(priorDV.AdditionalUsers, u.ClientID); p != nil {
			pu = *p
		}
		name := u.SecretName()
		m.Dataverse.AdditionalUsers = append(m.Dataverse.AdditionalUsers, applicationUserModel{
			ClientID:              keepSpelling(u.ClientID, pu.ClientID),
			ClientSecret:          keep(name, pu.ClientSecret),
			ClientSecretEnv:       stringOrNull(u.ClientSecretEnv),
			ClientSecretFile:      stringOrNull(u.ClientSecretFile),
			ClientSecretWO:        types.StringNull(),
			ClientSecretWOVersion: keepVersion(name, pu.ClientSecretWOVersion),
		})
	}
	var priorTuning *tuningModel
	if prior != nil {
		priorTuning = prior.Tuning
	}
	m.Tuning = tuningFromAPI(c.Tuning, priorTuning)
}

// secrets returns the inline secret values of the model, for log masking.
func (m *connectorModel) secrets() []string {
	var out []string
	if sf := m.Salesforce; sf != nil {
		out = append(out, sf.ClientSecret.ValueString(), sf.PrivateKey.ValueString(), sf.ClientSecretWO.ValueString(), sf.PrivateKeyWO.ValueString())
	}
	if dv := m.Dataverse; dv != nil {
		out = append(out, dv.ClientSecret.ValueString(), dv.ClientSecretWO.ValueString())
		for _, u := range dv.AdditionalUsers {
			out = append(out, u.ClientSecret.ValueString(), u.ClientSecretWO.ValueString())
		}
	}
	return out
}

// findUser returns the user of users with clientID (GUIDs compare in any case), or nil.
func findUser(users []applicationUserModel, clientID string) *applicationUserModel {
	for i := range users {
		if strings.EqualFold(users[i].ClientID.ValueString(), clientID) {
			return &users[i]
		}
	}
	return nil
}

// keepSpelling returns prior when it spells v in another case (a GUID), so that a refresh shows no diff.
func keepSpelling(v string, prior types.String) types.String {
	if !prior.IsNull() && !prior.IsUnknown() && strings.EqualFold(prior.ValueString(), v) {
		return prior
	}
	return types.StringValue(v)
}

// writeOnlySecret is one write-only secret as a create or update sees it.
type writeOnlySecret struct {
	value          types.String // from the configuration
	version, prior types.Int64  // planned and prior (state) versions
	target         *string      // the spec field it is sent in
}

// addWriteOnly puts the write-only secrets of the configuration into the spec when the control plane must get
// them: at create (prior nil), and on update when the secret's *_wo_version changed. Otherwise the field stays
// empty, which the API reads as "keep the stored value".
func addWriteOnly(spec *api.ConnectorSpec, config, plan, prior *connectorModel) {
	var list []writeOnlySecret
	if sf, psf := config.Salesforce, plan.Salesforce; sf != nil && psf != nil {
		var old salesforceModel
		if prior != nil && prior.Salesforce != nil {
			old = *prior.Salesforce
		}
		list = append(list,
			writeOnlySecret{sf.ClientSecretWO, psf.ClientSecretWOVersion, old.ClientSecretWOVersion, &spec.Salesforce.ClientSecret},
			writeOnlySecret{sf.PrivateKeyWO, psf.PrivateKeyWOVersion, old.PrivateKeyWOVersion, &spec.Salesforce.PrivateKey})
	}
	if dv, pdv := config.Dataverse, plan.Dataverse; dv != nil && pdv != nil {
		var old dataverseModel
		if prior != nil && prior.Dataverse != nil {
			old = *prior.Dataverse
		}
		list = append(list, writeOnlySecret{dv.ClientSecretWO, pdv.ClientSecretWOVersion, old.ClientSecretWOVersion, &spec.Dataverse.ClientSecret})
		// Additional users by client id: the spec's list is the plan's, in its order.
		for i := range spec.Dataverse.AdditionalUsers {
			target := &spec.Dataverse.AdditionalUsers[i]
			cu, pu := findUser(dv.AdditionalUsers, target.ClientID), findUser(pdv.AdditionalUsers, target.ClientID)
			if cu == nil || pu == nil {
				continue
			}
			oldVersion := types.Int64Null() // a user new to the connector gets its secret, as at create
			if ou := findUser(old.AdditionalUsers, target.ClientID); ou != nil {
				oldVersion = ou.ClientSecretWOVersion
			}
			list = append(list, writeOnlySecret{cu.ClientSecretWO, pu.ClientSecretWOVersion, oldVersion, &target.ClientSecret})
		}
	}
	for _, w := range list {
		if w.value.IsNull() || w.value.IsUnknown() {
			continue
		}
		if prior == nil || !w.version.Equal(w.prior) {
			*w.target = w.value.ValueString()
		}
	}
}
