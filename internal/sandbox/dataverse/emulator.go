// Package dataverse emulates the Microsoft Dataverse Web API (v9.2) and its Entra ID token endpoint,
// faithfully to the documented behaviour (docs/sandbox-dataverse.md says what and where it guessed), for the
// contact and account tables crmsync writes. It also serves
// an admin API for tests and the demo.
//
// What a client sees: client-credentials tokens (spec 1), WhoAmI (2.3), table and attribute metadata with
// the derived-type casts (3), creates, updates, PATCH upserts, deletes and @odata.bind lookups (4.1-4.6),
// CreateMultiple/UpdateMultiple/UpsertMultiple (4.7), $batch with atomic change sets (4.8), queries with
// $select/$filter/$orderby/$top and server-driven paging (5), the error shapes of spec 6, service-protection
// 429s (7), and teams, roles and privilege checks (8). docs/sandbox-dataverse.md lists what is emulated and
// the admin API.
//
// Concurrency: one RWMutex guards every table, the schema and the security model; writes hold it for the
// whole of one operation, bulk message or change set, which is what makes those atomic.
package dataverse

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/clock"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
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
	// ApplicationUsers adds that many application users besides ClientID: each an app registration with a
	// client id and secret of its own and a systemuser holding System Administrator like the first. Each has a
	// service-protection budget of its own, so a sync can spread its writes over them.
	ApplicationUsers int
	// TokenLifetime is how long an access token stays valid; 3599 s when zero.
	TokenLifetime time.Duration
	Seed          int64

	// OrganizationID is WhoAmI's OrganizationId; generated when empty.
	OrganizationID string
	// Limits are the service-protection limits and costs (spec 7); zero fields take Dataverse's defaults.
	Limits Limits
	// BulkMessagesOff lists "table:Message" pairs (e.g. "account:UpsertMultiple") that start switched off;
	// by default CreateMultiple, UpdateMultiple and UpsertMultiple are available on contact and account.
	BulkMessagesOff []string
	// Behaviour switches facts the spec marks unverified; the zero value is the emulator's best guess.
	Behaviour Behaviour
}

// Behaviour holds the switches for unverified Dataverse behaviour. The zero value enforces everything.
type Behaviour struct {
	// AllowMissingRequired accepts creates that omit ApplicationRequired columns (lastname, name). Dataverse
	// documents that only forms enforce ApplicationRequired; the emulator enforces it unless this is set.
	AllowMissingRequired bool `json:"allow_missing_required"`
	// IgnoreReadOnlyColumns silently drops columns not valid for the operation (statecode on create,
	// createdon, ...) instead of failing with 400.
	IgnoreReadOnlyColumns bool `json:"ignore_read_only_columns"`
	// SkipEmailValidation accepts any string in e-mail columns.
	SkipEmailValidation bool `json:"skip_email_validation"`
	// OwnerNeedsNoRead drops the check that a bound owner holds read on the table.
	OwnerNeedsNoRead bool `json:"owner_needs_no_read"`
}

func (b Behaviour) settings() settings {
	return settings{enforceRequired: !b.AllowMissingRequired, rejectReadOnly: !b.IgnoreReadOnlyColumns,
		validateEmail: !b.SkipEmailValidation, requireOwnerRead: !b.OwnerNeedsNoRead}
}

// bulkMessages are the bulk operations of spec 4.7 whose availability is switchable per table.
var bulkMessages = []string{"CreateMultiple", "UpdateMultiple", "UpsertMultiple"}

// user is a systemuser the emulator knows: the application user, a person, and SYSTEM.
type user struct {
	id, appID, aadID [16]byte
	first, last      string
	domain           string
	accessMode       int64
	roles            []*role
}

func (u *user) fullName() string {
	if u.first == "" {
		return u.last
	}
	return u.first + " " + u.last
}

// Users by index in Emulator.users.
const (
	userApp = iota
	userPerson
	userSystem
)

