// Package dataverse is crmsync's real Microsoft Dataverse Web API client: client-credentials tokens from
// Entra ID, metadata reads, writes through UpsertMultiple/UpdateMultiple where the environment supports them
// for a table (probed once and remembered), $batch with change sets and continue-on-error otherwise, and
// single-record requests for retrying one record alone. It speaks the documented Web API only and knows
// nothing of the sandbox.
//
// Contract: calls block while the service-protection limits throttle this client — a 429 pauses every request
// of the client until its Retry-After has fully passed, and the number of concurrent requests adapts (halved on
// throttling, grown on success, capped by x-ms-dop-hint). Throttled and transient (502/503/504, network)
// failures are retried inside the client; *APIError reports everything else with Dataverse's hex code.
package dataverse

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/egress"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/tally"
)

// Config configures a Client. The secret is a value: the caller resolves *_env and *_file references.
type Config struct {
	EnvironmentURL string // https://org.crm.dynamics.com
	// AuthorityURL is the Entra ID host, https://login.microsoftonline.com by default.
	AuthorityURL string
	TenantID     string
	ClientID     string
	ClientSecret string
	// MoreUsers are further application users of the environment to send requests as, besides ClientID:
	// each has a service-protection budget of its own (see users.go).
	MoreUsers []Credentials
	// CAFile adds a CA to the system roots. Plain http:// URLs are accepted only for loopback hosts.
	CAFile string
	// APIVersion is the Web API version, "9.2" by default.
	APIVersion string
	// Timeout bounds one HTTP exchange; 2 minutes when zero (the usual bulk-message timeout).
	Timeout time.Duration
	// MaxRetries caps retries of one request after network errors and 5xx answers; 10 when zero. Throttled
	// requests (429) are retried until the context ends.
	MaxRetries int
	// MaxConcurrency caps each user's concurrent requests before any x-ms-dop-hint arrives; 8 when zero. The
	// service allows 52 per user.
	MaxConcurrency int
	// CheckHost, when set, is asked before every request (token requests, redirects and paging links
	// included): an error refuses it (the destination policy).
	CheckHost egress.Check
	// Fence, when set, is asked before every write request (any method but GET) and before each of its
	// retries: an error refuses the write at once, unretried (an agent whose lease is no longer surely its
	// own must not write); otherwise the tag it returns is sent in the FenceHeader header, so a write can be
	// traced to the lease it was made under.
	Fence func() (tag string, err error)
}

// FenceHeader carries a write's lease tag (Config.Fence); Dataverse ignores it.
const FenceHeader = "X-Crmsync-Lease"

func (c *Config) validate() error {
	var errs []error
	if c.AuthorityURL == "" {
		c.AuthorityURL = "https://login.microsoftonline.com"
	}
	if c.APIVersion == "" {
		c.APIVersion = "9.2"
	}
	for _, u := range []struct{ name, value string }{{"environment_url", c.EnvironmentURL}, {"authority_url", c.AuthorityURL}} {
		if u.value == "" {
			errs = append(errs, fmt.Errorf("dataverse %s is required", u.name))
		} else if err := api.CheckServiceURL(u.value); err != nil {
			errs = append(errs, fmt.Errorf("dataverse %s: %w", u.name, err))
		}
	}
	if c.TenantID == "" {
		errs = append(errs, errors.New("dataverse tenant_id is required (client credentials cannot use common or organizations)"))
	}
	if c.ClientID == "" || c.ClientSecret == "" {
		errs = append(errs, errors.New("dataverse client_id and client secret are required"))
	}
	seen := map[string]bool{strings.ToLower(c.ClientID): true}
	for i, u := range c.MoreUsers {
		switch {
		case u.ClientID == "" || u.ClientSecret == "":
			errs = append(errs, fmt.Errorf("dataverse application user %d: client_id and client secret are required", i+2))
		case seen[strings.ToLower(u.ClientID)]:
			errs = append(errs, fmt.Errorf("dataverse application user %d: client_id %s is named twice", i+2, u.ClientID))
		}
		seen[strings.ToLower(u.ClientID)] = true
	}
	c.EnvironmentURL = strings.TrimRight(c.EnvironmentURL, "/")
	c.AuthorityURL = strings.TrimRight(c.AuthorityURL, "/")
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Minute
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 10
	}
	if c.MaxConcurrency == 0 {
		c.MaxConcurrency = 8
	}
	return errors.Join(errs...)
}

// Stats counts requests by kind and throttling. Safe for concurrent use.
type Stats struct{ counts tally.Counts }

func (s *Stats) add(kind string, n int64) { s.counts.Add(kind, n) }

// Get returns one count.
func (s *Stats) Get(kind string) int64 { return s.counts.Get(kind) }

// Snapshot returns a copy of every count. "requests" is the total of HTTP requests to the environment,
// "throttled" the 429 answers, "retries" the re-sent requests.
func (s *Stats) Snapshot() map[string]int64 { return s.counts.Snapshot() }

// Client talks to one environment. Safe for concurrent use.
type Client struct {
	cfg   Config
	http  *http.Client
	base  string // {environment}/api/data/v9.2
	Stats Stats

	users *users

	bulkMu   sync.Mutex
	bulkSupp map[string]bool // "<message>/<table>" → supported
}

// New validates the configuration and returns a Client. It makes no network call.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	hc, err := egress.ServiceClient(cfg.CAFile, 64, cfg.Timeout, cfg.CheckHost)
	if err != nil {
		return nil, err
	}
	c := &Client{
		cfg:      cfg,
		http:     hc,
		base:     cfg.EnvironmentURL + "/api/data/v" + cfg.APIVersion,
		users:    newUsers(append([]Credentials{{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret}}, cfg.MoreUsers...), cfg.MaxConcurrency),
		bulkSupp: map[string]bool{},
	}
	for _, u := range c.users.all {
		c.resetTokenSource(u)
	}
	return c, nil
}

// Config returns the client's configuration.
func (c *Client) Config() Config { return c.cfg }

// Concurrency returns the current limit on concurrent requests: the sum of every application user's.
func (c *Client) Concurrency() int { return c.users.concurrency() }

func statusOf(re *oauth2.RetrieveError) int {
	if re.Response != nil {
		return re.Response.StatusCode
	}
	return 0
}

// AuthError is a refused token request, with Entra ID's error and error_description (AADSTS...).
type AuthError struct {
	ClientID    string
	Status      int
	Code        string
	Description string
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("dataverse token request of client %s refused (HTTP %d): %s: %s", e.ClientID, e.Status, e.Code, e.Description)
}
