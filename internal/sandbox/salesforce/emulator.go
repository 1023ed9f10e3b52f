// Package salesforce emulates the parts of a Salesforce org that crmsync talks to, faithfully to
// specs/salesforce-api.md: OAuth 2.0 (JWT bearer, client credentials, refresh token), REST (describe, SOQL,
// sObject CRUD, limits), Bulk API 2.0 query, and Change Data Capture over the Pub/Sub API (gRPC).
// It also serves an admin API for tests and the demo.
package salesforce

import (
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/clock"
)

// Config configures an Emulator. URLs are set by the sandbox once its listeners are bound; zero values of
// the rest take the spec's defaults.
type Config struct {
	Clock       *clock.Clock
	Logger      *slog.Logger
	LoginURL    string // e.g. https://127.0.0.1:P, the "login.salesforce.com" of this org (JWT audience)
	InstanceURL string // the org's My Domain: REST, Bulk, userinfo and client-credentials token requests
	PubSubAddr  string // host:port of the Pub/Sub API gRPC listener

	APIVersion   string // newest API version served, "62.0" by default
	OrgID        string // 18-char 00D Id; generated when empty
	ClientID     string // connected app consumer key; generated when empty
	ClientSecret string // generated when empty
	Username     string // the integration user; "integration@crmsync.sandbox" when empty
	// JWTCertificate verifies JWT bearer assertions of ClientID (the certificate uploaded to the app).
	JWTCertificate *x509.Certificate
	// TokenLifetime is how long an access token stays valid; 2 h when zero.
	TokenLifetime time.Duration

	// Seed data generated at start.
	Seed     int64
	Contacts int
	Accounts int
}

// Emulator is one emulated org.
type Emulator struct {
	cfg Config
}

// New creates an emulator and seeds its data.
func New(cfg Config) (*Emulator, error) {
	return nil, errors.New("salesforce emulator: not built yet")
}

// Config returns the effective configuration (generated credentials filled in).
func (e *Emulator) Config() Config { return e.cfg }

// LoginHandler serves the login host (token endpoint for the JWT bearer and refresh-token flows).
func (e *Emulator) LoginHandler() http.Handler { return http.NotFoundHandler() }

// InstanceHandler serves the org's instance (My Domain) host.
func (e *Emulator) InstanceHandler() http.Handler { return http.NotFoundHandler() }

// AdminHandler serves the admin API; the sandbox mounts it under /salesforce/.
func (e *Emulator) AdminHandler() http.Handler { return http.NotFoundHandler() }

// RegisterGRPC registers the Pub/Sub API service on s.
func (e *Emulator) RegisterGRPC(s *grpc.Server) {}

// Reset restores the seeded state: records, events, tokens, counters, faults and limits.
func (e *Emulator) Reset() error { return nil }

// Close releases background work.
func (e *Emulator) Close() {}