// Emulator is one emulated Dataverse environment.
type Emulator struct {
	cfg    Config
	log    *slog.Logger
	clock  *clock.Clock
	faults *faults.Injector
	key    []byte // signs access tokens
	prot   *protector
	count  counters
	tokens tokenCache

	api, authority, admin http.Handler

	// apps are the app registrations the token endpoint knows: the configured one first, then
	// Config.ApplicationUsers more; each signs in as its own systemuser.
	apps []appRegistration

	// fixed identities (deterministic from Seed)
	orgID, rootBU            [16]byte
	fullTeam, emptyTeam      [16]byte
	users                    []*user
	privileges               map[string]*privilege // by name
	privilegeOrder           []*privilege
	sysadmin, fullRole, none *role

	mu        sync.RWMutex
	tables    []*table
	byLogical map[string]*table
	bySet     map[string]*table
	version   int64
	rng       *mrand.Rand
	set       settings
	behaviour Behaviour
	bulk      map[string]map[string]bool // table → message → available
	teams     map[[16]byte]*teamInfo
	// write-path scratch buffers, used under the write lock
	scratch       []byte
	valScratch    []value
	changeScratch []change
	undoScratch   []undoEntry
}

type teamInfo struct {
	id    [16]byte
	name  string
	roles []*role
}

// New creates an emulator with the contact and account tables, one team holding every privilege on them and
// one team holding none.
func New(cfg Config) (*Emulator, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.New()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.EnvironmentURL == "" || cfg.AuthorityURL == "" {
		return nil, errors.New("dataverse emulator: EnvironmentURL and AuthorityURL are required")
	}
	seeded := mrand.New(mrand.NewPCG(uint64(cfg.Seed), 0x64617461766572)) //nolint:gosec // G404: repeatable ids, not secrets
	gen := func() [16]byte { return randomUUID(seeded) }
	orDefault := func(s *string) {
		if *s == "" {
			*s = guidString(gen())
		}
	}
	orDefault(&cfg.TenantID)
	orDefault(&cfg.ClientID)
	orDefault(&cfg.OrganizationID)
	if cfg.ClientSecret == "" {
		var err error
		if cfg.ClientSecret, err = newClientSecret(); err != nil {
			return nil, err
		}
	}
	if cfg.ApplicationUsers < 0 || cfg.ApplicationUsers > maxApplicationUsers {
		return nil, fmt.Errorf("dataverse emulator: ApplicationUsers must be 0 to %d, got %d", maxApplicationUsers, cfg.ApplicationUsers)
	}
	if cfg.TokenLifetime <= 0 {
		cfg.TokenLifetime = time.Duration(cfg.Limits.TokenLifetime) // either field may set it
	}
	if cfg.TokenLifetime <= 0 {
		cfg.TokenLifetime = 3599 * time.Second
	}
	for _, id := range []string{cfg.TenantID, cfg.ClientID, cfg.OrganizationID} {
		if _, ok := parseGUID(id); !ok {
			return nil, fmt.Errorf("dataverse emulator: %q is not a GUID", id)
		}
	}
	limits := cfg.Limits.withDefaults()
	limits.TokenLifetime = Duration(cfg.TokenLifetime)
	cfg.Limits = limits

	e := &Emulator{cfg: cfg, log: cfg.Logger, clock: cfg.Clock, faults: faults.New()}
	e.key = make([]byte, 32)
	if _, err := rand.Read(e.key); err != nil {
		return nil, err
	}
	e.orgID, _ = parseGUID(cfg.OrganizationID)
	e.rootBU = gen()
	e.fullTeam, e.emptyTeam = gen(), gen()
	appID, _ := parseGUID(cfg.ClientID)
	e.users = []*user{
		{id: gen(), appID: appID, aadID: gen(), first: "#", last: "crmsync sandbox application", domain: "crmsync-app@sandbox.invalid", accessMode: 4},
		{id: gen(), aadID: gen(), first: "Pat", last: "Person", domain: "pat.person@sandbox.invalid"},
		{id: gen(), first: "", last: "SYSTEM", domain: "", accessMode: 0},
	}
	e.buildPrivileges(gen)
	// Added after every other generated id, so that the identities of an emulator with one application user
	// do not change when more are asked for.
	e.apps = []appRegistration{{clientID: cfg.ClientID, secret: cfg.ClientSecret, user: userApp}}
	if err := e.addApplicationUsers(cfg.ApplicationUsers, gen); err != nil {
		return nil, err
	}
	e.prot = newProtector(e.clock, limits)
	if err := e.reset(); err != nil {
		return nil, err
	}
	for _, pair := range cfg.BulkMessagesOff {
		tbl, msg, ok := cutPair(pair)
		if !ok {
			return nil, fmt.Errorf("dataverse emulator: BulkMessagesOff entry %q is not table:Message", pair)
		}
		if err := e.SetBulkMessage(tbl, msg, false); err != nil {
			return nil, err
		}
	}
	e.api = e.faults.Middleware(http.HandlerFunc(e.serveAPI), e.writeFaultError)
	e.authority = e.faults.Middleware(e.authorityMux(), e.writeAuthFault)
	e.admin = e.adminMux()
	return e, nil
}

