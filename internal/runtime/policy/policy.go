// Package policy holds the two policies that keep a connector's declaration from reaching what its operator
// did not approve: where crmsync may connect (Hosts) and which credential references it may resolve on a
// host (Refs).
//
// Contracts:
//   - Hosts: by default the control plane and its agents connect only to the hosts of the real services:
//     Salesforce (login, test, My Domain and instance hosts, the Pub/Sub API: *.salesforce.com, and the
//     Government Cloud's *.salesforce.mil), Microsoft Entra ID's authorities (login.microsoftonline.com,
//     .us, login.partner.microsoftonline.cn, login.chinacloudapi.cn) and Dataverse environments
//     (*.dynamics.com, *.microsoftdynamics.us, *.appsplatform.us, *.dynamics.cn), each field to its own
//     service. Anything else (a private endpoint, a proxy, the sandbox) must be allowed by the operator
//     (crmsync serve --allow-host). Loopback is not special: 127.0.0.1 is refused unless allowed. The check
//     runs when a connector is declared (a 400 naming the field) and on every outbound request (a redirect
//     or a token answer's instance_url cannot lead elsewhere).
//   - Refs: a *_file, *_env or ca_file reference is resolved only inside what the operator named (crmsync
//     serve --allow-ref-dir, --allow-ref-env-prefix). Some are refused whatever is allowed: the control
//     plane's data directory (its secret.key encrypts every stored secret), its token file, the API token's
//     variable (CRMSYNC_TOKEN) and the host's password databases. A file is checked again when read, after
//     its symbolic links are resolved, so a link inside an allowed directory cannot lead outside it.
//   - A zero Refs allows nothing; Unrestricted (the standalone agent, whose file its own operator wrote)
//     allows everything but the always-refused.
package policy

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

// Service is the kind of endpoint a connector field names.
type Service int

// Services a connector reaches.
const (
	Salesforce Service = iota // login_url, instance_url, pubsub_addr
	EntraID                   // authority_url
	Dataverse                 // environment_url
)

func (s Service) String() string {
	return [...]string{"Salesforce", "Microsoft Entra ID", "Dataverse"}[s]
}

// defaultHosts are the real services' host patterns, per service.
var defaultHosts = map[Service][]string{
	Salesforce: {"*.salesforce.com", "*.salesforce.mil"},
	EntraID:    {"login.microsoftonline.com", "login.microsoftonline.us", "login.partner.microsoftonline.cn", "login.chinacloudapi.cn"},
	Dataverse:  {"*.dynamics.com", "*.microsoftdynamics.us", "*.appsplatform.us", "*.dynamics.cn"},
}

// DefaultHosts lists the real services' host patterns of a service (for docs and messages).
func DefaultHosts(s Service) []string { return slices.Clone(defaultHosts[s]) }

// Hosts is the outbound destination policy: the real services' hosts plus the operator's Allow patterns,
// each "host", "*.domain" (any subdomain), optionally with ":port" ("127.0.0.1:8443").
type Hosts struct {
	Allow []string
}

// ParseHostPattern checks one --allow-host pattern.
func ParseHostPattern(p string) error {
	host, port := splitPattern(p)
	h := strings.TrimPrefix(host, "*.")
	if h == "" || strings.ContainsAny(h, "/*@ ") || (port != "" && strings.Trim(port, "0123456789") != "") {
		return fmt.Errorf("%q is not a host pattern: give a host (127.0.0.1, crm.example.com), *.domain, or either with :port", p)
	}
	return nil
}

func splitPattern(p string) (host, port string) {
	if h, pt, err := net.SplitHostPort(p); err == nil {
		return strings.ToLower(h), pt
	}
	return strings.ToLower(strings.Trim(p, "[]")), ""
}

