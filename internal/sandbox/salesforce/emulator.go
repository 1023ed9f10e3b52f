// Package salesforce emulates the parts of a Salesforce org that crmsync talks to, faithfully to the
// documented behaviour (docs/sandbox-salesforce.md says what and where it guessed): OAuth 2.0 (JWT bearer, client credentials, refresh token), REST (describe, SOQL,
// sObject CRUD, limits), Bulk API 2.0 query, and Change Data Capture over the Pub/Sub API (gRPC).
// It also serves an admin API for tests and the demo (docs/sandbox-salesforce.md).
//
// Every committed change (REST or admin API) is one transaction: the store applies it under its lock and
// appends the transaction's change events to the CDC log before releasing it, so the event bus holds the
// changes in commit order. Every time the emulator reads (token expiry, record timestamps, limit windows,
// event retention, locator and job timing) comes from the sandbox's adjustable clock.
package salesforce

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/clock"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/cdc"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/pubsub"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/schema"
)

// DefaultAPIVersion is the newest API version an emulated org serves unless configured: v68.0, Winter '27,
// the release current orgs run (docs/sandbox-salesforce.md says where that comes from).
const DefaultAPIVersion = "68.0"

// Config configures an Emulator. URLs are set by the sandbox once its listeners are bound; zero values of
// the rest take the spec's defaults.
type Config struct {
	Clock       *clock.Clock
	Logger      *slog.Logger
	LoginURL    string // e.g. https://127.0.0.1:P, the "login.salesforce.com" of this org (JWT audience)
	InstanceURL string // the org's My Domain: REST, Bulk, userinfo and client-credentials token requests
	PubSubAddr  string // host:port of the Pub/Sub API gRPC listener

	// APIVersion is the newest API version served: "68.0" (Winter '27, the current release) by default.
	APIVersion string
	// MinAPIVersion is the oldest version served, "31.0" by default (21.0-30.0 were retired in Summer '25;
	// older versions answer 410 GONE).
	MinAPIVersion string
	OrgID         string // 18-char 00D Id; generated when empty
	ClientID      string // connected app consumer key; generated when empty
	ClientSecret  string // generated when empty
	Username      string // the integration user; "integration@crmsync.sandbox" when empty
	// JWTCertificate verifies JWT bearer assertions of ClientID (the certificate uploaded to the app).
	JWTCertificate *x509.Certificate
	// JWTSkew is the clock skew tolerated on a JWT assertion's exp (1 minute when zero).
	JWTSkew time.Duration
	// JWTMaxAhead, when positive, refuses assertions whose exp is further ahead than this (plus the skew).
	// Zero, the default, sets no ceiling: the documentation says "within 3 minutes", but a real org accepts
	// assertions signed for 5 minutes and longer, and clients rely on it (docs/sandbox-salesforce.md).
	JWTMaxAhead time.Duration
	// JWTAudiences are accepted as an assertion's aud besides LoginURL: the authorization servers a real
	// org accepts. Nil means ["https://login.salesforce.com"] (a production org; a sandbox org takes
	// https://test.salesforce.com instead); an empty non-nil slice accepts LoginURL only.
	JWTAudiences []string
	// Scope is the scope string of token responses ("api id" when empty).
	Scope string
	// TokenLifetime is how long an access token stays valid; 2 h when zero.
	TokenLifetime time.Duration

	// Seed data generated at start.
	Seed     int64
	Contacts int
	Accounts int

	// Settings the admin API can change at run time; Reset restores these. Zero values take the defaults
	// named on each field.
	Retention          time.Duration // CDC event retention, 72 h
	KeepaliveInterval  time.Duration // Pub/Sub keepalive while idle with credit, 270 s
	IdleTimeout        time.Duration // Pub/Sub idle close without credit, 60 s
	BulkDelay          time.Duration // Bulk query job creation → JobComplete, 300 ms
	BulkPageSize       int           // Bulk results page size when maxRecords is not given, 100,000
	OverflowThreshold  int           // changes per transaction with normal events, 100,000
	QueryLocatorTTL    time.Duration // idle time after which a query locator expires, 15 min
	APIRequestsMax     int64         // daily API request budget, 1,000,000
	DeliveredEventsMax int64         // daily event delivery allocation, 10,000,000
	// SeparateEvents turns off merged change events (one event per record even when a transaction makes
	// the same change to several records); merging is on by default, as on a real org.
	SeparateEvents bool
}

