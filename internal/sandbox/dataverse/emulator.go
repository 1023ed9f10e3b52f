// Package dataverse emulates the Microsoft Dataverse Web API (v9.2) and its Entra ID token endpoint,
// faithfully to specs/dataverse-api.md, for the contact and account tables crmsync writes. It also serves
// an admin API for tests and the demo.
package dataverse

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/clock"
)

// Config configures an Emulator. URLs are set by the sandbox once its listeners are bound.
type Config struct {
	Clock          *clock.Clock
	Logger         *slog.Logger
	EnvironmentURL string // https://127.0.0.1:P, the "https://org.crm.dynamics.com" of this environment
	AuthorityURL   string // the "https://login.microsoftonline.com" of this environment
	TenantID       string // generated when empty
	ClientID       string // the application user's app id; generated when empty
	ClientSecret   string // generated when empty
	// TokenLifetime is how long an access token stays valid; 3599 s when zero.
	TokenLifetime time.Duration
	Seed          int64
}

// Emulator is one emulated Dataverse environment.
type Emulator struct {
	cfg Config
}

// New creates an emulator with the contact and account tables, one team holding every privilege on them and
// one team holding none.
func New(cfg Config) (*Emulator, error) {
	return nil, errors.New("dataverse emulator: not built yet")
}

// Config returns the effective configuration (generated IDs and secrets filled in).
func (e *Emulator) Config() Config { return e.cfg }

// TeamID is the team with create, read, write, append and append-to on contact and account.
func (e *Emulator) TeamID() string { return "" }

// TeamWithoutPrivilegesID is a team whose roles grant nothing on contact and account.
func (e *Emulator) TeamWithoutPrivilegesID() string { return "" }

// APIHandler serves the environment host (/api/data/v9.2/...).
func (e *Emulator) APIHandler() http.Handler { return http.NotFoundHandler() }

// AuthorityHandler serves the token endpoint host ({tenant}/oauth2/v2.0/token).
func (e *Emulator) AuthorityHandler() http.Handler { return http.NotFoundHandler() }

// AdminHandler serves the admin API; the sandbox mounts it under /dataverse/.
func (e *Emulator) AdminHandler() http.Handler { return http.NotFoundHandler() }

// Reset empties the tables and restores counters, faults and limits.
func (e *Emulator) Reset() error { return nil }

// Close releases background work.
func (e *Emulator) Close() {}
