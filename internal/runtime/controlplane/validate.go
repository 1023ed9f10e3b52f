package controlplane

import (
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
)

// Input limits. Every string the API accepts has one; the body cap bounds the rest.
const (
	maxName        = 64
	maxURL         = 2048
	maxClientID    = 256
	maxUsername    = 256
	maxSecret      = 4096
	maxPrivateKey  = 16 << 10
	maxEnvName     = 128
	maxPath        = 4096
	maxTableName   = 80
	maxColumnName  = 100
	maxColumns     = 500
	maxAgentID     = 128
	maxHost        = 255
	maxRecordID    = 18
	maxMessage     = 4096
	maxPayload     = 64 << 10
	maxBatch       = 1000
	maxStatusTable = 1000
)

var (
	namePattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	envPattern    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	apiVerPattern = regexp.MustCompile(`^[0-9]{2,3}\.0$`)
	// Salesforce API names: letters, digits and underscores, starting with a letter (custom ones end in __c).
	sfNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	// Dataverse logical names: letters, digits and underscores (publisher prefixes like new_).
	dvNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	agentIDRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]*$`)
	recordIDRe    = regexp.MustCompile(`^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$`)
	hostnameRe    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$`)
)

// text checks a free-form string: within max bytes, valid UTF-8, no control characters.
func text(field, v string, maxLen int, required bool) error {
	switch {
	case v == "" && required:
		return invalid(field, "%s is required", field)
	case len(v) > maxLen:
		return invalid(field, "%s is %d bytes long; the limit is %d", field, len(v), maxLen)
	case !utf8.ValidString(v):
		return invalid(field, "%s is not valid UTF-8", field)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return invalid(field, "%s contains a control character", field)
		}
	}
	return nil
}

func matches(field, v string, maxLen int, re *regexp.Regexp, required bool, what string) error {
	if err := text(field, v, maxLen, required); err != nil || v == "" {
		return err
	}
	if !re.MatchString(v) {
		return invalid(field, "%s %q is not %s", field, v, what)
	}
	return nil
}

