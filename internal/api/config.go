package api

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// Config is one connector's agent configuration: what `crmsync agent --config FILE` reads (JSON or YAML,
// see docs/agent.md) and what the control plane hands an agent with its lease. Secrets are referenced by
// environment variable (*_env) or file (*_file) and resolved on the agent's own host; inline values are
// accepted for the control plane's lease but never required. Each table carries its effective columns,
// resolved once by whoever made the config (Resolve): the control plane when it stores a revision, LoadConfig
// when it reads a file; the agent compiles what it is given.
type Config struct {
	Connector  string             `json:"connector" crmsync:"required"`
	Revision   int64              `json:"revision,omitempty"`
	Salesforce SalesforceConfig   `json:"salesforce" crmsync:"required"`
	Dataverse  DataverseConfig    `json:"dataverse" crmsync:"required"`
	TeamID     string             `json:"team_id" crmsync:"required"`
	Tables     []mapping.Resolved `json:"tables" crmsync:"required"`
	Tuning     Tuning             `json:"tuning,omitzero"`
}

// SalesforceConfig says how to reach and authenticate to the org.
type SalesforceConfig struct {
	LoginURL    string `json:"login_url" crmsync:"required"`
	InstanceURL string `json:"instance_url,omitempty"`
	APIVersion  string `json:"api_version,omitempty"`
	// PubSubAddr is the Pub/Sub API host:port; api.pubsub.salesforce.com:7443 by default.
	PubSubAddr string `json:"pubsub_addr,omitempty"`
	// PubSubPlaintext connects without TLS (loopback only; for local emulators).
	PubSubPlaintext  bool   `json:"pubsub_plaintext,omitempty"`
	Auth             string `json:"auth" crmsync:"required"` // jwt_bearer or client_credentials
	ClientID         string `json:"client_id" crmsync:"required"`
	Username         string `json:"username,omitempty"`
	ClientSecret     string `json:"client_secret,omitempty"`
	ClientSecretEnv  string `json:"client_secret_env,omitempty"`
	ClientSecretFile string `json:"client_secret_file,omitempty"`
	PrivateKey       string `json:"private_key,omitempty"`
	PrivateKeyEnv    string `json:"private_key_env,omitempty"`
	PrivateKeyFile   string `json:"private_key_file,omitempty"`
	CAFile           string `json:"ca_file,omitempty"`
}

// DataverseConfig says how to reach and authenticate to the environment.
type DataverseConfig struct {
	EnvironmentURL   string `json:"environment_url" crmsync:"required"`
	AuthorityURL     string `json:"authority_url,omitempty"`
	TenantID         string `json:"tenant_id" crmsync:"required"`
	ClientID         string `json:"client_id" crmsync:"required"`
	ClientSecret     string `json:"client_secret,omitempty"`
	ClientSecretEnv  string `json:"client_secret_env,omitempty"`
	ClientSecretFile string `json:"client_secret_file,omitempty"`
	CAFile           string `json:"ca_file,omitempty"`
	// AdditionalUsers are more application users to write with (DataverseSettings.AdditionalUsers).
	AdditionalUsers []DataverseApplicationUser `json:"additional_application_users,omitempty"`
}

// Tuning holds batching and concurrency settings; zero values take the defaults.
type Tuning struct {
	// BatchSize is the number of rows per Dataverse write (UpsertMultiple targets or $batch operations).
	BatchSize int `json:"batch_size,omitempty"`
	// FlushInterval bounds how long a change waits to be written: a window is written as soon as its table's
	// writer is free and the change windows' share of the request budget allows (group commit).
	FlushInterval Duration `json:"flush_interval,omitempty"`
	// WriteConcurrency is the number of Dataverse writes in flight per table.
	WriteConcurrency int `json:"write_concurrency,omitempty"`
	// PageSize is the Bulk API results page size (maxRecords); a restart re-reads at most one page.
	PageSize int `json:"page_size,omitempty"`
	// StatusInterval is how often status is reported.
	StatusInterval Duration `json:"status_interval,omitempty"`
	// OutOfBandInterval is how often each streaming table is checked for rows changed in Dataverse by
	// someone other than the agent; negative turns the check off.
	OutOfBandInterval Duration `json:"out_of_band_interval,omitempty"`
	// ReconcileInterval is how often each streaming table is reconciled (counts and checksums of both
	// sides); negative turns the periodic reconciliation off (on-demand ones still run).
	ReconcileInterval Duration `json:"reconcile_interval,omitempty"`
}

// Defaults, chosen by measurement (docs/benchmarks.md).
const (
	DefaultBatchSize        = 1000
	DefaultFlushInterval    = 100 * time.Millisecond
	DefaultWriteConcurrency = 4
	DefaultPageSize         = 50000
	DefaultStatusInterval   = time.Second
	DefaultPubSubAddr       = "api.pubsub.salesforce.com:7443"
	// DefaultOutOfBandInterval costs one Dataverse request per table per check when nothing changed.
	DefaultOutOfBandInterval = time.Minute
	// DefaultReconcileInterval: a reconciliation reads both sides in full (one Bulk query, Dataverse pages
	// of 5,000 rows), so it runs a few times a day.
	DefaultReconcileInterval = 6 * time.Hour
)

