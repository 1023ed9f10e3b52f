// Package client is the typed HTTP client of the crmsync control plane API (v1), used by the Terraform
// provider, the `crmsync status` command and agents that report to a control plane. Wire types live in
// package api.
//
// Contract: every method takes a context and returns the decoded answer or an error. Refusals are *Error
// values carrying the HTTP status and the API's stable error code (ErrNotFound, ErrUnauthenticated,
// ErrLeaseLost and friends match with errors.Is); network failures are wrapped with the endpoint named.
// Idempotent requests (GET, PUT, DELETE) are retried on network errors and 502/503/504 a few times with
// backoff; POSTs only when the connection could not be made (nothing was sent).
//
// Several control planes (replicas on one PostgreSQL, docs/scaling.md) are given as one comma-separated
// Endpoint, "URL[,URL…]": the client uses one until it fails (a connection refused or reset, a timeout,
// 502/503/504), then the next, in turn; a retry goes to the next one at once.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/cafile"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/retry"
)

// Error is a refusal from the control plane.
type Error struct {
	Status int
	Body   api.Error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("control plane: %s (HTTP %d): %s", e.Body.Code, e.Status, e.Body.Message)
	if e.Body.Field != "" {
		msg += " [" + e.Body.Field + "]"
	}
	return msg
}

// Is matches the sentinel errors by code.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.Body.Code == "not_found"
	case ErrUnauthenticated:
		return e.Body.Code == "unauthenticated"
	case ErrLeaseLost:
		return e.Body.Code == "lease_lost"
	case ErrConflict:
		return e.Body.Code == "conflict"
	case ErrPreflightFailed:
		return e.Body.Code == "preflight_failed"
	case ErrForbidden:
		return e.Body.Code == "forbidden"
	}
	return false
}

// Sentinel errors for errors.Is.
var (
	ErrNotFound        = errors.New("not found")
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrLeaseLost       = errors.New("lease lost")
	ErrConflict        = errors.New("conflict")
	ErrPreflightFailed = errors.New("preflight failed")
	ErrForbidden       = errors.New("forbidden")
)

// Config configures a Client.
type Config struct {
	// Endpoint is the control plane's URL, e.g. https://crmsync.internal:8787, or several replicas' URLs
	// separated by commas, tried in turn.
	Endpoint string
	// Token is the bearer credential: the operator token, an agent credential or an enrollment token.
	Token string
	// UnixSocket, when set, reaches the control plane through its local socket (DATA_DIR/crmsync.sock), where
	// the admin routes are served without a token; Endpoint is then only the URLs' base.
	UnixSocket string
	CAFile     string
	// Timeout bounds one request; 30 s when zero.
	Timeout time.Duration
	// UserAgent names the caller (terraform-provider-crmsync/1.2.3, crmsync-agent/...).
	UserAgent string
}

// Client talks to one control plane. Safe for concurrent use.
type Client struct {
	cfg       Config
	endpoints []string
	current   atomic.Int64 // index into endpoints of the one in use
	http      *http.Client
	requests  atomic.Int64
}

// ParseEndpoints splits "URL[,URL…]" and checks each is an http:// or https:// URL.
func ParseEndpoints(s string) ([]string, error) {
	var out []string
	for _, e := range strings.Split(s, ",") {
		e = strings.TrimRight(strings.TrimSpace(e), "/")
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("endpoint %q must be an http:// or https:// URL (several: separated by commas)", e)
		}
		out = append(out, e)
	}
	return out, nil
}

// New validates the configuration and returns a Client; it makes no request.
func New(cfg Config) (*Client, error) {
	endpoints, err := ParseEndpoints(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	if cfg.Token == "" && cfg.UnixSocket == "" {
		return nil, errors.New("a control plane API token is required")
	}
	cfg.Endpoint = strings.Join(endpoints, ",")
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	tlsCfg, err := cafile.TLSConfig("ca_file", cfg.CAFile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	if sock := cfg.UnixSocket; sock != "" {
		tr.Proxy = nil
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", sock)
		}
	}
	return &Client{cfg: cfg, endpoints: endpoints, http: &http.Client{Transport: tr, Timeout: cfg.Timeout}}, nil
}

// Endpoint returns the base URL of the control plane in use (of the replicas given, the one answering).
func (c *Client) Endpoint() string { return c.endpoints[int(c.current.Load())%len(c.endpoints)] }

// Endpoints returns every control plane URL the client was given.
func (c *Client) Endpoints() []string { return slices.Clone(c.endpoints) }

// failover moves to the next endpoint after base failed (unless another call moved already).
func (c *Client) failover(base string) {
	if len(c.endpoints) == 1 {
		return
	}
	i := c.current.Load()
	if c.endpoints[int(i)%len(c.endpoints)] == base {
		c.current.CompareAndSwap(i, (i+1)%int64(len(c.endpoints)))
	}
}

// notSent reports whether a transport error happened before the request left: no connection was made.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// Requests returns how many HTTP requests the client sent (retries included).
func (c *Client) Requests() int64 { return c.requests.Load() }

// do sends one API call and decodes the answer into out (nil: discard).
func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	return c.doWith(ctx, method, path, nil, in, out)
}

