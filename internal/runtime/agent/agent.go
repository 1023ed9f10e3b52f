package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/retry"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/egress"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/writer"
)

// Agent runs one connector.
type Agent struct {
	cfg    Config
	stores Stores
	log    *slog.Logger
	tuning Tuning

	sf     *salesforce.Client
	pubsub *salesforce.PubSub
	dv     *dataverse.Client
	// w writes every table's rows to Dataverse.
	w *writer.Writer
	// windows is the change windows' share of the Dataverse request budget, shared by the tables
	// (groupcommit.go).
	windows *windowBudget

	// stateMu guards tables, started, state and reason: Status and the safeguards read them from other
	// goroutines while Run starts (tables are set once the mappings compile, and cleared between attempts).
	stateMu sync.Mutex
	tables  []*table
	started time.Time
	state   string
	reason  string

	// sg runs the out-of-band edit detector and the reconciliation (safeguards.go).
	sg     *safeguards
	sgOnce sync.Once
}

// New resolves the credentials and builds the clients. It makes no network call.
func New(cfg Config, stores Stores, log *slog.Logger, opts ...Option) (*Agent, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if stores.Checkpoints == nil || stores.DeadLetters == nil || stores.Reporter == nil {
		return nil, errors.New("agent: checkpoint store, dead-letter store and reporter are required")
	}
	if log == nil {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	a := &Agent{cfg: cfg, stores: stores, log: log.With("connector", cfg.Connector), tuning: cfg.Tuning.WithDefaults(), state: "starting"}
	var check egress.Check
	refs := policy.Refs{Unrestricted: true}
	if o.policy {
		// Under a policy every destination and every reference is checked before anything is read or
		// dialled, and each connection again (redirects, the instance a token answer names).
		if fe := policy.CheckConnector(cfg.Spec(), o.hosts, o.refs); fe != nil {
			return nil, fe
		}
		check, refs = o.hosts.CheckHost, o.refs
	}
	var errs []error
	sfc := cfg.Salesforce
	sfSecret, err := secret(refs, "salesforce.client_secret", sfc.ClientSecret, sfc.ClientSecretEnv, sfc.ClientSecretFile, o.allowReadableKeys)
	errs = append(errs, err)
	key, err := secret(refs, "salesforce.private_key", sfc.PrivateKey, sfc.PrivateKeyEnv, sfc.PrivateKeyFile, o.allowReadableKeys)
	errs = append(errs, err)
	if err == nil && key != "" {
		errs = append(errs, checkKey(sourceOf("salesforce.private_key", sfc.PrivateKey, sfc.PrivateKeyEnv, sfc.PrivateKeyFile), []byte(key)))
	}
	dvSecret, err := secret(refs, "dataverse.client_secret", cfg.Dataverse.ClientSecret, cfg.Dataverse.ClientSecretEnv, cfg.Dataverse.ClientSecretFile, o.allowReadableKeys)
	errs = append(errs, err)
	more, err := moreUsers(refs, cfg.Dataverse.AdditionalUsers, o.allowReadableKeys)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	a.sf, err = salesforce.New(salesforce.Config{
		LoginURL: sfc.LoginURL, InstanceURL: sfc.InstanceURL, APIVersion: sfc.APIVersion, Auth: sfc.Auth,
		ClientID: sfc.ClientID, ClientSecret: sfSecret, Username: sfc.Username, PrivateKeyPEM: []byte(key),
		CAFile: sfc.CAFile, ClientName: "crmsync", CheckHost: check,
	})
	if err != nil {
		return nil, err
	}
	addr := sfc.PubSubAddr
	if addr == "" {
		addr = DefaultPubSubAddr
	}
	if a.pubsub, err = a.sf.DialPubSub(addr, sfc.PubSubPlaintext); err != nil {
		return nil, err
	}
	a.dv, err = dataverse.New(dataverse.Config{
		EnvironmentURL: cfg.Dataverse.EnvironmentURL, AuthorityURL: cfg.Dataverse.AuthorityURL, TenantID: cfg.Dataverse.TenantID,
		ClientID: cfg.Dataverse.ClientID, ClientSecret: dvSecret, MoreUsers: more, CAFile: cfg.Dataverse.CAFile, CheckHost: check,
		Fence: o.fence,
	})
	if err != nil {
		return nil, err
	}
	a.w = writer.New(writer.Config{Client: a.dv, BatchSize: a.tuning.BatchSize, Concurrency: a.tuning.WriteConcurrency})
	a.windows = newWindowBudget(1+len(more), time.Now())
	return a, nil
}

// Option adjusts how New builds an agent.
type Option func(*options)

type options struct {
	allowReadableKeys bool
	policy            bool
	hosts             policy.Hosts
	refs              policy.Refs
	fence             func() (string, error)
}

// WithWriteFence makes every Dataverse write ask fence first (dataverse.Config.Fence): an agent running
// under a lease refuses to write once the lease is not surely its own, and tags each write with it.
func WithWriteFence(fence func() (tag string, err error)) Option {
	return func(o *options) { o.fence = fence }
}

// WithPolicy makes the agent keep to a destination and a reference policy (package policy): its connector's
// URLs and references are checked at start (the error names the field), every connection asks the
// destination policy, and secrets are resolved only within the reference policy. Without it the agent
// trusts its configuration (the library's default, for tests).
func WithPolicy(h policy.Hosts, r policy.Refs) Option {
	return func(o *options) { o.policy, o.hosts, o.refs = true, h, r }
}

// AllowReadableKeyFiles accepts secret files (private_key_file, client_secret_file) that group or others can
// read; they are refused otherwise.
func AllowReadableKeyFiles() Option { return func(o *options) { o.allowReadableKeys = true } }

// Salesforce returns the agent's Salesforce client (for its call counters).
func (a *Agent) Salesforce() *salesforce.Client { return a.sf }

// Dataverse returns the agent's Dataverse client (for its request counters).
func (a *Agent) Dataverse() *dataverse.Client { return a.dv }

// prepare reads both schemas and compiles every table's mapping against them: live validation. Every
// problem of every table is reported at once.
func (a *Agent) prepare(ctx context.Context) error {
	sc, err := a.readSchemas(ctx)
	if err != nil {
		return err
	}
	synced := a.cfg.SyncedTables()
	var errs []error
	var tables []*table
	for _, tc := range a.cfg.Tables {
		// The effective columns come resolved with the config; Compile checks them against the live schemas.
		live := mapping.Live{Source: sc.describes[tc.SourceTable].SourceSchema(), Dest: sc.dests[tc.Destination()]}
		plan, probs := mapping.Compile(tc.TableConfig, tc.EffectiveColumns, live, mapping.Tables{DestOf: synced, EntitySetOf: sc.entitySets, OwnerTeamID: a.cfg.TeamID})
		for _, p := range probs {
			if p.Severity == mapping.Error {
				errs = append(errs, fmt.Errorf("%s → %s: %s: %s", tc.SourceTable, tc.Destination(), p.Path, p.Message))
			} else {
				a.log.Warn("mapping warning", "table", tc.SourceTable, "path", p.Path, "warning", p.Message)
			}
		}
		if plan != nil {
			tables = append(tables, a.newTable(tc.TableConfig, plan, sc.describes[tc.SourceTable]))
		}
	}
	if err := errors.Join(errs...); err != nil {
		a.setTables(tables)
		return &MappingError{err}
	}
	linkLookups(tables, sc.describes, synced)
	// Status reads the tables from other goroutines (the /status listener runs while the agent starts).
	a.setTables(tables)
	return nil
}

// schemas are the live schemas of a connector's tables.
type schemas struct {
	describes  map[string]*salesforce.Describe // by source table
	dests      map[string]*mapping.DestSchema  // by destination table
	entitySets map[string]string               // destination table → entity set
}

// readSchemas reads the Salesforce object and the Dataverse table of every mapping. A table that does not
// exist is a ConfigError.
func (a *Agent) readSchemas(ctx context.Context) (*schemas, error) {
	sc := &schemas{describes: map[string]*salesforce.Describe{}, dests: map[string]*mapping.DestSchema{}, entitySets: map[string]string{}}
	for _, tc := range a.cfg.Tables {
		d, err := a.sf.Describe(ctx, tc.SourceTable)
		if err != nil {
			if sfNotFound(err) {
				// The org has no such object: waiting will not make one (a configuration error).
				return nil, &ConfigError{fmt.Errorf("source_table %s: the Salesforce org has no such object, or the integration user cannot see it (%w)", tc.SourceTable, err)}
			}
			return nil, fmt.Errorf("describing Salesforce %s: %w", tc.SourceTable, err)
		}
		sc.describes[tc.SourceTable] = d
		ds, err := a.dv.Table(ctx, tc.Destination())
		if err != nil {
			if dataverse.IsNotFound(err) {
				return nil, &ConfigError{fmt.Errorf("destination_table %s: the Dataverse environment has no such table (%w)", tc.Destination(), err)}
			}
			return nil, fmt.Errorf("reading Dataverse table %s: %w", tc.Destination(), err)
		}
		sc.dests[tc.Destination()] = ds
		sc.entitySets[ds.Table] = ds.EntitySetName
	}
	return sc, nil
}

// newTable assembles one table's pipeline around its compiled plan.
func (a *Agent) newTable(tc mapping.TableConfig, plan *mapping.Plan, d *salesforce.Describe) *table {
	types := salesforce.FieldTypes{}
	for _, f := range d.Fields {
		if f.Type == "date" || f.Type == "datetime" {
			types[f.Name] = f.Type
		}
	}
	log := a.log.With("table", tc.SourceTable)
	st := &tableStats{log: log}
	return &table{
		cfg: tc, plan: plan, log: log, tuning: a.tuning, dead: a.stores.DeadLetters,
		rd: &reader{sf: a.sf, pubsub: a.pubsub, object: tc.SourceTable, fields: plan.SourceFields(), topic: changeTopic(d.Name), types: types,
			pageSize: a.tuning.PageSize},
		ap: &applier{plan: plan, table: tc.SourceTable, dead: a.stores.DeadLetters, st: st},
		w:  a.w,
		target: writer.Target{Table: plan.DestTable, EntitySet: plan.EntitySet, PrimaryID: plan.PrimaryID,
			OnRefused: deadLetterRefusal(a.stores.DeadLetters, plan.SourceTable, st)},
		pos:     newPositions(tc.SourceTable, newMappingID(plan), a.stores.Checkpoints, log),
		st:      st,
		windows: a.windows,
		loaded:  make(chan struct{}),
	}
}

// linkLookups connects tables whose lookups point at other synced tables: such a table loads after the
// tables it points at (so binds find their targets), and a merge in a table re-reads the records of the
// tables pointing at it (merge.go).
func linkLookups(tables []*table, describes map[string]*salesforce.Describe, synced map[string]string) {
	byDest := map[string]*table{}
	for _, t := range tables {
		byDest[t.plan.DestTable] = t
	}
	for _, t := range tables {
		for _, c := range t.plan.Columns() {
			f, _ := describes[t.cfg.SourceTable].Field(c.Source)
			for _, ref := range f.ReferenceTo {
				dep, ok := byDest[synced[ref]]
				if !ok {
					continue
				}
				if t.lookupsTo == nil {
					t.lookupsTo = map[*table][]string{}
				}
				if !slices.Contains(t.lookupsTo[dep], f.Name) {
					t.lookupsTo[dep] = append(t.lookupsTo[dep], f.Name)
				}
				if dep != t && !slices.Contains(t.deps, dep) {
					t.deps = append(t.deps, dep)
				}
			}
		}
	}
	for _, t := range tables {
		for dep, fields := range t.lookupsTo {
			if dep.children == nil {
				dep.children = map[*table][]string{}
			}
			dep.children[t] = fields
		}
	}
}

func (a *Agent) setTables(tables []*table) {
	a.stateMu.Lock()
	a.tables = tables
	a.stateMu.Unlock()
}

// Run syncs until ctx ends. A connector that cannot start (unreachable services, refused credentials,
// mappings the live schemas refuse) reports failed with the reason and tries again with backoff (at least
// every minute), so the state clears by itself once the cause is fixed; failures after the start are
// retried inside and show in status. It returns ctx's error.
func (a *Agent) Run(ctx context.Context) error {
	a.stateMu.Lock()
	a.started = time.Now().UTC()
	a.stateMu.Unlock()
	defer a.pubsub.Close()
	for attempt := 1; ; attempt++ {
		err := a.prepare(ctx)
		if err == nil {
			break
		}
		var ce *ConfigError
		if errors.As(err, &ce) {
			// A table that does not exist will not appear by waiting: stop at start, naming it (status says why;
			// under a control plane the runner reports it until the configuration changes).
			a.setState("failed", err.Error())
			a.report(context.WithoutCancel(ctx))
			return err
		}
		if ctx.Err() != nil {
			a.setState("failed", err.Error())
			a.report(context.WithoutCancel(ctx))
			return ctx.Err()
		}
		// Unreachable services, refused credentials, mappings the live schemas refuse: report and try again.
		a.setState("failed", err.Error())
		a.report(ctx)
		a.log.Error("cannot start the connector; retrying", "err", err, "attempt", attempt)
		a.stateMu.Lock()
		a.tables = nil
		a.stateMu.Unlock()
		if err := retry.Sleep(ctx, retryDelay(attempt)); err != nil {
			return err
		}
	}
	a.setState("running", "")
	var wg sync.WaitGroup
	for _, t := range a.tables {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := t.run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				t.st.recordError(err)
			}
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); a.guards().run(ctx) }()
	tick := time.NewTicker(time.Duration(a.tuning.StatusInterval))
	defer tick.Stop()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-tick.C:
			a.report(ctx)
		case <-done:
			a.setState("stopped", "")
			a.report(context.WithoutCancel(ctx))
			return nil
		}
	}
}