// Settings are the run-time settings of an emulator (see the fields of Config of the same names).
type Settings struct {
	TokenLifetime      time.Duration
	Retention          time.Duration
	KeepaliveInterval  time.Duration
	IdleTimeout        time.Duration
	BulkDelay          time.Duration
	BulkPageSize       int
	OverflowThreshold  int
	QueryLocatorTTL    time.Duration
	APIRequestsMax     int64
	DeliveredEventsMax int64
	// MergeEvents merges the change events of a transaction that make the same change to several records
	// of one object into one event listing every record, as Salesforce does.
	MergeEvents bool
	// MergeChildEvents makes a record merge emit UPDATE events for the child records it re-parents; off by
	// default (see Emulator.Merge).
	MergeChildEvents bool
}

// Emulator is one emulated org. It is safe for concurrent use.
type Emulator struct {
	cfg         Config
	clock       *clock.Clock
	logger      *slog.Logger
	started     time.Time
	userID      string // the integration user: API sessions act as it
	adminUserID string // the user the admin API's changes are made by
	ids         *idGen
	schemas     *schema.Registry
	log         *cdc.Log
	store       *store
	tokens      *tokenStore
	cursors     *cursorStore
	bulk        *bulkStore
	faults      *faults.Injector
	counters    counters
	pubsub      *pubsub.Server

	apiRequests *rollingCounter
	deliveries  *rollingCounter
	bulkJobs24h *rollingCounter

	settingsMu sync.RWMutex
	settings   Settings

	adminGenMu sync.Mutex
	adminGen   *adminGen // created on first use, dropped by Reset so generation repeats after a reset
}

// New creates an emulator and seeds its data.
func New(cfg Config) (*Emulator, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.New()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.APIVersion == "" {
		cfg.APIVersion = DefaultAPIVersion
	}
	if cfg.MinAPIVersion == "" {
		cfg.MinAPIVersion = "31.0"
	}
	if !versionSegment.MatchString("v"+cfg.APIVersion) || !versionSegment.MatchString("v"+cfg.MinAPIVersion) {
		return nil, errors.New("salesforce emulator: APIVersion and MinAPIVersion must look like 62.0, got " + cfg.APIVersion + " and " + cfg.MinAPIVersion)
	}
	e := &Emulator{clock: cfg.Clock, logger: cfg.Logger, ids: newIDGen()}
	e.started = cfg.Clock.Now()
	if cfg.OrgID == "" {
		cfg.OrgID = makeID(prefixOrg, 0x2F5A1C+uint64(cfg.Seed&0xFFFF))
	} else if id, ok := normalizeID(cfg.OrgID, prefixOrg); ok {
		cfg.OrgID = id
	} else {
		return nil, errors.New("salesforce emulator: OrgID must be a 15- or 18-character 00D Id, got " + cfg.OrgID)
	}
	if cfg.ClientID == "" {
		cfg.ClientID = "3MVG9" + randomBase62(80)
	}
	if cfg.ClientSecret == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		cfg.ClientSecret = strings.ToUpper(hex.EncodeToString(b))
	}
	if cfg.Username == "" {
		cfg.Username = "integration@crmsync.sandbox"
	}
	if cfg.JWTAudiences == nil {
		cfg.JWTAudiences = []string{"https://login.salesforce.com"}
	}
	if cfg.JWTSkew == 0 {
		cfg.JWTSkew = time.Minute
	}
	if cfg.Scope == "" {
		cfg.Scope = "api id"
	}
	setDefault(&cfg.TokenLifetime, 2*time.Hour)
	setDefault(&cfg.Retention, 72*time.Hour)
	setDefault(&cfg.KeepaliveInterval, 270*time.Second)
	setDefault(&cfg.IdleTimeout, 60*time.Second)
	setDefault(&cfg.BulkDelay, 300*time.Millisecond)
	setDefault(&cfg.BulkPageSize, 100_000)
	setDefault(&cfg.OverflowThreshold, 100_000)
	setDefault(&cfg.QueryLocatorTTL, 15*time.Minute)
	setDefault(&cfg.APIRequestsMax, 1_000_000)
	setDefault(&cfg.DeliveredEventsMax, 10_000_000)
	if cfg.Contacts < 0 || cfg.Accounts < 0 {
		return nil, errors.New("salesforce emulator: seed sizes must not be negative")
	}
	e.cfg = cfg

	e.userID, e.adminUserID = e.ids.New(prefixUser), e.ids.New(prefixUser)
	e.schemas = schema.NewRegistry()
	e.log = cdc.New(cfg.Clock, cfg.Retention)
	e.store = newStore(cfg.Clock, e.schemas, e.log, e.ids, []string{e.userID, e.adminUserID})
	e.tokens = newTokenStore(cfg.Clock)
	e.cursors = newCursorStore(cfg.Clock)
	e.bulk = newBulkStore()
	e.faults = faults.New()
	e.apiRequests = newRollingCounter(cfg.Clock, 24*time.Hour)
	e.deliveries = newRollingCounter(cfg.Clock, 24*time.Hour)
	e.bulkJobs24h = newRollingCounter(cfg.Clock, 24*time.Hour)
	e.applySettings(e.defaultSettings())

	start := time.Now()
	if err := e.seed(); err != nil {
		return nil, err
	}
	e.store.markSeeded()
	e.logger.Info("salesforce emulator seeded", "contacts", cfg.Contacts, "accounts", cfg.Accounts,
		"org_id", cfg.OrgID, "took", time.Since(start).Round(time.Millisecond))

	e.pubsub = pubsub.New(pubsub.Config{
		Log: e.log, Schemas: e.schemas, Auth: pubsubAuth{e}, Allocation: pubsubAllocation{e}, Counter: pubsubCounter{e},
		Faults: e.faults, Clock: cfg.Clock, Logger: cfg.Logger.With("component", "pubsub"), OrgID: cfg.OrgID,
		KeepaliveInterval: cfg.KeepaliveInterval, IdleTimeout: cfg.IdleTimeout,
	})
	return e, nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func (e *Emulator) defaultSettings() Settings {
	c := e.cfg
	return Settings{
		TokenLifetime: c.TokenLifetime, Retention: c.Retention, KeepaliveInterval: c.KeepaliveInterval,
		IdleTimeout: c.IdleTimeout, BulkDelay: c.BulkDelay, BulkPageSize: c.BulkPageSize,
		OverflowThreshold: c.OverflowThreshold, QueryLocatorTTL: c.QueryLocatorTTL,
		APIRequestsMax: c.APIRequestsMax, DeliveredEventsMax: c.DeliveredEventsMax, MergeEvents: !c.SeparateEvents,
	}
}