// doWith is do with more request headers.
func (c *Client) doWith(ctx context.Context, method, path string, header http.Header, in, out any) error {
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("encoding the request: %w", err)
		}
	}
	idempotent := method != http.MethodPost
	// Three retries, and one more per further replica, so that every replica is tried.
	maxRetries := 3 + len(c.endpoints) - 1
	for attempt := 0; ; attempt++ {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		base := c.Endpoint()
		req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
		if err != nil {
			return err
		}
		if c.cfg.Token != "" {
			req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
		}
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if c.cfg.UserAgent != "" {
			req.Header.Set("User-Agent", c.cfg.UserAgent)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		c.requests.Add(1)
		resp, err := c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			c.failover(base)
			if (idempotent || notSent(err)) && attempt < maxRetries {
				if serr := c.pause(ctx, attempt); serr != nil {
					return serr
				}
				continue
			}
			return fmt.Errorf("control plane %s %s: %w", method, base+path, err)
		}
		retry, err := c.read(resp, out)
		if retry {
			c.failover(base)
		}
		if retry && idempotent && attempt < maxRetries {
			if serr := c.pause(ctx, attempt); serr != nil {
				return serr
			}
			continue
		}
		return err
	}
}

func (c *Client) read(resp *http.Response, out any) (retry bool, err error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return true, fmt.Errorf("reading the control plane's answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		e := &Error{Status: resp.StatusCode}
		var eb api.ErrorBody
		if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
			e.Body = eb.Error
		} else {
			e.Body.Code, e.Body.Message = strings.ToLower(strings.ReplaceAll(http.StatusText(resp.StatusCode), " ", "_")), strings.TrimSpace(string(b))
			if resp.StatusCode == http.StatusUnauthorized {
				e.Body.Code = "unauthenticated"
			}
		}
		switch resp.StatusCode {
		case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true, e
		}
		return false, e
	}
	if out == nil || len(b) == 0 {
		return false, nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return false, fmt.Errorf("decoding the control plane's answer: %w", err)
	}
	return false, nil
}

// pause waits before a retry: not at all for the first try of each further replica, then with backoff.
func (c *Client) pause(ctx context.Context, attempt int) error {
	if attempt < len(c.endpoints)-1 {
		return ctx.Err()
	}
	return sleep(ctx, attempt-(len(c.endpoints)-1))
}

// backoff is the wait before the n-th retry of one replica: 200 to 300 ms, doubling.
var backoff = retry.Policy{Base: 300 * time.Millisecond, Jitter: 1.0 / 3}

func sleep(ctx context.Context, attempt int) error { return retry.Sleep(ctx, backoff.Delay(attempt)) }

func esc(s string) string { return url.PathEscape(s) }

// Health calls GET /healthz (no token needed, but sent).
func (c *Client) Health(ctx context.Context) (*api.Health, error) {
	var h api.Health
	return &h, c.do(ctx, http.MethodGet, "/healthz", nil, &h)
}

// CreateConnector calls POST /v1/connectors.
func (c *Client) CreateConnector(ctx context.Context, spec api.ConnectorSpec) (*api.Connector, error) {
	var out api.Connector
	return &out, c.do(ctx, http.MethodPost, "/v1/connectors", spec, &out)
}

// GetConnector calls GET /v1/connectors/{id}.
func (c *Client) GetConnector(ctx context.Context, id string) (*api.Connector, error) {
	var out api.Connector
	return &out, c.do(ctx, http.MethodGet, "/v1/connectors/"+esc(id), nil, &out)
}