func cutPair(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ':' {
			return s[:i], s[i+1:], i > 0 && i < len(s)-1
		}
	}
	return "", "", false
}

func randomUUID(r *mrand.Rand) [16]byte {
	var g [16]byte
	binary.LittleEndian.PutUint64(g[:8], r.Uint64())
	binary.LittleEndian.PutUint64(g[8:], r.Uint64())
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g
}

// reset rebuilds the tables, the security model and the counters; it keeps tokens valid.
func (e *Emulator) reset() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.rng = mrand.New(mrand.NewPCG(uint64(e.cfg.Seed), 0x726f7773)) //nolint:gosec // G404: repeatable row ids, not secrets
	e.behaviour = e.cfg.Behaviour
	e.set = e.behaviour.settings()
	e.version = 1000
	e.tables = nil
	e.byLogical = map[string]*table{}
	e.bySet = map[string]*table{}
	for _, t := range []*table{contactTable(), accountTable(), systemUserTable(), teamTable(), businessUnitTable(),
		roleTable(), sdkMessageTable(), sdkMessageFilterTable()} {
		e.addTable(t)
	}
	for _, name := range []string{"team", "systemuser", "businessunit", "role", "sdkmessage", "sdkmessagefilter"} {
		e.byLogical[name].system = true
	}
	e.bulk = map[string]map[string]bool{}
	for _, t := range []string{"contact", "account"} {
		e.bulk[t] = map[string]bool{}
		for _, m := range bulkMessages {
			e.bulk[t][m] = true
		}
	}
	e.resetSecurity()
	e.fillSystemTables()
	e.count.reset()
	e.faults.Reset()
	e.prot.reset(e.cfg.Limits)
	return nil
}

func (e *Emulator) addTable(t *table) {
	t.idx = len(e.tables)
	t.privs = privilegesOf(t)
	t.clear()
	t.slotCols = make([]*column, t.nslots)
	for _, c := range t.cols {
		if c.slot >= 0 {
			t.slotCols[c.slot] = c
		}
	}
	e.tables = append(e.tables, t)
	e.byLogical[t.Logical] = t
	e.bySet[t.Set] = t
}

func (e *Emulator) table(logical string) *table { return e.byLogical[logical] }

// newID returns a GUID for a row created without a caller-chosen key. Callers hold e.mu.
func (e *Emulator) newID() [16]byte { return randomUUID(e.rng) }

func (e *Emulator) nextVersion() int64 {
	e.version++
	return e.version
}

func (e *Emulator) userValue(idx uint16) value {
	if int(idx) >= len(e.users) {
		return value{}
	}
	return guidRef(e.table("systemuser"), e.users[idx].id)
}

func (e *Emulator) userIndex(id [16]byte) int {
	for i, u := range e.users {
		if u.id == id {
			return i
		}
	}
	return -1
}