// Settings returns the current run-time settings.
func (e *Emulator) Settings() Settings { return e.currentSettings() }

func (e *Emulator) currentSettings() Settings {
	e.settingsMu.RLock()
	defer e.settingsMu.RUnlock()
	return e.settings
}

// SetSettings replaces the run-time settings. Zero fields are refused; read, change and write back.
func (e *Emulator) SetSettings(s Settings) error {
	switch {
	case s.TokenLifetime <= 0, s.Retention <= 0, s.KeepaliveInterval <= 0, s.IdleTimeout <= 0, s.QueryLocatorTTL <= 0:
		return errors.New("durations must be positive")
	case s.BulkDelay < 0:
		return errors.New("bulk_delay must not be negative")
	case s.BulkPageSize <= 0, s.OverflowThreshold <= 0, s.APIRequestsMax <= 0, s.DeliveredEventsMax <= 0:
		return errors.New("sizes and limits must be positive")
	}
	e.applySettings(s)
	return nil
}

func (e *Emulator) applySettings(s Settings) {
	e.settingsMu.Lock()
	e.settings = s
	e.settingsMu.Unlock()
	e.log.SetRetention(s.Retention)
	e.store.mu.Lock()
	e.store.overflowThreshold = s.OverflowThreshold
	e.store.mergeEvents = s.MergeEvents
	e.store.mu.Unlock()
	if e.pubsub != nil { // nil while New builds the emulator; New passes the intervals in pubsub.Config
		e.pubsub.SetIntervals(s.KeepaliveInterval, s.IdleTimeout)
	}
}

// Config returns the effective configuration (generated credentials filled in).
func (e *Emulator) Config() Config { return e.cfg }

// UserID returns the integration user's Id (the user API sessions act as).
func (e *Emulator) UserID() string { return e.userID }

// Log returns the CDC event log.
func (e *Emulator) Log() *cdc.Log { return e.log }

// Schemas returns the org's object metadata.
func (e *Emulator) Schemas() *schema.Registry { return e.schemas }

// Faults returns the fault injector of the emulator's HTTP and gRPC traffic.
func (e *Emulator) Faults() *faults.Injector { return e.faults }

// LoginHandler serves the login host (token endpoint for the JWT bearer and refresh-token flows).
func (e *Emulator) LoginHandler() http.Handler {
	return e.faults.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !e.serveOAuth(w, r, false) {
			writeAPIError(w, errNotFound)
		}
	}), faultError)
}

