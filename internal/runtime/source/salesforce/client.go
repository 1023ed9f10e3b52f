// Package salesforce is crmsync's real Salesforce client: OAuth 2.0 (JWT bearer and client credentials),
// REST (describe, SOQL with paging, limits, records), Bulk API 2.0 queries with streamed CSV pages, and a
// Pub/Sub API subscriber for Change Data Capture. It speaks the documented APIs only and knows nothing of the
// sandbox.
//
// Contract: every call takes a context and returns either a result or an error. *APIError carries the
// status and Salesforce errorCode of a refused call; ErrAPILimit (wrapped) means the org's daily API budget
// is spent and callers should pause rather than retry at once; transient failures (network errors, 5xx) are
// retried inside the client with capped exponential backoff, and an expired session (401 INVALID_SESSION_ID)
// is refreshed once per call. Every call made is counted in Stats.
package salesforce

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/retry"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/egress"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/tally"
)

// Auth flows.
const (
	AuthJWTBearer         = "jwt_bearer"
	AuthClientCredentials = "client_credentials"
)

// Config configures a Client. Secrets are values, not references: the caller resolves *_env and *_file.
type Config struct {
	// LoginURL is https://login.salesforce.com, https://test.salesforce.com or the org's My Domain; it is the
	// JWT audience and the token endpoint of the JWT bearer flow.
	LoginURL string
	// InstanceURL is the org's My Domain. Client-credentials tokens are requested there; when empty the
	// token response's instance_url is used for API calls.
	InstanceURL string
	APIVersion  string // e.g. "62.0"
	Auth        string // AuthJWTBearer or AuthClientCredentials
	ClientID    string
	// ClientSecret for client credentials.
	ClientSecret string
	// Username and PrivateKeyPEM (PKCS#1 or PKCS#8) for the JWT bearer flow.
	Username      string
	PrivateKeyPEM []byte
	// CAFile adds a CA to the system roots (for private endpoints). Plain http:// URLs are accepted only for
	// loopback hosts.
	CAFile string
	// ClientName is sent as Sforce-Call-Options client=<name> so changes made through this client are
	// recognisable in changeOrigin.
	ClientName string
	// Timeout bounds one HTTP exchange (not a whole paged query); 2 minutes when zero.
	Timeout time.Duration
	// MaxRetries caps retries of transient failures; 5 when zero.
	MaxRetries int
	// CheckHost, when set, is asked before every connection (each request, redirects and the Pub/Sub API
	// included): an error refuses it. It keeps the client on the hosts the destination policy allows, even
	// when a token answer names another instance.
	CheckHost egress.Check
}

func (c *Config) validate() error {
	var errs []error
	if c.LoginURL == "" {
		errs = append(errs, errors.New("salesforce login_url is required"))
	}
	if c.APIVersion == "" {
		c.APIVersion = "62.0"
	}
	if !strings.Contains(c.APIVersion, ".") {
		errs = append(errs, fmt.Errorf("salesforce api_version %q must look like 62.0", c.APIVersion))
	}
	if c.ClientID == "" {
		errs = append(errs, errors.New("salesforce client_id is required"))
	}
	switch c.Auth {
	case AuthJWTBearer:
		if c.Username == "" || len(c.PrivateKeyPEM) == 0 {
			errs = append(errs, errors.New("salesforce jwt_bearer auth needs username and a private key"))
		}
	case AuthClientCredentials:
		if c.ClientSecret == "" {
			errs = append(errs, errors.New("salesforce client_credentials auth needs client_secret"))
		}
		if c.InstanceURL == "" {
			errs = append(errs, errors.New("salesforce client_credentials auth needs instance_url (the My Domain host; login.salesforce.com refuses this grant)"))
		}
	default:
		errs = append(errs, fmt.Errorf("salesforce auth %q must be %q or %q", c.Auth, AuthJWTBearer, AuthClientCredentials))
	}
	for _, u := range []struct{ name, value string }{{"login_url", c.LoginURL}, {"instance_url", c.InstanceURL}} {
		if u.value != "" {
			if err := api.CheckServiceURL(u.value); err != nil {
				errs = append(errs, fmt.Errorf("salesforce %s: %w", u.name, err))
			}
		}
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Minute
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = 5
	}
	return errors.Join(errs...)
}

// Stats counts the calls a Client made, by kind. Safe for concurrent use.
type Stats struct {
	counts tally.Counts
	total  atomic.Int64
}

func (s *Stats) add(kind string) {
	if !strings.HasPrefix(kind, "pubsub.") {
		s.total.Add(1)
	}
	s.counts.Add(kind, 1)
}

// Total is the number of REST and Bulk API calls: what counts against the org's daily API budget (token
// requests and Pub/Sub RPCs, counted by kind, do not).
func (s *Stats) Total() int64 { return s.total.Load() }

// Snapshot returns a copy of the counts by kind.
func (s *Stats) Snapshot() map[string]int64 { return s.counts.Snapshot() }

// Client talks to one org. Safe for concurrent use.
type Client struct {
	cfg    Config
	http   *http.Client
	tokens *tokenSource
	Stats  Stats
	// sleep waits between retries; tests shorten it.
	sleep func(ctx context.Context, d time.Duration) error
}

// New validates the configuration and returns a Client. It makes no network call.
func New(cfg Config) (*Client, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	hc, err := egress.ServiceClient(cfg.CAFile, 16, cfg.Timeout, cfg.CheckHost)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, http: hc, sleep: retry.Sleep}
	c.tokens = newTokenSource(&c.cfg, hc)
	return c, nil
}

// Config returns the client's configuration.
func (c *Client) Config() Config { return c.cfg }

// HTTPClient returns the client's underlying HTTP client (TLS settings included), for the Pub/Sub dialer.
func (c *Client) HTTPClient() *http.Client { return c.http }