func match(pattern, host, port string) bool {
	ph, pp := splitPattern(pattern)
	if pp != "" && pp != port {
		return false
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if suffix, ok := strings.CutPrefix(ph, "*."); ok {
		return strings.HasSuffix(host, "."+suffix)
	}
	return host == ph
}

// allowed reports whether the service's defaults or the operator allow host:port.
func (h Hosts) allowed(s Service, host, port string) bool {
	for _, p := range defaultHosts[s] {
		if match(p, host, port) {
			return true
		}
	}
	return h.allowedByOperator(host, port)
}

func (h Hosts) allowedByOperator(host, port string) bool {
	for _, p := range h.Allow {
		if match(p, host, port) {
			return true
		}
	}
	return false
}

// AllowedAny reports whether host:port is a real service's host of any kind, or allowed by the operator:
// the check of outbound requests, which do not know which field led to them.
func (h Hosts) AllowedAny(host, port string) bool {
	for s := range defaultHosts {
		if h.allowed(s, host, port) {
			return true
		}
	}
	return h.allowedByOperator(host, port)
}

func portOf(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if u.Scheme == "http" {
		return "80"
	}
	return "443"
}

// CheckURL refuses a URL field whose host the policy does not allow for the service (an empty URL passes:
// the field takes its default, a real service's host).
func (h Hosts) CheckURL(field string, s Service, raw string) *api.FieldError {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return api.Invalid(field, "%s is not a URL", field)
	}
	return h.check(field, s, u.Hostname(), portOf(u))
}

// CheckAddr refuses a host:port field (pubsub_addr) the policy does not allow for the service.
func (h Hosts) CheckAddr(field string, s Service, addr string) *api.FieldError {
	if addr == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return api.Invalid(field, "%s is not host:port", field)
	}
	return h.check(field, s, host, port)
}

func (h Hosts) check(field string, s Service, host, port string) *api.FieldError {
	if h.allowed(s, host, port) {
		return nil
	}
	return api.Invalid(field, "%s: %s is not an allowed destination: %s hosts are %s; any other host must be allowed by the control plane's operator (crmsync serve --allow-host %s)",
		field, net.JoinHostPort(host, port), s, strings.Join(defaultHosts[s], ", "), host)
}

// ErrRefused is wrapped by the errors of Guard and Dial checks.
var ErrRefused = errors.New("refused by the destination policy")

// CheckHost is what clients call before connecting: nil when host:port is allowed.
func (h Hosts) CheckHost(host, port string) error {
	if h.AllowedAny(host, port) {
		return nil
	}
	return fmt.Errorf("connecting to %s: %w (allow it with crmsync serve --allow-host)", net.JoinHostPort(host, port), ErrRefused)
}

// Refs is the reference policy (see the package comment).
type Refs struct {
	// Dirs are the directories *_file and ca_file references may be in.
	Dirs []string
	// EnvPrefixes are the prefixes *_env references may start with.
	EnvPrefixes []string
	// DenyPaths are refused whatever Dirs say (the data directory, the token file).
	DenyPaths []string
	// DenyEnv are variable names refused whatever EnvPrefixes say.
	DenyEnv []string
	// Unrestricted allows every file and variable but the refused ones (the standalone agent).
	Unrestricted bool
}

// TokenEnv is the API token's variable, never a reference.
const TokenEnv = "CRMSYNC_TOKEN" //nolint:gosec // G101: the name of the variable, not a credential

// systemDeny are files no reference may name, whatever the operator allowed.
var systemDeny = []string{"/etc/shadow", "/etc/gshadow", "/etc/master.passwd", "/proc", "/sys"}

func within(path, dir string) bool {
	dir = filepath.Clean(dir)
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, string(filepath.Separator))+string(filepath.Separator))
}

// allowsPath reports why a cleaned absolute path is refused ("" when allowed).
func (r Refs) refusePath(p string) string {
	for _, d := range append(slices.Clone(systemDeny), r.DenyPaths...) {
		if within(p, d) {
			return "it is inside " + d + ", which no reference may name"
		}
	}
	if r.Unrestricted {
		return ""
	}
	for _, d := range r.Dirs {
		if within(p, d) {
			return ""
		}
	}
	if len(r.Dirs) == 0 {
		return "this control plane allows no file references (its operator names the directories: crmsync serve --allow-ref-dir DIR)"
	}
	return "it is not inside a directory the operator allowed (" + strings.Join(r.Dirs, ", ") + ")"
}