// primaryName is the primary-name value of a row (empty when the row or the name is missing).
func (e *Emulator) primaryName(t *table, id [16]byte) value {
	c := t.byLogical[t.PrimaryName]
	slot, ok := t.lookup(id)
	if c == nil || !ok {
		return value{}
	}
	var v rowView
	v.e = e
	v.load(t, slot)
	return v.get(c)
}

// fillSystemTables writes the business unit, users, teams, roles and SDK message rows. Callers hold e.mu.
func (e *Emulator) fillSystemTables() {
	now := e.clock.Now().Unix()
	tx := &txn{e: e}
	put := func(t *table, id [16]byte, cols map[string]value) {
		vals := make([]value, t.nslots)
		for name, v := range cols {
			vals[t.byLogical[name].slot] = v
		}
		ref := t.arena.put(t.encode(nil, vals))
		tx.insert(t, row{id: id, created: now, modified: now, version: e.nextVersion(), ref: ref, createdBy: userSystem, modifiedBy: userSystem})
	}
	s := func(x string) value { return value{kind: vString, s: x} }
	i := func(x int64) value { return value{kind: vInt, i: x} }
	g := func(t string, id [16]byte) value { return guidRef(e.table(t), id) }
	b := func(x bool) value {
		if x {
			return value{kind: vBool, i: 1}
		}
		return value{kind: vBool}
	}
	put(e.table("businessunit"), e.rootBU, map[string]value{"name": s("crmsync-sandbox")})
	for _, u := range e.users {
		cols := map[string]value{"fullname": s(u.fullName()), "lastname": s(u.last), "domainname": s(u.domain),
			"businessunitid": g("businessunit", e.rootBU), "isdisabled": b(false), "accessmode": i(u.accessMode)}
		if u.first != "" {
			cols["firstname"] = s(u.first)
		}
		if u.appID != ([16]byte{}) {
			cols["applicationid"] = g("systemuser", u.appID)
		}
		if u.aadID != ([16]byte{}) {
			cols["azureactivedirectoryobjectid"] = g("systemuser", u.aadID)
		}
		put(e.table("systemuser"), u.id, cols)
	}
	teamIDs := make([][16]byte, 0, len(e.teams))
	for id := range e.teams {
		teamIDs = append(teamIDs, id)
	}
	sort.Slice(teamIDs, func(a, b int) bool { return compareBytes(teamIDs[a], teamIDs[b]) < 0 })
	for _, id := range teamIDs {
		tm := e.teams[id]
		put(e.table("team"), id, map[string]value{"name": s(tm.name), "teamtype": i(0), "businessunitid": g("businessunit", e.rootBU),
			"isdefault": b(false), "description": s("crmsync sandbox owner team")})
	}
	for _, r := range []*role{e.sysadmin, e.fullRole, e.none} {
		put(e.table("role"), r.id, map[string]value{"name": s(r.name), "businessunitid": g("businessunit", e.rootBU)})
	}
	msgs := e.table("sdkmessage")
	for _, m := range append([]string{"Create", "Update", "Delete", "Retrieve", "RetrieveMultiple"}, bulkMessages...) {
		put(msgs, metadataID("sdkmessage", m), map[string]value{"name": s(m)})
	}
	tx.commit()
	e.syncMessageFilters()
}

// syncMessageFilters rewrites the sdkmessagefilter rows from the bulk-message switches, so the probe of
// spec 4.7 answers as the switches say. Callers hold e.mu.
func (e *Emulator) syncMessageFilters() {
	t := e.table("sdkmessagefilter")
	t.clear()
	now := e.clock.Now().Unix()
	tx := &txn{e: e}
	for _, tbl := range []string{"contact", "account"} {
		for _, m := range append([]string{"Create", "Update", "Delete", "Retrieve", "RetrieveMultiple"}, bulkMessages...) {
			if avail, ok := e.bulk[tbl][m]; ok && !avail {
				continue
			}
			vals := make([]value, t.nslots)
			vals[t.col("sdkmessageid").slot] = guidRef(e.table("sdkmessage"), metadataID("sdkmessage", m))
			vals[t.col("primaryobjecttypecode").slot] = value{kind: vString, s: tbl}
			vals[t.col("isvisible").slot] = value{kind: vBool, i: 1}
			tx.insert(t, row{id: metadataID("sdkmessagefilter", m, tbl), created: now, modified: now, version: e.nextVersion(),
				ref: t.arena.put(t.encode(nil, vals)), createdBy: userSystem, modifiedBy: userSystem})
		}
	}
	tx.commit()
}

