package salesforce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/jwt"
)

// Session is an access token and what the token response says about the org.
type Session struct {
	AccessToken string
	InstanceURL string
	OrgID       string // 18-char org Id from the identity URL: the Pub/Sub tenantid
	UserID      string
	IssuedAt    time.Time
}

// AuthError is a refused token request, with Salesforce's error and error_description.
type AuthError struct {
	Status      int
	Code        string
	Description string
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("salesforce token request refused (HTTP %d): %s: %s", e.Status, e.Code, e.Description)
}

// tokenSource caches one Session and replaces it when a call reports it expired. Salesforce returns no
// expires_in, so the cache has no expiry of its own: an expired session is noticed by the API (401
// INVALID_SESSION_ID, gRPC UNAUTHENTICATED) and the caller invalidates it.
type tokenSource struct {
	cfg  *Config
	http *http.Client

	mu      sync.Mutex
	current *Session
	fetches int
}

func newTokenSource(cfg *Config, hc *http.Client) *tokenSource {
	return &tokenSource{cfg: cfg, http: hc}
}

// Session returns the cached session, fetching one when there is none.
func (t *tokenSource) Session(ctx context.Context) (*Session, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.current != nil {
		return t.current, nil
	}
	s, err := t.fetch(ctx)
	if err != nil {
		return nil, err
	}
	t.current = s
	return s, nil
}

// Invalidate drops the session if it is still the one that failed, so concurrent callers that saw the same
// expiry fetch one new token between them.
func (t *tokenSource) Invalidate(accessToken string) {
	t.mu.Lock()
	if t.current != nil && t.current.AccessToken == accessToken {
		t.current = nil
	}
	t.mu.Unlock()
}

// Fetches returns how many token requests were made.
func (t *tokenSource) Fetches() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.fetches
}

func (t *tokenSource) fetch(ctx context.Context) (*Session, error) {
	t.fetches++
	ctx = context.WithValue(ctx, oauth2.HTTPClient, t.http)
	var (
		tok *oauth2.Token
		err error
	)
	switch t.cfg.Auth {
	case AuthJWTBearer:
		conf := &jwt.Config{
			Email:      t.cfg.ClientID, // iss
			Subject:    t.cfg.Username, // sub
			PrivateKey: t.cfg.PrivateKeyPEM,
			Audience:   strings.TrimRight(t.cfg.LoginURL, "/"),
			TokenURL:   strings.TrimRight(t.cfg.LoginURL, "/") + "/services/oauth2/token",
			Expires:    3 * time.Minute, // Salesforce wants exp within 3 minutes
		}
		tok, err = conf.TokenSource(ctx).Token()
	case AuthClientCredentials:
		conf := &clientcredentials.Config{
			ClientID:     t.cfg.ClientID,
			ClientSecret: t.cfg.ClientSecret,
			TokenURL:     strings.TrimRight(t.cfg.InstanceURL, "/") + "/services/oauth2/token",
			AuthStyle:    oauth2.AuthStyleInParams,
		}
		tok, err = conf.Token(ctx)
	default:
		return nil, fmt.Errorf("unsupported auth %q", t.cfg.Auth)
	}
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			status := 0
			if re.Response != nil {
				status = re.Response.StatusCode
			}
			ae := &AuthError{Status: status, Code: re.ErrorCode, Description: re.ErrorDescription}
			if ae.Code == "" {
				// The JWT flow of x/oauth2 leaves the body unparsed.
				var body struct {
					Error       string `json:"error"`
					Description string `json:"error_description"`
				}
				if json.Unmarshal(re.Body, &body) == nil {
					ae.Code, ae.Description = body.Error, body.Description
				}
			}
			return nil, ae
		}
		return nil, fmt.Errorf("requesting a salesforce token: %w", err)
	}
	s := &Session{AccessToken: tok.AccessToken}
	s.InstanceURL, _ = tok.Extra("instance_url").(string)
	if t.cfg.InstanceURL != "" {
		s.InstanceURL = t.cfg.InstanceURL
	}
	if s.InstanceURL == "" {
		return nil, errors.New("salesforce token response has no instance_url")
	}
	s.InstanceURL = strings.TrimRight(s.InstanceURL, "/")
	if id, ok := tok.Extra("id").(string); ok {
		// https://login.salesforce.com/id/<orgId18>/<userId18>
		if u, perr := url.Parse(id); perr == nil {
			parts := strings.Split(strings.Trim(u.Path, "/"), "/")
			if len(parts) >= 3 && parts[0] == "id" {
				s.OrgID, s.UserID = parts[1], parts[2]
			}
		}
	}
	if ms, ok := tok.Extra("issued_at").(string); ok {
		var n int64
		if _, perr := fmt.Sscan(ms, &n); perr == nil {
			s.IssuedAt = time.UnixMilli(n)
		}
	}
	return s, nil
}