// FindConnector calls GET /v1/connectors?name= and returns the one connector of that name.
func (c *Client) FindConnector(ctx context.Context, name string) (*api.Connector, error) {
	var out api.ConnectorList
	if err := c.do(ctx, http.MethodGet, "/v1/connectors?name="+url.QueryEscape(name), nil, &out); err != nil {
		return nil, err
	}
	if len(out.Connectors) == 0 {
		return nil, &Error{Status: http.StatusNotFound, Body: api.Error{Code: "not_found", Message: "no connector is named " + name, Field: "name"}}
	}
	return &out.Connectors[0], nil
}

// ListConnectors calls GET /v1/connectors.
func (c *Client) ListConnectors(ctx context.Context) ([]api.Connector, error) {
	var out api.ConnectorList
	return out.Connectors, c.do(ctx, http.MethodGet, "/v1/connectors", nil, &out)
}

// UpdateConnector calls PUT /v1/connectors/{id}.
func (c *Client) UpdateConnector(ctx context.Context, id string, spec api.ConnectorSpec) (*api.Connector, error) {
	var out api.Connector
	return &out, c.do(ctx, http.MethodPut, "/v1/connectors/"+esc(id), spec, &out)
}

// DeleteConnector calls DELETE /v1/connectors/{id}.
func (c *Client) DeleteConnector(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/connectors/"+esc(id), nil, nil)
}

// CreateMapping calls POST /v1/connectors/{id}/mappings.
func (c *Client) CreateMapping(ctx context.Context, connectorID string, spec mapping.TableConfig) (*api.TableMapping, error) {
	var out api.TableMapping
	return &out, c.do(ctx, http.MethodPost, "/v1/connectors/"+esc(connectorID)+"/mappings", spec, &out)
}

// ListMappings calls GET /v1/connectors/{id}/mappings.
func (c *Client) ListMappings(ctx context.Context, connectorID string) ([]api.TableMapping, error) {
	var out api.MappingList
	return out.Mappings, c.do(ctx, http.MethodGet, "/v1/connectors/"+esc(connectorID)+"/mappings", nil, &out)
}

// GetMapping calls GET /v1/mappings/{id}.
func (c *Client) GetMapping(ctx context.Context, id string) (*api.TableMapping, error) {
	var out api.TableMapping
	return &out, c.do(ctx, http.MethodGet, "/v1/mappings/"+esc(id), nil, &out)
}

// UpdateMapping calls PUT /v1/mappings/{id}.
func (c *Client) UpdateMapping(ctx context.Context, id string, spec mapping.TableConfig) (*api.TableMapping, error) {
	var out api.TableMapping
	return &out, c.do(ctx, http.MethodPut, "/v1/mappings/"+esc(id), spec, &out)
}

// DeleteMapping calls DELETE /v1/mappings/{id}.
func (c *Client) DeleteMapping(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/mappings/"+esc(id), nil, nil)
}

// PredefinedMappings calls GET /v1/predefined-mappings/{source_table}.
func (c *Client) PredefinedMappings(ctx context.Context, sourceTable string) (*api.PredefinedMappings, error) {
	var out api.PredefinedMappings
	return &out, c.do(ctx, http.MethodGet, "/v1/predefined-mappings/"+esc(sourceTable), nil, &out)
}

// ValidateTeam calls POST /v1/validate/team.
func (c *Client) ValidateTeam(ctx context.Context, req api.ValidateTeamRequest) (*api.ValidateTeamResponse, error) {
	var out api.ValidateTeamResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/validate/team", req, &out)
}

// ValidateMapping calls POST /v1/validate/mapping.
func (c *Client) ValidateMapping(ctx context.Context, req api.ValidateRequest) (*api.ValidateResponse, error) {
	var out api.ValidateResponse
	return &out, c.do(ctx, http.MethodPost, "/v1/validate/mapping", req, &out)
}

// GetActivation calls GET /v1/connectors/{id}/activation.
func (c *Client) GetActivation(ctx context.Context, connectorID string) (*api.Activation, error) {
	var out api.Activation
	return &out, c.do(ctx, http.MethodGet, "/v1/connectors/"+esc(connectorID)+"/activation", nil, &out)
}

// SetActivation calls PUT /v1/connectors/{id}/activation. Activating runs the preflight checks; when they
// fail the error is ErrPreflightFailed and its Details hold every check.
func (c *Client) SetActivation(ctx context.Context, connectorID string, active bool) (*api.Activation, error) {
	var out api.Activation
	return &out, c.do(ctx, http.MethodPut, "/v1/connectors/"+esc(connectorID)+"/activation", api.ActivationRequest{Active: active}, &out)
}

