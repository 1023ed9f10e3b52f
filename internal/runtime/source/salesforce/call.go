package salesforce

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/crmsync/terraform-provider-crmsync/internal/retry"
)

// ErrAPILimit is matched (errors.Is) by an *APIError for REQUEST_LIMIT_EXCEEDED: the org's daily API budget
// is spent. Callers pause until the budget recovers instead of retrying.
var ErrAPILimit = errors.New("salesforce API request limit exceeded")

// APIError is a call Salesforce refused, from the REST error array (the first entry; Salesforce rarely
// sends more).
type APIError struct {
	Method  string
	Path    string
	Status  int
	Code    string // errorCode, e.g. INVALID_FIELD, MALFORMED_QUERY, NOT_FOUND
	Message string
	Fields  []string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("salesforce %s %s: HTTP %d %s: %s", e.Method, e.Path, e.Status, e.Code, e.Message)
}

// Is makes errors.Is(err, ErrAPILimit) true for the daily-limit error.
func (e *APIError) Is(target error) bool {
	return target == ErrAPILimit && e.Code == "REQUEST_LIMIT_EXCEEDED"
}

// retryable statuses: 5xx are transient on Salesforce's side; 429 is rare but means "come back later".
func retryable(status int) bool {
	switch status {
	case http.StatusTooManyRequests, http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// request is one API call.
type request struct {
	kind   string // Stats key, e.g. "rest.query"
	method string
	path   string // absolute path on the instance, starting with /services/
	query  url.Values
	body   []byte
	ctype  string
	accept string
	header http.Header
	// idempotent calls are retried after network errors and 5xx; others only when nothing was sent.
	idempotent bool
}

// call sends r and returns the successful response, whose body the caller must close. It refreshes an
// expired session once, retries transient failures with capped exponential backoff (honouring
// Retry-After), and turns refusals into *APIError.
func (c *Client) call(ctx context.Context, r request) (*http.Response, error) {
	refreshed := false
	for attempt := 0; ; attempt++ {
		sess, err := c.tokens.Session(ctx)
		if err != nil {
			return nil, err
		}
		u := sess.InstanceURL + r.path
		if len(r.query) > 0 {
			u += "?" + r.query.Encode()
		}
		var body io.Reader
		if r.body != nil {
			body = bytes.NewReader(r.body)
		}
		req, err := http.NewRequestWithContext(ctx, r.method, u, body)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+sess.AccessToken)
		req.Header.Set("Accept", cmp.Or(r.accept, "application/json"))
		if r.ctype != "" {
			req.Header.Set("Content-Type", r.ctype)
		}
		if c.cfg.ClientName != "" {
			req.Header.Set("Sforce-Call-Options", "client="+c.cfg.ClientName)
		}
		for k, vs := range r.header {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		c.Stats.add(r.kind)
		resp, err := c.http.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if !r.idempotent || attempt >= c.cfg.MaxRetries {
				return nil, fmt.Errorf("salesforce %s %s: %w", r.method, r.path, err)
			}
			if err := c.sleep(ctx, backoff.Wait(attempt, 0)); err != nil {
				return nil, err
			}
			continue
		}
		if resp.StatusCode < 300 {
			return resp, nil
		}
		apiErr := readAPIError(resp, r.method, r.path)
		switch {
		case resp.StatusCode == http.StatusUnauthorized && !refreshed:
			// INVALID_SESSION_ID: the session expired or was revoked; get a new one and try again once.
			refreshed = true
			c.tokens.Invalidate(sess.AccessToken)
			continue
		case retryable(resp.StatusCode) && r.idempotent && attempt < c.cfg.MaxRetries:
			if err := c.sleep(ctx, backoff.Wait(attempt, retry.After(resp.Header, time.Now()))); err != nil {
				return nil, err
			}
			continue
		}
		return nil, apiErr
	}
}

// decoded is the body of a response to a request that asked for gzip itself (net/http then leaves the
// decompression to the caller): decompressed when the server compressed it.
func decoded(resp *http.Response) (io.Reader, error) {
	if !strings.EqualFold(resp.Header.Get("Content-Encoding"), "gzip") {
		return resp.Body, nil
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the gzip-compressed body: %w", err)
	}
	return zr, nil
}

// readAPIError reads and closes the body of a failed response.
func readAPIError(resp *http.Response, method, path string) *APIError {
	defer resp.Body.Close()
	body, err := decoded(resp)
	if err != nil {
		body = resp.Body // not gzip after all: keep what can be read of the message
	}
	b, _ := io.ReadAll(io.LimitReader(body, 1<<16))
	e := &APIError{Method: method, Path: path, Status: resp.StatusCode}
	var arr []struct {
		Message   string   `json:"message"`
		ErrorCode string   `json:"errorCode"`
		Fields    []string `json:"fields"`
	}
	if json.Unmarshal(b, &arr) == nil && len(arr) > 0 {
		e.Code, e.Message, e.Fields = arr[0].ErrorCode, arr[0].Message, arr[0].Fields
		return e
	}
	e.Code = http.StatusText(resp.StatusCode)
	e.Message = strings.TrimSpace(string(b))
	return e
}

// getJSON performs an idempotent GET and decodes the JSON answer into out.
func (c *Client) getJSON(ctx context.Context, kind, path string, query url.Values, out any) error {
	resp, err := c.call(ctx, request{kind: kind, method: http.MethodGet, path: path, query: query, idempotent: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("salesforce GET %s: decoding the answer: %w", path, err)
	}
	return nil
}

func (c *Client) dataPath(rest string) string { return "/services/data/v" + c.cfg.APIVersion + rest }

// backoff is the wait between retries: 250 ms doubling per attempt, capped at 15 s, with jitter; at least
// the Retry-After the org sends.
var backoff = retry.Policy{Base: 250 * time.Millisecond, Max: 15 * time.Second, Jitter: 0.5}
