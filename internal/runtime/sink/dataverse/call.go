package dataverse

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/retry"
)

// Dataverse error codes the sync branches on (Dataverse's Web API error codes; docs/sandbox-dataverse.md lists
// those the emulator answers).
const (
	CodeObjectDoesNotExist = "0x80040217"
	CodeAltKeyNotFound     = "0x80060891"
	CodePrivilegeDenied    = "0x80040220"
	CodeDuplicateRecord    = "0x80040237"
	CodeValidation         = "0x80044331"
	CodeSegmentNotFound    = "0x8006088a"
	CodeParse              = "0x80060888"
	CodePayload            = "0x80048d19"
	CodeRequestsExceeded   = "0x80072322"
	CodeTimeExceeded       = "0x80072321"
	CodeConcurrencyLimit   = "0x80072326"
)

// APIError is a request Dataverse refused.
type APIError struct {
	Method  string
	Path    string
	Status  int
	Code    string // hex code, e.g. 0x80040217
	Message string
}

func (e *APIError) Error() string {
	return fmt.Sprintf("dataverse %s %s: HTTP %d %s: %s", e.Method, e.Path, e.Status, e.Code, e.Message)
}

// IsNotFound reports whether err is a 404 for a missing row, bind target or key.
func IsNotFound(err error) bool {
	var e *APIError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// Code returns the Dataverse error code of err, or "".
func Code(err error) string {
	var e *APIError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// request is one Web API call.
type request struct {
	kind   string // Stats key: "write", "bulk", "batch", "read", "metadata", "whoami"
	method string
	path   string // relative to /api/data/v9.2, starting with "/"; or an absolute URL (nextLink)
	body   []byte
	bulk   *bulkBody // a body streamed from its targets, in place of body
	ctype  string
	header http.Header
	// idempotent requests are re-sent after network errors and 502/503/504. Every write the sync makes is
	// keyed by GUID, so all are idempotent except POST creates without a key.
	idempotent bool
}

// answer is a fully read response.
type answer struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends r and returns the answer of a success. It blocks while every application user is throttled or
// busy, sends r as the user with the most budget left (users.go), retries 429 after the full Retry-After of
// the user that got it (as another user when one is free sooner), retries transient failures, and refreshes
// a user's token once on 401.
func (c *Client) do(ctx context.Context, r request) (*answer, error) {
	refreshed := false
	attempt := 0 // transient failures so far (429s are not counted: they are always retried)
	throttles := 0
	for {
		u, err := c.users.acquire(ctx)
		if err != nil {
			return nil, err
		}
		if err := c.fence(&r); err != nil {
			c.users.release(u, nil, outcomeOther, 0)
			return nil, err
		}
		resp, err := c.send(ctx, r, u)
		if err != nil {
			c.users.release(u, nil, outcomeOther, 0)
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			var ae *AuthError
			if errors.As(err, &ae) || !r.idempotent || attempt >= c.cfg.MaxRetries {
				return nil, fmt.Errorf("dataverse %s %s: %w", r.method, r.path, err)
			}
			c.Stats.add("retries", 1)
			if err := retry.Sleep(ctx, backoff.Wait(attempt, 0)); err != nil {
				return nil, err
			}
			attempt++
			continue
		}
		switch {
		case resp.Status < 300 || resp.Status == http.StatusNotModified:
			c.users.release(u, resp.Header, outcomeSuccess, 0)
			return resp, nil
		case resp.Status == http.StatusTooManyRequests:
			c.Stats.add("throttled", 1)
			wait := retry.After(resp.Header, time.Now())
			if wait <= 0 {
				wait = throttleBackoff.Delay(throttles) // no header: exponential, as Microsoft's SDKs do
			}
			throttles++
			// A throttled request is retried for as long as it takes: the service tells how long to wait
			// (this user's budget; another user's may be free now), and dropping a write is never an option.
			// Only the context ends the wait.
			c.users.release(u, resp.Header, outcomeThrottled, wait)
			c.Stats.add("retries", 1)
			continue
		}
		c.users.release(u, resp.Header, outcomeOther, 0)
		switch {
		case resp.Status == http.StatusUnauthorized && !refreshed:
			refreshed = true
			c.resetTokenSource(u)
			continue
		case (resp.Status == http.StatusBadGateway || resp.Status == http.StatusServiceUnavailable ||
			resp.Status == http.StatusGatewayTimeout || resp.Status == http.StatusInternalServerError) &&
			r.idempotent && attempt < c.cfg.MaxRetries:
			c.Stats.add("retries", 1)
			if err := retry.Sleep(ctx, backoff.Wait(attempt, retry.After(resp.Header, time.Now()))); err != nil {
				return nil, err
			}
			attempt++
			continue
		}
		return nil, apiError(r, resp)
	}
}

// fence asks Config.Fence before a write and tags it; a refusal is final.
func (c *Client) fence(r *request) error {
	if c.cfg.Fence == nil || r.method == http.MethodGet {
		return nil
	}
	tag, err := c.cfg.Fence()
	if err != nil {
		return fmt.Errorf("dataverse %s %s not sent: %w", r.method, r.path, err)
	}
	r.header = r.header.Clone()
	if r.header == nil {
		r.header = http.Header{}
	}
	r.header.Set(FenceHeader, tag)
	return nil
}

// send makes one HTTP exchange and reads the whole body (answers are small, bulk writes answer 204).
func (c *Client) send(ctx context.Context, r request, u *appUser) (*answer, error) {
	tok, err := c.token(u)
	if err != nil {
		return nil, err
	}
	target := r.path
	if !strings.HasPrefix(target, "http://") && !strings.HasPrefix(target, "https://") {
		target = c.base + r.path
	}
	var rd io.Reader
	switch {
	case r.bulk != nil:
		rd = r.bulk.reader()
	case r.body != nil:
		rd = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, target, rd)
	if err != nil {
		return nil, err
	}
	if r.bulk != nil {
		req.ContentLength = r.bulk.size
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(r.bulk.reader()), nil }
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-MaxVersion", "4.0")
	req.Header.Set("OData-Version", "4.0")
	if r.body != nil || r.bulk != nil {
		req.Header.Set("Content-Type", cmp.Or(r.ctype, "application/json; charset=utf-8"))
	}
	for k, vs := range r.header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	c.Stats.add("requests", 1)
	c.Stats.add(r.kind, 1)
	c.users.count(u)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	return &answer{Status: resp.StatusCode, Header: resp.Header, Body: body}, nil
}

func apiError(r request, a *answer) *APIError {
	body := a.Body
	e := &APIError{Method: r.method, Path: r.path, Status: a.Status}
	var env struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &env) == nil && (env.Error.Code != "" || env.Error.Message != "") {
		e.Code, e.Message = env.Error.Code, env.Error.Message
	} else {
		e.Message = strings.TrimSpace(string(body))
		if e.Message == "" {
			e.Message = http.StatusText(a.Status)
		}
	}
	return e
}

// retryMargin keeps a resent request from reaching the server a hair before its Retry-After expires.
const retryMargin = 20 * time.Millisecond

// backoff is the wait between retries of failed requests: 250 ms doubling per attempt, capped at 16 s, with
// jitter; at least the Retry-After the service sends. throttleBackoff is the wait after a 429 that names none:
// 1 s doubling, capped at 64 s.
var (
	backoff         = retry.Policy{Base: 250 * time.Millisecond, Max: 16 * time.Second, Jitter: 0.5}
	throttleBackoff = retry.Policy{Base: time.Second, Max: 64 * time.Second}
)