// CheckFile refuses a file reference outside the policy, naming the field.
func (r Refs) CheckFile(field, path string) *api.FieldError {
	if path == "" {
		return nil
	}
	if !filepath.IsAbs(path) {
		return api.Invalid(field, "%s must be an absolute path", field)
	}
	p := filepath.Clean(path)
	if why := r.refusePath(p); why != "" {
		return api.Invalid(field, "%s %s is refused: %s", field, p, why)
	}
	// A link must not lead outside: check where it leads when it exists here.
	if real, err := filepath.EvalSymlinks(p); err == nil && real != p {
		if why := r.refusePath(real); why != "" {
			return api.Invalid(field, "%s %s leads to %s, which is refused: %s", field, p, real, why)
		}
	}
	return nil
}

// CheckEnv refuses an environment variable reference outside the policy, naming the field.
func (r Refs) CheckEnv(field, name string) *api.FieldError {
	if name == "" {
		return nil
	}
	if name == TokenEnv || slices.Contains(r.DenyEnv, name) {
		return api.Invalid(field, "%s %s is refused: it holds a credential of crmsync itself, which no reference may name", field, name)
	}
	if r.Unrestricted {
		return nil
	}
	for _, p := range r.EnvPrefixes {
		if strings.HasPrefix(name, p) {
			return nil
		}
	}
	if len(r.EnvPrefixes) == 0 {
		return api.Invalid(field, "%s %s is refused: this control plane allows no environment references (its operator names the prefixes: crmsync serve --allow-ref-env-prefix PREFIX)", field, name)
	}
	return api.Invalid(field, "%s %s is refused: it does not start with a prefix the operator allowed (%s)", field, name, strings.Join(r.EnvPrefixes, ", "))
}