// Config returns the effective configuration (generated IDs and secrets filled in).
func (e *Emulator) Config() Config { return e.cfg }

// TeamID is the team with create, read, write, append and append-to on contact and account.
func (e *Emulator) TeamID() string { return guidString(e.fullTeam) }

// TeamWithoutPrivilegesID is a team whose roles grant nothing on contact and account.
func (e *Emulator) TeamWithoutPrivilegesID() string { return guidString(e.emptyTeam) }

// ApplicationUserID is the systemuserid the client-credentials token maps to (WhoAmI's UserId).
func (e *Emulator) ApplicationUserID() string { return guidString(e.users[userApp].id) }

// PersonUserID is the systemuser that out-of-band edits are attributed to.
func (e *Emulator) PersonUserID() string { return guidString(e.users[userPerson].id) }

// BusinessUnitID is the root business unit.
func (e *Emulator) BusinessUnitID() string { return guidString(e.rootBU) }

// APIHandler serves the environment host (/api/data/v9.2/...).
func (e *Emulator) APIHandler() http.Handler { return e.api }

// AuthorityHandler serves the token endpoint host ({tenant}/oauth2/v2.0/token).
func (e *Emulator) AuthorityHandler() http.Handler { return e.authority }

// AdminHandler serves the admin API; the sandbox mounts it under /dataverse/.
func (e *Emulator) AdminHandler() http.Handler { return e.admin }

// Faults is the fault injector wrapped around the API and token endpoints.
func (e *Emulator) Faults() *faults.Injector { return e.faults }

// Reset empties the tables and restores counters, faults, limits, custom columns, privileges and
// bulk-message switches. Issued tokens stay valid.
func (e *Emulator) Reset() error {
	if err := e.reset(); err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, pair := range e.cfg.BulkMessagesOff {
		tbl, msg, _ := cutPair(pair)
		if m := e.bulk[tbl]; m != nil {
			m[msg] = false
		}
	}
	e.syncMessageFilters()
	return nil
}

// Close releases background work (there is none; the emulator is passive).
func (e *Emulator) Close() {}

// counterKind names a request counter of the admin API.
type counterKind int

const (
	cToken counterKind = iota
	cSingleWrite
	cBulkMessage
	cBulkItems
	cBatch
	cBatchOps
	cRead
	cMetadata
	cWhoAmI
	cThrottled
	cEarlyRetries
	cUnauthorized
	nCounters
)

var counterNames = [nCounters]string{"token", "single_write", "bulk_message", "bulk_items", "batch", "batch_operations",
	"read", "metadata", "whoami", "throttled", "early_retries", "unauthorized"}

type counters struct{ n [nCounters]atomic.Int64 }

func (c *counters) add(k counterKind, d int64) { c.n[k].Add(d) }

// tally counts an operation by kind; operations inside a $batch count only as batch_operations.
func (e *Emulator) tally(c *opCtx, k counterKind, d int64) {
	if !c.inBatch {
		e.count.add(k, d)
	}
}

func (c *counters) reset() {
	for i := range c.n {
		c.n[i].Store(0)
	}
}

// Counters returns the request counters by kind: token, single_write, bulk_message, bulk_items, batch,
// batch_operations, read, metadata, whoami, throttled, early_retries, unauthorized.
func (e *Emulator) Counters() map[string]int64 {
	out := make(map[string]int64, nCounters)
	for i, name := range counterNames {
		out[name] = e.count.n[i].Load()
	}
	return out
}

// EarlyRetries is the number of requests that arrived before their client's last Retry-After expired.
func (e *Emulator) EarlyRetries() int64 { return e.count.n[cEarlyRetries].Load() }