func (a *Agent) setState(s, reason string) {
	a.stateMu.Lock()
	a.state, a.reason = s, reason
	a.stateMu.Unlock()
}

// tableList returns the tables being synced (none until the mappings compiled).
func (a *Agent) tableList() []*table {
	a.stateMu.Lock()
	defer a.stateMu.Unlock()
	return a.tables
}

// sfNotFound reports whether Salesforce answered 404: the object does not exist (or the user cannot see it).
func sfNotFound(err error) bool {
	var e *salesforce.APIError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

// ConfigError is a configuration that cannot work whatever the wait: a table that does not exist. Run returns
// it at start instead of retrying.
type ConfigError struct{ err error }

func (e *ConfigError) Error() string { return e.err.Error() }
func (e *ConfigError) Unwrap() error { return e.err }

// MappingError reports mappings that do not fit the live schemas: the connector cannot start until its
// configuration changes.
type MappingError struct{ err error }

func (e *MappingError) Error() string { return "invalid mappings: " + e.err.Error() }
func (e *MappingError) Unwrap() error { return e.err }

// Status returns the current status.
func (a *Agent) Status() Status {
	a.stateMu.Lock()
	state, reason, started, tables := a.state, a.reason, a.started, a.tables
	a.stateMu.Unlock()
	s := Status{State: state, Reason: reason, Revision: a.cfg.Revision, StartedAt: started, SalesforceCalls: a.sf.Stats.Total()}
	dv := a.dv.Stats.Snapshot()
	s.DataverseCalls, s.Throttled = dv["requests"], dv["throttled"]
	s.Calls = map[string]int64{}
	for k, v := range a.sf.Stats.Snapshot() {
		s.Calls["salesforce."+k] = v
	}
	for k, v := range dv {
		s.Calls["dataverse."+k] = v
	}
	s.ApplicationUsers = a.dv.UserStatus()
	phases := map[string]int{}
	for _, t := range tables {
		ts := t.status()
		s.Tables = append(s.Tables, ts)
		phases[ts.Phase]++
	}
	if state == "running" {
		switch {
		case phases[PhaseFailed] > 0 && phases[PhaseFailed] == len(s.Tables):
			s.State, s.Reason = PhaseFailed, failedTables(s.Tables)
		case phases[PhaseFailed] > 0:
			// Some tables are stuck on an error that needs a person while the others sync.
			s.State, s.Reason = StateDegraded, failedTables(s.Tables)
		case phases[PhaseInitialLoad] > 0 || phases[PhasePending] > 0:
			s.State = PhaseInitialLoad
		case phases[PhaseResync] > 0:
			s.State = PhaseResync
		case len(s.Tables) > 0:
			s.State = PhaseStreaming
		}
	}
	a.guards().decorate(&s)
	return s
}

// failedTables names each failed table with its reason, whole.
func failedTables(ts []TableStatus) string {
	var out []string
	for _, t := range ts {
		if t.Phase == PhaseFailed {
			out = append(out, t.Table+": "+t.Reason)
		}
	}
	return strings.Join(out, "; ")
}

func (a *Agent) report(ctx context.Context) {
	if err := a.stores.Reporter.Report(ctx, a.Status()); err != nil && ctx.Err() == nil {
		a.log.Warn("reporting status", "err", err)
	}
}

// changeTopic is the single-entity change-event channel of an object: /data/ContactChangeEvent for a
// standard object, /data/Foo__ChangeEvent for the custom object Foo__c (spec 5.1).
func changeTopic(object string) string {
	if base, custom := strings.CutSuffix(object, "__c"); custom {
		return "/data/" + base + "__ChangeEvent"
	}
	return "/data/" + object + "ChangeEvent"
}