// WithDefaults fills zero fields with the defaults.
func (t *Tuning) WithDefaults() Tuning {
	out := *t
	if out.BatchSize <= 0 {
		out.BatchSize = DefaultBatchSize
	}
	if out.FlushInterval <= 0 {
		out.FlushInterval = Duration(DefaultFlushInterval)
	}
	if out.WriteConcurrency <= 0 {
		out.WriteConcurrency = DefaultWriteConcurrency
	}
	if out.PageSize <= 0 {
		out.PageSize = DefaultPageSize
	}
	if out.StatusInterval <= 0 {
		out.StatusInterval = Duration(DefaultStatusInterval)
	}
	if out.OutOfBandInterval == 0 {
		out.OutOfBandInterval = Duration(DefaultOutOfBandInterval)
	}
	if out.ReconcileInterval == 0 {
		out.ReconcileInterval = Duration(DefaultReconcileInterval)
	}
	return out
}

// Duration is a time.Duration written as a Go duration string ("100ms") in JSON and YAML.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %s: %w", b, err)
	}
	*d = Duration(v)
	return nil
}

// Validate checks the configuration and every table mapping statically; it returns every problem at once,
// each naming its key. The connection settings and the tuning go through the checks of a declared connector
// (ConnectorSpec.Validate and the table of bounds), so the file and the API accept the same values.
func (c *Config) Validate() error { return errors.Join(c.Problems()...) }

// Spec is the configuration as a declared connector (the name is the connector's), for the checks the two
// share.
func (c *Config) Spec() ConnectorSpec {
	return ConnectorSpec{Name: c.Connector, TeamID: c.TeamID, Tuning: &c.Tuning,
		Salesforce: SalesforceSettings{LoginURL: c.Salesforce.LoginURL, InstanceURL: c.Salesforce.InstanceURL,
			APIVersion: c.Salesforce.APIVersion, PubSubAddr: c.Salesforce.PubSubAddr, PubSubPlaintext: c.Salesforce.PubSubPlaintext,
			Auth: c.Salesforce.Auth, ClientID: c.Salesforce.ClientID, Username: c.Salesforce.Username,
			ClientSecret: c.Salesforce.ClientSecret, ClientSecretEnv: c.Salesforce.ClientSecretEnv, ClientSecretFile: c.Salesforce.ClientSecretFile,
			PrivateKey: c.Salesforce.PrivateKey, PrivateKeyEnv: c.Salesforce.PrivateKeyEnv, PrivateKeyFile: c.Salesforce.PrivateKeyFile,
			CAFile: c.Salesforce.CAFile},
		Dataverse: DataverseSettings{EnvironmentURL: c.Dataverse.EnvironmentURL, AuthorityURL: c.Dataverse.AuthorityURL,
			TenantID: c.Dataverse.TenantID, ClientID: c.Dataverse.ClientID, ClientSecret: c.Dataverse.ClientSecret,
			ClientSecretEnv: c.Dataverse.ClientSecretEnv, ClientSecretFile: c.Dataverse.ClientSecretFile, CAFile: c.Dataverse.CAFile,
			AdditionalUsers: c.Dataverse.AdditionalUsers},
	}
}

// Problems is Validate's list of problems.
func (c *Config) Problems() []error {
	var errs []error
	// The connector's name labels its logs and status here: any text, unlike a declared connector's name.
	if fe := CheckText("connector", c.Connector, 256, true); fe != nil {
		errs = append(errs, fe)
	}
	spec := c.Spec()
	spec.Name = "connector"
	if fe := spec.validate(nil); fe != nil {
		field, msg := fe.Field, fe.Message
		if field == "team_id" && c.TeamID == "" {
			msg = "team_id is required: the Dataverse team that owns the synced rows"
		}
		errs = append(errs, &FieldError{Field: field, Message: msg})
	}
	if len(c.Tables) == 0 {
		errs = append(errs, errors.New("tables: at least one table mapping is required"))
	}
	seen := map[string]bool{}
	synced := c.SyncedTables()
	for i, t := range c.Tables {
		field := fmt.Sprintf("tables[%d]", i)
		if fe := CheckMatch(field+".source_table", t.SourceTable, MaxTableName, ObjectNamePattern, true, "a Salesforce object API name such as Contact"); fe != nil {
			errs = append(errs, fe)
			continue
		}
		if fe := CheckMatch(field+".destination_table", t.DestinationTable, MaxTableName, LogicalNamePattern, false, "a Dataverse table logical name such as contact"); fe != nil {
			errs = append(errs, fe)
			continue
		}
		key := strings.ToLower(t.SourceTable)
		if seen[key] {
			errs = append(errs, fmt.Errorf("%s: %s is mapped twice", field, t.SourceTable))
		}
		seen[key] = true
		if len(t.EffectiveColumns) == 0 {
			errs = append(errs, fmt.Errorf("%s (%s): effective_columns is empty: the config was not resolved (Config.Resolve; the control plane and LoadConfig resolve every config they make)", field, t.SourceTable))
		}
		_, probs := mapping.Check(t.TableConfig, synced, nil)
		for _, p := range probs.Errors() {
			errs = append(errs, fmt.Errorf("%s (%s): %s: %s", field, t.SourceTable, p.Path, p.Message))
		}
	}
	return errs
}

// Resolve fills every table's effective columns, resolving its declaration among the connector's other
// tables (mapping.ResolveAll).
func (c *Config) Resolve() { c.Tables = mapping.ResolveAll(mapping.Declared(c.Tables)) }

// SyncedTables maps each source object to its destination table.
func (c *Config) SyncedTables() mapping.Siblings {
	out := make(mapping.Siblings, len(c.Tables))
	for _, t := range c.Tables {
		out[t.SourceTable] = t.Destination()
	}
	return out
}