// InstanceHandler serves the org's instance (My Domain) host.
func (e *Emulator) InstanceHandler() http.Handler {
	return e.faults.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case e.serveOAuth(w, r, true):
		case r.URL.Path == "/services/data" || strings.HasPrefix(r.URL.Path, "/services/data/"):
			e.serveData(w, r)
		default:
			writeAPIError(w, errNotFound)
		}
	}), faultError)
}

// serveOAuth serves the OAuth and identity endpoints both hosts have; it reports whether it handled r.
func (e *Emulator) serveOAuth(w http.ResponseWriter, r *http.Request, instanceHost bool) bool {
	switch p := strings.TrimSuffix(r.URL.Path, "/"); {
	case p == "/services/oauth2/token":
		e.handleToken(w, r, instanceHost)
	case p == "/services/oauth2/userinfo":
		e.handleUserinfo(w, r)
	case p == "/services/oauth2/revoke":
		e.handleRevoke(w, r)
	case strings.HasPrefix(p, "/id/"):
		e.handleIdentity(w, r)
	default:
		return false
	}
	return true
}

// handleIdentity serves the identity URL of token responses (/id/<org>/<user>).
func (e *Emulator) handleIdentity(w http.ResponseWriter, r *http.Request) {
	e.count("oauth.identity")
	s, ok := e.tokens.valid(bearer(r))
	if !ok {
		w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
		w.WriteHeader(http.StatusForbidden)
		_, _ = w.Write([]byte("Bad_OAuth_Token"))
		return
	}
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	if len(parts) != 3 || parts[1] != e.cfg.OrgID && parts[1] != e.cfg.OrgID[:15] || parts[2] != s.user && parts[2] != s.user[:15] {
		writeAPIError(w, errNotFound)
		return
	}
	info := e.userinfo(s.user)
	info["id"] = e.identityURL(s.user)
	info["username"] = info["preferred_username"]
	info["display_name"] = info["name"]
	info["nick_name"] = info["nickname"]
	info["asserted_user"] = true
	writeJSONValue(w, http.StatusOK, info)
}

// RegisterGRPC registers the Pub/Sub API service on s.
func (e *Emulator) RegisterGRPC(s *grpc.Server) { e.pubsub.Register(s) }

// Reset restores the seeded state: records, events, tokens, counters, faults, limits and settings.
func (e *Emulator) Reset() error {
	e.bulk.reset()
	e.cursors.reset()
	e.schemas.Reset()
	e.store.reset()
	e.log.Reset()
	e.tokens.reset()
	e.counters.reset()
	e.faults.Reset()
	e.apiRequests.reset()
	e.deliveries.reset()
	e.bulkJobs24h.reset()
	e.applySettings(e.defaultSettings())
	e.adminGenMu.Lock()
	e.adminGen = nil
	e.adminGenMu.Unlock()
	return nil
}

// Close releases background work (Bulk job timers).
func (e *Emulator) Close() {
	e.bulk.reset()
	e.pubsub.Close()
}

// pubsubAuth checks the Pub/Sub auth metadata (spec 6.3): a live access token, the org's instance URL
// and its Id in 15 or 18 characters.
type pubsubAuth struct{ e *Emulator }

func (a pubsubAuth) Authenticate(_ context.Context, accessToken, instanceURL, tenantID string) error {
	e := a.e
	if _, ok := e.tokens.valid(accessToken); !ok {
		return errors.New("the access token is invalid or expired")
	}
	if strings.TrimSuffix(instanceURL, "/") != strings.TrimSuffix(e.cfg.InstanceURL, "/") {
		return errors.New("instanceurl " + instanceURL + " is not this org's instance")
	}
	if tenantID != e.cfg.OrgID && tenantID != e.cfg.OrgID[:15] {
		return errors.New("tenantid " + tenantID + " is not this org's Id")
	}
	return nil
}

// pubsubAllocation is the daily event delivery allocation (spec 5.6), DailyDeliveredPlatformEvents.
type pubsubAllocation struct{ e *Emulator }

func (a pubsubAllocation) ConsumeDeliveries(n int) bool {
	return a.e.deliveries.tryAdd(int64(n), a.e.currentSettings().DeliveredEventsMax)
}

type pubsubCounter struct{ e *Emulator }

func (c pubsubCounter) Count(kind string, n int) { c.e.counters.add(kind, int64(n)) }