// Status calls GET /v1/connectors/{id}/status.
func (c *Client) Status(ctx context.Context, connectorID string) (*api.ConnectorStatus, error) {
	var out api.ConnectorStatus
	return &out, c.do(ctx, http.MethodGet, "/v1/connectors/"+esc(connectorID)+"/status", nil, &out)
}

// DeadLetters calls GET /v1/connectors/{id}/dead-letters.
func (c *Client) DeadLetters(ctx context.Context, connectorID, table string, limit int) (*api.DeadLetterList, error) {
	return c.ListDeadLetters(ctx, connectorID, DeadLetterQuery{Table: table, Limit: limit})
}

// DeadLetterQuery selects dead letters for ListDeadLetters; zero fields match everything.
type DeadLetterQuery struct {
	Table     string
	RecordIDs []string
	Limit     int
}

// ListDeadLetters calls GET /v1/connectors/{id}/dead-letters with every filter the route takes.
func (c *Client) ListDeadLetters(ctx context.Context, connectorID string, dq DeadLetterQuery) (*api.DeadLetterList, error) {
	q := url.Values{}
	if dq.Table != "" {
		q.Set("table", dq.Table)
	}
	for _, id := range dq.RecordIDs {
		q.Add("record_id", id)
	}
	if dq.Limit > 0 {
		q.Set("limit", fmt.Sprint(dq.Limit))
	}
	var out api.DeadLetterList
	path := "/v1/connectors/" + esc(connectorID) + "/dead-letters"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return &out, c.do(ctx, http.MethodGet, path, nil, &out)
}

// RetryDeadLetters calls POST /v1/connectors/{id}/dead-letters/retry.
func (c *Client) RetryDeadLetters(ctx context.Context, connectorID string, a api.DeadLetterAction) (*api.DeadLetterActionResult, error) {
	var out api.DeadLetterActionResult
	return &out, c.do(ctx, http.MethodPost, "/v1/connectors/"+esc(connectorID)+"/dead-letters/retry", a, &out)
}

// DiscardDeadLetters calls POST /v1/connectors/{id}/dead-letters/discard.
func (c *Client) DiscardDeadLetters(ctx context.Context, connectorID string, a api.DeadLetterAction) (*api.DeadLetterActionResult, error) {
	var out api.DeadLetterActionResult
	return &out, c.do(ctx, http.MethodPost, "/v1/connectors/"+esc(connectorID)+"/dead-letters/discard", a, &out)
}

// Audit calls GET /v1/audit.
func (c *Client) Audit(ctx context.Context, connectorID string, limit int) ([]api.AuditEntry, error) {
	q := url.Values{}
	if connectorID != "" {
		q.Set("connector_id", connectorID)
	}
	if limit > 0 {
		q.Set("limit", fmt.Sprint(limit))
	}
	var out api.AuditList
	return out.Entries, c.do(ctx, http.MethodGet, "/v1/audit?"+q.Encode(), nil, &out)
}

// Agent protocol.

// PoolCheckIn calls POST /v1/agent/pool (a pool agent's check-in).
func (c *Client) PoolCheckIn(ctx context.Context, req api.PoolRequest) (*api.PoolAnswer, error) {
	var out api.PoolAnswer
	return &out, c.do(ctx, http.MethodPost, "/v1/agent/pool", req, &out)
}

// AcquireLease calls POST /v1/agent/leases; ErrConflict while another live agent holds the connector.
func (c *Client) AcquireLease(ctx context.Context, req api.LeaseRequest) (*api.Lease, error) {
	var out api.Lease
	return &out, c.do(ctx, http.MethodPost, "/v1/agent/leases", req, &out)
}

// Heartbeat calls POST /v1/agent/leases/{id}/heartbeat; ErrLeaseLost when the lease is no longer current.
//
// It says the caller takes its lease's deadline from the answer (the X-Crmsync-Lease-Deadline: answer
// header): from when it sent the heartbeat, the answer's ExpiresInSeconds when set (a control plane that
// renews only when due), else the lease's TTL (one that renews at every heartbeat).
func (c *Client) Heartbeat(ctx context.Context, leaseID string, hb api.Heartbeat) (*api.HeartbeatResponse, error) {
	var out api.HeartbeatResponse
	h := http.Header{"X-Crmsync-Lease-Deadline": {"answer"}}
	return &out, c.doWith(ctx, http.MethodPost, "/v1/agent/leases/"+esc(leaseID)+"/heartbeat", h, hb, &out)
}