// guid checks a GUID in its canonical 36-character form.
func guid(field, v string) error {
	if v == "" {
		return invalid(field, "%s is required (a GUID such as 00000000-0000-0000-0000-000000000000)", field)
	}
	if len(v) != 36 || uuid.Validate(v) != nil {
		return invalid(field, "%s %q is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", field, truncate(v, 64))
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// httpsURL checks an absolute https URL without credentials, query or fragment; plain http is accepted for
// loopback hosts only (local emulators, tests).
func httpsURL(field, v string, required bool) error {
	if err := text(field, v, maxURL, required); err != nil || v == "" {
		return err
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || !u.IsAbs() {
		return invalid(field, "%s %q is not an absolute URL such as https://login.salesforce.com", field, truncate(v, 100))
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	case u.Scheme == "http":
		return invalid(field, "%s must use https (plain http is accepted for loopback hosts only)", field)
	default:
		return invalid(field, "%s must be an https URL, not %s", field, u.Scheme)
	}
	if u.User != nil {
		return invalid(field, "%s must not carry credentials", field)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return invalid(field, "%s must not have a query or fragment", field)
	}
	return nil
}

func absPath(field, v string) error {
	if err := text(field, v, maxPath, false); err != nil || v == "" {
		return err
	}
	if !strings.HasPrefix(v, "/") {
		return invalid(field, "%s must be an absolute path on the agent's host", field)
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// secretRef checks one secret's three forms (inline, environment variable, file): at most one is given.
// has reports whether the secret will be available (given now or already stored).
func secretRef(prefix, name, inline, env, file string, inlineMax int, stored bool) (has bool, err error) {
	field := prefix + "." + name
	// Secrets may span lines (PEM keys), so only their size and encoding are checked; messages never echo
	// them.
	if len(inline) > inlineMax {
		return false, invalid(field, "%s is %d bytes long; the limit is %d", field, len(inline), inlineMax)
	}
	if !utf8.ValidString(inline) {
		return false, invalid(field, "%s is not valid UTF-8", field)
	}
	if err := matches(field+"_env", env, maxEnvName, envPattern, false, "an environment variable name"); err != nil {
		return false, err
	}
	if err := absPath(field+"_file", file); err != nil {
		return false, err
	}
	n := 0
	for _, v := range []string{inline, env, file} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		return false, invalid(field, "give at most one of %s, %s_env and %s_file", field, field, field)
	}
	return n == 1 || stored, nil
}

// validateConnector checks a connector spec. stored lists the secrets already stored (on update), which
// satisfy a credential left empty.
func validateConnector(spec api.ConnectorSpec, stored []string) error {
	has := func(name string) bool {
		for _, s := range stored {
			if s == name {
				return true
			}
		}
		return false
	}
	if err := matches("name", spec.Name, maxName, namePattern, true, "a name of letters, digits, '.', '_' and '-' starting with a letter or digit"); err != nil {
		return err
	}
	if err := guid("team_id", spec.TeamID); err != nil {
		return err
	}
	sf := spec.Salesforce
	if err := httpsURL("salesforce.login_url", sf.LoginURL, true); err != nil {
		return err
	}
	if err := httpsURL("salesforce.instance_url", sf.InstanceURL, false); err != nil {
		return err
	}
	if err := matches("salesforce.api_version", sf.APIVersion, 8, apiVerPattern, false, "a Salesforce API version such as 62.0"); err != nil {
		return err
	}
	if sf.PubSubAddr != "" {
		host, port, err := net.SplitHostPort(sf.PubSubAddr)
		if err != nil || host == "" || port == "" || len(sf.PubSubAddr) > maxHost+6 {
			return invalid("salesforce.pubsub_addr", "salesforce.pubsub_addr %q is not host:port", truncate(sf.PubSubAddr, 100))
		}
		if sf.PubSubPlaintext && !isLoopback(host) {
			return invalid("salesforce.pubsub_plaintext", "salesforce.pubsub_plaintext is allowed for a loopback pubsub_addr only")
		}
	} else if sf.PubSubPlaintext {
		return invalid("salesforce.pubsub_plaintext", "salesforce.pubsub_plaintext needs a loopback salesforce.pubsub_addr")
	}
	if err := text("salesforce.client_id", sf.ClientID, maxClientID, true); err != nil {
		return err
	}
	if err := text("salesforce.username", sf.Username, maxUsername, false); err != nil {
		return err
	}
	hasSecret, err := secretRef("salesforce", "client_secret", sf.ClientSecret, sf.ClientSecretEnv, sf.ClientSecretFile, maxSecret, has(store.SecretSalesforceClientSecret))
	if err != nil {
		return err
	}
	hasKey, err := secretRef("salesforce", "private_key", sf.PrivateKey, sf.PrivateKeyEnv, sf.PrivateKeyFile, maxPrivateKey, has(store.SecretSalesforcePrivateKey))
	if err != nil {
		return err
	}
	if sf.PrivateKey != "" {
		if block, _ := pem.Decode([]byte(sf.PrivateKey)); block == nil || !strings.Contains(block.Type, "PRIVATE KEY") {
			return invalid("salesforce.private_key", "salesforce.private_key is not a PEM private key")
		}
	}
	switch sf.Auth {
	case "jwt_bearer":
		if sf.Username == "" {
			return invalid("salesforce.username", "salesforce.username is required with auth jwt_bearer")
		}
		if !hasKey {
			return invalid("salesforce.private_key", "auth jwt_bearer needs one of salesforce.private_key, private_key_env or private_key_file")
		}
	case "client_credentials":
		if !hasSecret {
			return invalid("salesforce.client_secret", "auth client_credentials needs one of salesforce.client_secret, client_secret_env or client_secret_file")
		}
	case "":
		return invalid("salesforce.auth", "salesforce.auth is required: jwt_bearer or client_credentials")
	default:
		return invalid("salesforce.auth", "salesforce.auth %q is not jwt_bearer or client_credentials", truncate(sf.Auth, 40))
	}
	if err := absPath("salesforce.ca_file", sf.CAFile); err != nil {
		return err
	}

	dv := spec.Dataverse
	if err := httpsURL("dataverse.environment_url", dv.EnvironmentURL, true); err != nil {
		return err
	}
	if err := httpsURL("dataverse.authority_url", dv.AuthorityURL, false); err != nil {
		return err
	}
	// A tenant is named by its GUID or one of its domains (contoso.onmicrosoft.com).
	if err := text("dataverse.tenant_id", dv.TenantID, maxHost, true); err != nil {
		return err
	}
	if guid("dataverse.tenant_id", dv.TenantID) != nil && (!hostnameRe.MatchString(dv.TenantID) || !strings.Contains(dv.TenantID, ".")) {
		return invalid("dataverse.tenant_id", "dataverse.tenant_id %q is neither a GUID nor a domain name", truncate(dv.TenantID, 64))
	}
	if err := guid("dataverse.client_id", dv.ClientID); err != nil {
		return err
	}
	hasDV, err := secretRef("dataverse", "client_secret", dv.ClientSecret, dv.ClientSecretEnv, dv.ClientSecretFile, maxSecret, has(store.SecretDataverseClientSecret))
	if err != nil {
		return err
	}
	if !hasDV {
		return invalid("dataverse.client_secret", "one of dataverse.client_secret, client_secret_env or client_secret_file is required")
	}
	if err := absPath("dataverse.ca_file", dv.CAFile); err != nil {
		return err
	}
	if t := spec.Tuning; t != nil {
		for _, c := range []struct {
			field    string
			v, lo, h int
		}{
			{"tuning.batch_size", t.BatchSize, 0, 1000},
			{"tuning.write_concurrency", t.WriteConcurrency, 0, 64},
			{"tuning.page_size", t.PageSize, 0, 100000},
		} {
			if c.v < c.lo || c.v > c.h {
				return invalid(c.field, "%s is %d; it must be between 1 and %d (0 takes the default)", c.field, c.v, c.h)
			}
		}
		for _, c := range []struct {
			field string
			v     api.Duration
			max   time.Duration
		}{
			{"tuning.flush_interval", t.FlushInterval, time.Minute},
			{"tuning.status_interval", t.StatusInterval, time.Minute},
		} {
			if d := time.Duration(c.v); d < 0 || d > c.max {
				return invalid(c.field, "%s is %s; it must be between 0 and %s", c.field, d, c.max)
			}
		}
		if err := validateSafeguardTuning(t); err != nil {
			return err
		}
	}
	return nil
}

// secretChanges derives the store's secret changes from a spec: an inline value is stored; a secret now given
// by reference (*_env or *_file) drops the stored inline value, which would otherwise take precedence in the
// agent; a secret left empty everywhere keeps what is stored.
func secretChanges(spec api.ConnectorSpec) store.Secrets {
	out := store.Secrets{}
	for _, s := range []struct {
		name, inline, env, file string
	}{
		{store.SecretSalesforceClientSecret, spec.Salesforce.ClientSecret, spec.Salesforce.ClientSecretEnv, spec.Salesforce.ClientSecretFile},
		{store.SecretSalesforcePrivateKey, spec.Salesforce.PrivateKey, spec.Salesforce.PrivateKeyEnv, spec.Salesforce.PrivateKeyFile},
		{store.SecretDataverseClientSecret, spec.Dataverse.ClientSecret, spec.Dataverse.ClientSecretEnv, spec.Dataverse.ClientSecretFile},
	} {
		switch {
		case s.inline != "":
			out[s.name] = s.inline
		case s.env != "" || s.file != "":
			out[s.name] = ""
		}
	}
	return out
}

// validateMappingNames checks a mapping spec's names and sizes; the mapping rules themselves are
// mapping.Resolve and mapping.Validate's.
func validateMappingNames(spec api.MappingSpec) error {
	if err := matches("source_table", spec.SourceTable, maxTableName, sfNamePattern, true, "a Salesforce object API name such as Contact"); err != nil {
		return err
	}
	if err := matches("destination_table", spec.DestinationTable, maxTableName, dvNamePattern, false, "a Dataverse table logical name such as contact"); err != nil {
		return err
	}
	if len(spec.Columns) > maxColumns {
		return invalid("columns", "columns has %d entries; the limit is %d", len(spec.Columns), maxColumns)
	}
	dests := make([]string, 0, len(spec.Columns))
	for d := range spec.Columns {
		dests = append(dests, d)
	}
	sort.Strings(dests)
	for _, d := range dests {
		if err := matches("columns", d, maxColumnName, dvNamePattern, true, "a Dataverse column logical name"); err != nil {
			return invalid("columns."+truncate(d, maxColumnName), "column %q is not a Dataverse column logical name", truncate(d, maxColumnName))
		}
		if err := matches("columns."+d+".source", spec.Columns[d].Source, maxColumnName, sfNamePattern, true, "a Salesforce field API name"); err != nil {
			return err
		}
	}
	if len(spec.ExcludeColumns) > maxColumns {
		return invalid("exclude_columns", "exclude_columns has %d entries; the limit is %d", len(spec.ExcludeColumns), maxColumns)
	}
	for i, c := range spec.ExcludeColumns {
		if err := matches(fmt.Sprintf("exclude_columns[%d]", i), c, maxColumnName, dvNamePattern, true, "a Dataverse column logical name"); err != nil {
			return err
		}
	}
	return text("delete_behaviour", spec.DeleteBehaviour, 32, false)
}

func validateTable(field, v string) error {
	return matches(field, v, maxTableName, sfNamePattern, true, "a Salesforce object API name")
}

func validateRecordID(field, v string) error {
	return matches(field, v, maxRecordID, recordIDRe, true, "a 15- or 18-character Salesforce Id")
}

// clip shortens agent-reported text to the message limit: a long error message should not make an agent's
// report bounce.
func clip(s string) string { return truncate(s, maxMessage) }

// sanitizeStatus bounds what an agent reports.
func sanitizeStatus(st *api.Status) error {
	if len(st.Tables) > maxStatusTable {
		return invalid("status.tables", "status.tables has %d entries; the limit is %d", len(st.Tables), maxStatusTable)
	}
	if err := text("status.state", st.State, 32, false); err != nil {
		return err
	}
	st.Reason = clip(st.Reason)
	for i := range st.Tables {
		t := &st.Tables[i]
		if err := validateTable(fmt.Sprintf("status.tables[%d].table", i), t.Table); err != nil {
			return err
		}
		if err := text(fmt.Sprintf("status.tables[%d].destination", i), t.Destination, maxTableName, false); err != nil {
			return err
		}
		if err := text(fmt.Sprintf("status.tables[%d].phase", i), t.Phase, 32, false); err != nil {
			return err
		}
		t.Reason, t.LastError = clip(t.Reason), clip(t.LastError)
		if len(t.Recoveries) > 100 {
			t.Recoveries = t.Recoveries[len(t.Recoveries)-100:]
		}
		for j := range t.Recoveries {
			t.Recoveries[j] = clip(t.Recoveries[j])
		}
	}
	if len(st.Calls) > 200 {
		return invalid("status.calls", "status.calls has %d entries; the limit is 200", len(st.Calls))
	}
	for k := range st.Calls {
		if err := text("status.calls", k, 128, true); err != nil {
			return err
		}
	}
	return nil
}

func validateDeadLetter(field string, d *api.DeadLetter) error {
	if err := validateTable(field+".table", d.Table); err != nil {
		return err
	}
	if err := validateRecordID(field+".record_id", d.RecordID); err != nil {
		return err
	}
	if err := text(field+".operation", d.Operation, 32, true); err != nil {
		return err
	}
	if err := text(field+".code", d.Code, 128, true); err != nil {
		return err
	}
	// The payload is shown to people, never replayed (a retry re-reads the record), so a long one is cut
	// rather than refused: refusing would lose the dead letter.
	if len(d.Payload) > maxPayload {
		d.Payload = truncate(d.Payload, maxPayload) + " (truncated)"
	}
	if d.Attempts < 0 {
		return invalid(field+".attempts", "%s.attempts must not be negative", field)
	}
	d.Reason = clip(d.Reason)
	return nil
}