// ReadFile reads a file reference within the policy (checked again now, links resolved).
func (r Refs) ReadFile(field, path string) ([]byte, error) {
	if fe := r.CheckFile(field, path); fe != nil {
		return nil, fe
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return os.ReadFile(real)
}

// Getenv reads an environment reference within the policy.
func (r Refs) Getenv(field, name string) (string, error) {
	if fe := r.CheckEnv(field, name); fe != nil {
		return "", fe
	}
	v, ok := os.LookupEnv(name)
	if !ok || v == "" {
		return "", fmt.Errorf("%s: environment variable %s is not set", field, name)
	}
	return v, nil
}

// AllowsEnv reports whether a variable may be passed to a process that resolves references under the
// policy (the environment of local agents is filtered with it).
func (r Refs) AllowsEnv(name string) bool { return r.CheckEnv("", name) == nil }

// CheckConnector checks a declared connector against both policies: every URL and address field against
// its service's hosts, every reference against Refs. The first field refused is named.
func CheckConnector(spec api.ConnectorSpec, h Hosts, r Refs) *api.FieldError {
	sf, dv := spec.Salesforce, spec.Dataverse
	for _, u := range []struct {
		field string
		s     Service
		v     string
	}{
		{"salesforce.login_url", Salesforce, sf.LoginURL},
		{"salesforce.instance_url", Salesforce, sf.InstanceURL},
		{"dataverse.environment_url", Dataverse, dv.EnvironmentURL},
		{"dataverse.authority_url", EntraID, dv.AuthorityURL},
	} {
		if fe := h.CheckURL(u.field, u.s, u.v); fe != nil {
			return fe
		}
	}
	if fe := h.CheckAddr("salesforce.pubsub_addr", Salesforce, sf.PubSubAddr); fe != nil {
		return fe
	}
	return CheckRefs(spec, r)
}

// CheckRefs checks every reference of a connector against the policy.
func CheckRefs(spec api.ConnectorSpec, r Refs) *api.FieldError {
	sf, dv := spec.Salesforce, spec.Dataverse
	type ref struct{ field, v string }
	files := []ref{
		{"salesforce.client_secret_file", sf.ClientSecretFile}, {"salesforce.private_key_file", sf.PrivateKeyFile},
		{"salesforce.ca_file", sf.CAFile}, {"dataverse.client_secret_file", dv.ClientSecretFile}, {"dataverse.ca_file", dv.CAFile},
	}
	envs := []ref{
		{"salesforce.client_secret_env", sf.ClientSecretEnv}, {"salesforce.private_key_env", sf.PrivateKeyEnv},
		{"dataverse.client_secret_env", dv.ClientSecretEnv},
	}
	for i, u := range dv.AdditionalUsers {
		prefix := fmt.Sprintf("dataverse.additional_application_users[%d]", i)
		files = append(files, ref{prefix + ".client_secret_file", u.ClientSecretFile})
		envs = append(envs, ref{prefix + ".client_secret_env", u.ClientSecretEnv})
	}
	for _, f := range files {
		if fe := r.CheckFile(f.field, f.v); fe != nil {
			return fe
		}
	}
	for _, e := range envs {
		if fe := r.CheckEnv(e.field, e.v); fe != nil {
			return fe
		}
	}
	return nil
}

// UsesHost reports whether a connector names anything of the host it is resolved on: a *_env, *_file or
// ca_file reference.
func UsesHost(spec api.ConnectorSpec) bool {
	sf, dv := spec.Salesforce, spec.Dataverse
	for _, v := range []string{sf.ClientSecretEnv, sf.ClientSecretFile, sf.PrivateKeyEnv, sf.PrivateKeyFile, sf.CAFile,
		dv.ClientSecretEnv, dv.ClientSecretFile, dv.CAFile} {
		if v != "" {
			return true
		}
	}
	for _, u := range dv.AdditionalUsers {
		if u.ClientSecretEnv != "" || u.ClientSecretFile != "" {
			return true
		}
	}
	return false
}

// FromAPI is the policy a lease carries; nil gives the defaults (the real services' hosts, no reference).
func FromAPI(p *api.Policy) (Hosts, Refs) {
	if p == nil {
		return Hosts{}, Refs{}
	}
	return Hosts{Allow: p.AllowHosts}, Refs{Dirs: p.RefDirs, EnvPrefixes: p.RefEnvPrefixes, DenyPaths: p.DenyPaths, DenyEnv: p.DenyEnv}
}

// ToAPI is the policy as a lease carries it (Unrestricted is never handed out).
func ToAPI(h Hosts, r Refs) *api.Policy {
	return &api.Policy{AllowHosts: h.Allow, RefDirs: r.Dirs, RefEnvPrefixes: r.EnvPrefixes, DenyPaths: r.DenyPaths, DenyEnv: r.DenyEnv}
}

// baseEnv are the variables a process that resolves references under a policy still gets: what any program
// needs to run, find certificates and proxies. None holds a credential of crmsync.
var baseEnv = map[string]bool{"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "LANG": true, "TZ": true, "TMPDIR": true,
	"SSL_CERT_FILE": true, "SSL_CERT_DIR": true, "HTTP_PROXY": true, "HTTPS_PROXY": true, "NO_PROXY": true,
	"http_proxy": true, "https_proxy": true, "no_proxy": true, "GODEBUG": true, "GOMAXPROCS": true, "GOMEMLIMIT": true}

// Environ filters an environment (os.Environ's form) down to what a process resolving references under r
// may see: the basics a program needs and the variables r allows. crmsync serve starts its local agents and
// its agent-side preflight with it, so an *_env reference outside the policy finds nothing even on the
// control plane's host.
func (r Refs) Environ(env []string) []string {
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		if baseEnv[name] || strings.HasPrefix(name, "LC_") || (!r.Unrestricted && r.AllowsEnv(name)) {
			out = append(out, kv)
		}
	}
	return out
}