// ReleaseLease calls DELETE /v1/agent/leases/{id}.
func (c *Client) ReleaseLease(ctx context.Context, leaseID string) error {
	return c.do(ctx, http.MethodDelete, "/v1/agent/leases/"+esc(leaseID), nil, nil)
}

// Checkpoint calls GET /v1/agent/leases/{id}/checkpoints/{table}; nil when none is stored.
func (c *Client) Checkpoint(ctx context.Context, leaseID, table string) (*api.Checkpoint, error) {
	var out api.Checkpoint
	err := c.do(ctx, http.MethodGet, "/v1/agent/leases/"+esc(leaseID)+"/checkpoints/"+esc(table), nil, &out)
	if errors.Is(err, ErrNotFound) {
		var e *Error
		if errors.As(err, &e) && e.Body.Field == "table" {
			return nil, nil
		}
	}
	if err != nil {
		return nil, err
	}
	return &out, nil
}

// SaveCheckpoint calls PUT /v1/agent/leases/{id}/checkpoints/{table}.
func (c *Client) SaveCheckpoint(ctx context.Context, leaseID string, cp api.Checkpoint) error {
	return c.do(ctx, http.MethodPut, "/v1/agent/leases/"+esc(leaseID)+"/checkpoints/"+esc(cp.Table), cp, nil)
}

// AddDeadLetters calls POST /v1/agent/leases/{id}/dead-letters.
func (c *Client) AddDeadLetters(ctx context.Context, leaseID string, dls []api.DeadLetter) error {
	return c.do(ctx, http.MethodPost, "/v1/agent/leases/"+esc(leaseID)+"/dead-letters", api.DeadLetterBatch{DeadLetters: dls}, nil)
}

// RetryableDeadLetters calls GET /v1/agent/leases/{id}/dead-letters?table=&code=&since=&limit=.
func (c *Client) RetryableDeadLetters(ctx context.Context, leaseID, table, code string, since time.Time, limit int) ([]api.DeadLetter, error) {
	q := url.Values{"table": {table}, "code": {code}, "since": {since.UTC().Format(time.RFC3339Nano)}, "limit": {fmt.Sprint(limit)}}
	var out api.DeadLetterBatch
	return out.DeadLetters, c.do(ctx, http.MethodGet, "/v1/agent/leases/"+esc(leaseID)+"/dead-letters?"+q.Encode(), nil, &out)
}

// ResolveDeadLetter calls POST /v1/agent/leases/{id}/dead-letters/resolve.
func (c *Client) ResolveDeadLetter(ctx context.Context, leaseID string, r api.ResolveRequest) error {
	return c.do(ctx, http.MethodPost, "/v1/agent/leases/"+esc(leaseID)+"/dead-letters/resolve", r, nil)
}

// Enroll exchanges the client's enrollment token for an agent identity and its credential.
func (c *Client) Enroll(ctx context.Context, req api.EnrollRequest) (*api.AgentCredential, error) {
	var out api.AgentCredential
	return &out, c.do(ctx, http.MethodPost, "/v1/agent/enroll", req, &out)
}

// RotateCredential issues the calling agent a new credential (the current one works until the new one is
// first used).
func (c *Client) RotateCredential(ctx context.Context) (*api.AgentCredential, error) {
	var out api.AgentCredential
	return &out, c.do(ctx, http.MethodPost, "/v1/agent/credential", struct{}{}, &out)
}

// CreateEnrollment creates an enrollment token (local socket only).
func (c *Client) CreateEnrollment(ctx context.Context, req api.EnrollmentRequest) (*api.Enrollment, error) {
	var out api.Enrollment
	return &out, c.do(ctx, http.MethodPost, "/v1/admin/enrollments", req, &out)
}

// ListAgents lists the agent identities (local socket only).
func (c *Client) ListAgents(ctx context.Context) ([]api.AgentIdentity, error) {
	var out api.AgentList
	return out.Agents, c.do(ctx, http.MethodGet, "/v1/admin/agents", nil, &out)
}

// RevokeAgent deletes an agent identity and its leases (local socket only).
func (c *Client) RevokeAgent(ctx context.Context, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/admin/agents/"+esc(id), nil, nil)
}
