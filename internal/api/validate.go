package api

import (
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/google/uuid"
)

// The checks here are shared by the control plane's API (a connector as declared), the agent's configuration
// file and the lease's configuration, so one value means the same everywhere and a refusal names the field
// in the caller's terms ("salesforce.login_url", "tuning.status_interval").

// FieldError is a value refused by a check, naming the field.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Message }

// Invalid returns a FieldError.
func Invalid(field, format string, args ...any) *FieldError {
	return &FieldError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// Input limits of a connector's fields.
const (
	MaxName       = 64
	MaxURL        = 2048
	MaxClientID   = 256
	MaxUsername   = 256
	MaxSecret     = 4096
	MaxPrivateKey = 16 << 10
	MaxEnvName    = 128
	MaxPath       = 4096
	MaxHost       = 255
	MaxTableName  = 80
)

var (
	namePattern   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	envPattern    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	apiVerPattern = regexp.MustCompile(`^[0-9]{2,3}\.0$`)
	hostnameRe    = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$`)
	// ObjectNamePattern is a Salesforce API name: letters, digits and underscores, starting with a letter
	// (custom ones end in __c).
	ObjectNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	// LogicalNamePattern is a Dataverse logical name: letters, digits and underscores (publisher prefixes
	// like new_).
	LogicalNamePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
)

// CheckText checks a free-form string: within maxLen bytes, valid UTF-8, no control characters.
func CheckText(field, v string, maxLen int, required bool) *FieldError {
	switch {
	case v == "" && required:
		return Invalid(field, "%s is required", field)
	case len(v) > maxLen:
		return Invalid(field, "%s is %d bytes long; the limit is %d", field, len(v), maxLen)
	case !utf8.ValidString(v):
		return Invalid(field, "%s is not valid UTF-8", field)
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return Invalid(field, "%s contains a control character", field)
		}
	}
	return nil
}

// CheckMatch checks a string against a pattern; what describes the pattern in the message.
func CheckMatch(field, v string, maxLen int, re *regexp.Regexp, required bool, what string) *FieldError {
	if err := CheckText(field, v, maxLen, required); err != nil || v == "" {
		return err
	}
	if !re.MatchString(v) {
		return Invalid(field, "%s %q is not %s", field, v, what)
	}
	return nil
}

// CheckGUID checks a required GUID in its canonical 36-character form.
func CheckGUID(field, v string) *FieldError {
	if v == "" {
		return Invalid(field, "%s is required (a GUID such as 00000000-0000-0000-0000-000000000000)", field)
	}
	if len(v) != 36 || uuid.Validate(v) != nil {
		return Invalid(field, "%s %q is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", field, Truncate(v, 64))
	}
	return nil
}

// IsLoopback reports whether host is localhost or a loopback IP.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// schemeProblem is crmsync's one rule for the URLs it connects to: https, or plain http to a loopback host
// only (local emulators and tests). It says what is wrong with u, "" when nothing.
func schemeProblem(u *url.URL) string {
	switch {
	case u.Scheme == "https", u.Scheme == "http" && IsLoopback(u.Hostname()):
		return ""
	case u.Scheme == "http":
		return "must use https (plain http is accepted for loopback hosts only)"
	default:
		return "must be an https URL, not " + u.Scheme
	}
}

// CheckServiceURL checks a URL a client connects to (a service's endpoint, or one a token answer names): an
// absolute URL following crmsync's rule, https or plain http to a loopback host only.
func CheckServiceURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || !u.IsAbs() {
		return fmt.Errorf("%q is not an absolute URL", raw)
	}
	if p := schemeProblem(u); p != "" {
		return fmt.Errorf("%q %s", raw, p)
	}
	return nil
}

// CheckURL checks an absolute https URL without credentials, query or fragment; plain http is accepted for
// loopback hosts only (local emulators, tests).
func CheckURL(field, v string, required bool) *FieldError {
	if err := CheckText(field, v, MaxURL, required); err != nil || v == "" {
		return err
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || !u.IsAbs() {
		return Invalid(field, "%s %q is not an absolute URL such as https://login.salesforce.com", field, Truncate(v, 100))
	}
	if p := schemeProblem(u); p != "" {
		return Invalid(field, "%s %s", field, p)
	}
	if u.User != nil {
		return Invalid(field, "%s must not carry credentials", field)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return Invalid(field, "%s must not have a query or fragment", field)
	}
	return nil
}

// CheckAbsPath checks an optional absolute path (on the host that reads it).
func CheckAbsPath(field, v string) *FieldError {
	if err := CheckText(field, v, MaxPath, false); err != nil || v == "" {
		return err
	}
	if !strings.HasPrefix(v, "/") {
		return Invalid(field, "%s must be an absolute path on the agent's host", field)
	}
	return nil
}

// Truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// checkSecret checks one secret's three forms (inline, environment variable, file): at most one is given.
// It reports whether the secret will be available (given now, or already stored).
func checkSecret(prefix, name, inline, env, file string, inlineMax int, stored bool) (bool, *FieldError) {
	field := prefix + "." + name
	// Secrets may span lines (PEM keys), so only their size and encoding are checked; messages never echo
	// them.
	if len(inline) > inlineMax {
		return false, Invalid(field, "%s is %d bytes long; the limit is %d", field, len(inline), inlineMax)
	}
	if !utf8.ValidString(inline) {
		return false, Invalid(field, "%s is not valid UTF-8", field)
	}
	if err := CheckMatch(field+"_env", env, MaxEnvName, envPattern, false, "an environment variable name"); err != nil {
		return false, err
	}
	if err := CheckAbsPath(field+"_file", file); err != nil {
		return false, err
	}
	n := 0
	for _, v := range []string{inline, env, file} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		return false, Invalid(field, "give at most one of %s, %s_env and %s_file", field, field, field)
	}
	return n == 1 || stored, nil
}

// CheckPrivateKeyPEM checks that key material is a PEM private key (not a certificate, a public key or
// something else), naming what it holds otherwise. Nothing of the key is echoed.
func CheckPrivateKeyPEM(field string, b []byte) *FieldError {
	block, _ := pem.Decode(b)
	switch {
	case block == nil:
		return Invalid(field, "%s is not a PEM private key", field)
	case !strings.Contains(block.Type, "PRIVATE KEY"):
		return Invalid(field, "%s holds a PEM %s, not a private key", field, block.Type)
	}
	return nil
}

// Validate checks a connector as declared. stored lists the secrets already stored (on update), which satisfy
// a credential left empty. The first problem is returned as a *FieldError.
func (spec ConnectorSpec) Validate(stored []string) error {
	if err := spec.validate(stored); err != nil {
		return err
	}
	return nil
}

func (spec ConnectorSpec) validate(stored []string) *FieldError {
	has := func(name string) bool { return slices.Contains(stored, name) }
	if err := CheckMatch("name", spec.Name, MaxName, namePattern, true, "a name of letters, digits, '.', '_' and '-' starting with a letter or digit"); err != nil {
		return err
	}
	if err := CheckGUID("team_id", spec.TeamID); err != nil {
		return err
	}
	if err := spec.Salesforce.validate(has); err != nil {
		return err
	}
	if err := spec.Dataverse.validate(has); err != nil {
		return err
	}
	if spec.Tuning != nil {
		return spec.Tuning.validate()
	}
	return nil
}

// validate checks the Salesforce settings; has reports whether a write-only secret is stored.
func (sf SalesforceSettings) validate(has func(string) bool) *FieldError {
	if err := CheckURL("salesforce.login_url", sf.LoginURL, true); err != nil {
		return err
	}
	if err := CheckURL("salesforce.instance_url", sf.InstanceURL, false); err != nil {
		return err
	}
	if err := CheckMatch("salesforce.api_version", sf.APIVersion, 8, apiVerPattern, false, "a Salesforce API version such as 62.0"); err != nil {
		return err
	}
	if err := sf.validatePubSub(); err != nil {
		return err
	}
	if err := CheckText("salesforce.client_id", sf.ClientID, MaxClientID, true); err != nil {
		return err
	}
	if err := CheckText("salesforce.username", sf.Username, MaxUsername, false); err != nil {
		return err
	}
	hasSecret, err := checkSecret("salesforce", "client_secret", sf.ClientSecret, sf.ClientSecretEnv, sf.ClientSecretFile, MaxSecret, has(SecretSalesforceClientSecret))
	if err != nil {
		return err
	}
	hasKey, err := checkSecret("salesforce", "private_key", sf.PrivateKey, sf.PrivateKeyEnv, sf.PrivateKeyFile, MaxPrivateKey, has(SecretSalesforcePrivateKey))
	if err != nil {
		return err
	}
	if sf.PrivateKey != "" {
		if err := CheckPrivateKeyPEM("salesforce.private_key", []byte(sf.PrivateKey)); err != nil {
			return err
		}
	}
	if err := sf.validateAuth(hasSecret, hasKey); err != nil {
		return err
	}
	return CheckAbsPath("salesforce.ca_file", sf.CAFile)
}

// validatePubSub checks the Pub/Sub address: host:port, plaintext only toward a loopback host.
func (sf SalesforceSettings) validatePubSub() *FieldError {
	if sf.PubSubAddr == "" {
		if sf.PubSubPlaintext {
			return Invalid("salesforce.pubsub_plaintext", "salesforce.pubsub_plaintext needs a loopback salesforce.pubsub_addr")
		}
		return nil
	}
	host, port, err := net.SplitHostPort(sf.PubSubAddr)
	if err != nil || host == "" || port == "" || len(sf.PubSubAddr) > MaxHost+6 {
		return Invalid("salesforce.pubsub_addr", "salesforce.pubsub_addr %q is not host:port", Truncate(sf.PubSubAddr, 100))
	}
	if sf.PubSubPlaintext && !IsLoopback(host) {
		return Invalid("salesforce.pubsub_plaintext", "salesforce.pubsub_plaintext is allowed for a loopback pubsub_addr only")
	}
	return nil
}

// validateAuth checks that the auth flow has what it needs: a username and a private key for jwt_bearer, a
// client secret for client_credentials.
func (sf SalesforceSettings) validateAuth(hasSecret, hasKey bool) *FieldError {
	switch sf.Auth {
	case "jwt_bearer":
		if sf.Username == "" {
			return Invalid("salesforce.username", "salesforce.username is required with auth jwt_bearer")
		}
		if !hasKey {
			return Invalid("salesforce.private_key", "auth jwt_bearer needs one of salesforce.private_key, private_key_env or private_key_file")
		}
	case "client_credentials":
		if !hasSecret {
			return Invalid("salesforce.client_secret", "auth client_credentials needs one of salesforce.client_secret, client_secret_env or client_secret_file")
		}
	case "":
		return Invalid("salesforce.auth", "salesforce.auth is required: jwt_bearer or client_credentials")
	default:
		return Invalid("salesforce.auth", "salesforce.auth %q is not jwt_bearer or client_credentials", Truncate(sf.Auth, 40))
	}
	return nil
}

// validate checks the Dataverse settings; has reports whether a write-only secret is stored.
func (dv DataverseSettings) validate(has func(string) bool) *FieldError {
	if err := CheckURL("dataverse.environment_url", dv.EnvironmentURL, true); err != nil {
		return err
	}
	if err := CheckURL("dataverse.authority_url", dv.AuthorityURL, false); err != nil {
		return err
	}
	if err := CheckText("dataverse.tenant_id", dv.TenantID, MaxHost, true); err != nil {
		return err
	}
	if CheckGUID("dataverse.tenant_id", dv.TenantID) != nil && (!hostnameRe.MatchString(dv.TenantID) || !strings.Contains(dv.TenantID, ".")) {
		return Invalid("dataverse.tenant_id", "dataverse.tenant_id %q is neither a GUID nor a domain name", Truncate(dv.TenantID, 64))
	}
	if err := CheckGUID("dataverse.client_id", dv.ClientID); err != nil {
		return err
	}
	hasDV, err := checkSecret("dataverse", "client_secret", dv.ClientSecret, dv.ClientSecretEnv, dv.ClientSecretFile, MaxSecret, has(SecretDataverseClientSecret))
	if err != nil {
		return err
	}
	if !hasDV {
		return Invalid("dataverse.client_secret", "one of dataverse.client_secret, client_secret_env or client_secret_file is required")
	}
	if err := dv.validateAdditionalUsers(has); err != nil {
		return err
	}
	return CheckAbsPath("dataverse.ca_file", dv.CAFile)
}

// Names of the write-only secrets (ConnectorSpec's inline ones), as Connector.SecretsSet lists them. An
// additional Dataverse application user's is SecretDataverseAdditionalUserPrefix + its client id in lower case
// + ".client_secret" (DataverseApplicationUser.SecretName).
const (
	SecretSalesforceClientSecret        = "salesforce.client_secret"
	SecretSalesforcePrivateKey          = "salesforce.private_key"
	SecretDataverseClientSecret         = "dataverse.client_secret"
	SecretDataverseAdditionalUserPrefix = "dataverse.additional_application_users."
)

// MaxAdditionalUsers bounds dataverse.additional_application_users: 16 users in all, more than any
// environment's web servers make worth it (docs/scaling.md).
const MaxAdditionalUsers = 15

// validateAdditionalUsers checks dataverse.additional_application_users: each a GUID client id named once
// (the connector's own client_id included) with one way to its secret, or a stored one.
func (dv DataverseSettings) validateAdditionalUsers(has func(string) bool) *FieldError {
	const field = "dataverse.additional_application_users"
	if len(dv.AdditionalUsers) > MaxAdditionalUsers {
		return Invalid(field, "%s has %d users; the limit is %d (16 application users in all)", field, len(dv.AdditionalUsers), MaxAdditionalUsers)
	}
	seen := map[string]string{strings.ToLower(dv.ClientID): "dataverse.client_id"}
	for i, u := range dv.AdditionalUsers {
		prefix := fmt.Sprintf("%s[%d]", field, i)
		if err := CheckGUID(prefix+".client_id", u.ClientID); err != nil {
			return err
		}
		if first, dup := seen[strings.ToLower(u.ClientID)]; dup {
			return Invalid(prefix+".client_id", "%s.client_id %s is already %s: each application user is named once", prefix, u.ClientID, first)
		}
		seen[strings.ToLower(u.ClientID)] = prefix + ".client_id"
		ok, err := checkSecret(prefix, "client_secret", u.ClientSecret, u.ClientSecretEnv, u.ClientSecretFile, MaxSecret, has(u.SecretName()))
		if err != nil {
			return err
		}
		if !ok {
			return Invalid(prefix+".client_secret", "one of %s.client_secret, client_secret_env or client_secret_file is required", prefix)
		}
	}
	return nil
}
