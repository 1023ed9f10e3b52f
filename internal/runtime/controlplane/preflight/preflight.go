// Package preflight talks to Salesforce and Dataverse on the control plane's behalf: the activation checks
// and the live schemas of mapping validation (controlplane.Checker).
//
// Contracts:
//   - Preflight runs every check and returns them all, in a fixed order (salesforce_credentials,
//     dataverse_credentials, change_topics, team_privileges, mappings, api_budget, data_size), so a person sees
//     every problem at once. A check fails (OK false) only on something that stops the sync; a caveat passes
//     with Warning true. A check that cannot run because a check it depends on failed says so and fails too.
//   - Secrets: inline ones come decrypted from the store. *_env, *_file and ca_file references are resolved
//     only within Config.Refs, the reference policy (package policy); the zero policy, which crmsync serve's
//     own preflight uses, resolves none, so the control plane never reads its host for a caller (the checks
//     of connectors with references run agent-side: package preflight's Dispatcher). A reference outside
//     the policy makes the checks needing that side warnings saying the agent resolves it on its own host.
//   - Destinations: every connection (token endpoints, REST, Pub/Sub, redirects, the instance a token answer
//     names) is checked against Config.Hosts, the destination policy; a refused one fails its check.
//   - Nothing is cached across calls: each call builds its own clients (tokens included) and reads the
//     schemas afresh, because a person fixing a failed check expects the next activation to see the fix.
//   - Every network call is bounded by ctx and by per-request timeouts; a preflight never hangs.
package preflight

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
)

// Check names, in the order Preflight returns them.
//
//nolint:gosec // names of checks, not credentials
const (
	CheckSalesforceCredentials = "salesforce_credentials"
	CheckDataverseCredentials  = "dataverse_credentials"
	CheckChangeTopics          = "change_topics"
	CheckTeamPrivileges        = "team_privileges"
	CheckMappings              = "mappings"
	CheckAPIBudget             = "api_budget"
	CheckDataSize              = "data_size"
)

// Defaults of Config. The row size and the guidance are estimates, not published limits: the original
// connector's documentation recommends staying under 10 GB of synced data, and Dataverse's storage per row
// of a contact or account with the predefined columns is about a couple of kilobytes. Both are configurable.
const (
	DefaultRowBytes        = 2 << 10
	DefaultSizeGuidance    = 10 << 30
	DefaultRequestTimeout  = 30 * time.Second
	DefaultCallsPerTable   = 10 // describe, count, Bulk job create, status polls, delete
	defaultPageSize        = api.DefaultPageSize
	budgetHeadroomFraction = 0.10 // warn when the load would leave less than this share of the daily limit
)

// Config configures a Checker.
type Config struct {
	Logger *slog.Logger
	// RowBytes is the estimated Dataverse storage of one synced row; DefaultRowBytes when zero.
	RowBytes int64
	// SizeGuidance is the data size above which data_size warns; DefaultSizeGuidance when zero.
	SizeGuidance int64
	// RequestTimeout bounds one HTTP exchange with either service; DefaultRequestTimeout when zero.
	RequestTimeout time.Duration
	// Hosts is the destination policy every connection is checked against (the real services' hosts only
	// when zero).
	Hosts policy.Hosts
	// Refs is the reference policy: the *_env, *_file and ca_file references that may be resolved on this
	// host (none when zero).
	Refs policy.Refs
}

// Checker implements controlplane.Checker.
type Checker struct {
	cfg Config
	log *slog.Logger
}

var _ controlplane.Checker = (*Checker)(nil)

// New returns a Checker with the default estimates.
func New(logger *slog.Logger) controlplane.Checker { return NewChecker(Config{Logger: logger}) }

// NewChecker returns a Checker.
func NewChecker(cfg Config) *Checker {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RowBytes <= 0 {
		cfg.RowBytes = DefaultRowBytes
	}
	if cfg.SizeGuidance <= 0 {
		cfg.SizeGuidance = DefaultSizeGuidance
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	return &Checker{cfg: cfg, log: cfg.Logger.With("component", "preflight")}
}

// unresolved is a secret the control plane cannot read on its host; the agent may.
type unresolved struct{ why string }

func (u *unresolved) Error() string { return u.why }

// resolve returns a secret: the stored inline value, else the environment variable or file named by the
// connector, read on this host within the reference policy. A reference the policy does not let this host
// resolve, or that is not there, is an *unresolved error.
func (c *Checker) resolve(field, inline, env, file string) (string, error) {
	switch {
	case inline != "":
		return inline, nil
	case env != "":
		v, err := c.cfg.Refs.Getenv(field+"_env", env)
		if err != nil {
			return "", &unresolved{fmt.Sprintf("%s_env %s is not resolved here (%v); the agent resolves it on its own host", field, env, err)}
		}
		return v, nil
	case file != "":
		b, err := c.cfg.Refs.ReadFile(field+"_file", file)
		if err != nil {
			return "", &unresolved{fmt.Sprintf("%s_file %s is not read here (%v); the agent resolves it on its own host", field, file, err)}
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", nil
}

// caFile returns a CA file the policy lets this host read, or an *unresolved error.
func (c *Checker) caFile(field, file string) (string, error) {
	if file == "" {
		return "", nil
	}
	if fe := c.cfg.Refs.CheckFile(field, file); fe != nil {
		return "", &unresolved{fmt.Sprintf("%s is not read here (%v); the agent reads it on its own host", field, fe)}
	}
	return file, nil
}

// sides holds one call's clients; nil when that side could not be built.
type sides struct {
	sf       *salesforce.Client
	sfErr    error // why sf is nil or its session failed
	sfUnres  bool  // sfErr is an unresolved secret (a warning, not a failure)
	dv       *dataverse.Client
	dvErr    error
	dvUnres  bool
	sfConfig api.SalesforceSettings
}

func (c *Checker) connect(conn api.Connector, secrets store.Secrets) *sides {
	s := &sides{sfConfig: conn.Salesforce}
	sfc := conn.Salesforce
	var key, sfSecret string
	var errs []error
	if sfc.Auth == salesforce.AuthJWTBearer {
		k, err := c.resolve("salesforce.private_key", secrets["salesforce.private_key"], sfc.PrivateKeyEnv, sfc.PrivateKeyFile)
		key = k
		errs = append(errs, err)
	} else {
		v, err := c.resolve("salesforce.client_secret", secrets["salesforce.client_secret"], sfc.ClientSecretEnv, sfc.ClientSecretFile)
		sfSecret = v
		errs = append(errs, err)
	}
	sfCA, err := c.caFile("salesforce.ca_file", sfc.CAFile)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		s.sfErr = err
		var u *unresolved
		s.sfUnres = errors.As(err, &u)
	} else {
		s.sf, s.sfErr = salesforce.New(salesforce.Config{
			LoginURL: sfc.LoginURL, InstanceURL: sfc.InstanceURL, APIVersion: sfc.APIVersion, Auth: sfc.Auth,
			ClientID: sfc.ClientID, ClientSecret: sfSecret, Username: sfc.Username, PrivateKeyPEM: []byte(key),
			CAFile: sfCA, ClientName: "crmsync-preflight", Timeout: c.cfg.RequestTimeout, MaxRetries: 2,
			CheckHost: c.cfg.Hosts.CheckHost,
		})
	}
	dvc := conn.Dataverse
	dvSecret, err := c.resolve("dataverse.client_secret", secrets["dataverse.client_secret"], dvc.ClientSecretEnv, dvc.ClientSecretFile)
	dvCA, caErr := c.caFile("dataverse.ca_file", dvc.CAFile)
	if err == nil {
		err = caErr
	}
	if err != nil {
		s.dvErr = err
		var u *unresolved
		s.dvUnres = errors.As(err, &u)
	} else {
		s.dv, s.dvErr = dataverse.New(dataverse.Config{
			EnvironmentURL: dvc.EnvironmentURL, AuthorityURL: dvc.AuthorityURL, TenantID: dvc.TenantID,
			ClientID: dvc.ClientID, ClientSecret: dvSecret, CAFile: dvCA, Timeout: c.cfg.RequestTimeout, MaxRetries: 2,
			CheckHost: c.cfg.Hosts.CheckHost,
		})
	}
	return s
}

// schemas are what one preflight read from both sides, per mapping.
type schemas struct {
	describes map[string]*salesforce.Describe // by source table as mapped
	describeE map[string]error
	dests     map[string]*mapping.DestSchema // by destination table
	destE     map[string]error
	counts    map[string]int64
	countE    map[string]error
}

// Preflight implements controlplane.Checker.
func (c *Checker) Preflight(ctx context.Context, conn api.Connector, secrets store.Secrets, mappings []api.TableMapping) []api.PreflightCheck {
	s := c.connect(conn, secrets)
	checks := []api.PreflightCheck{c.salesforceCredentials(ctx, s), c.dataverseCredentials(ctx, s)}
	sfOK, dvOK := checks[0].OK && !checks[0].Warning, checks[1].OK && !checks[1].Warning
	sc := c.readSchemas(ctx, s, mappings, sfOK, dvOK)
	checks = append(checks,
		c.changeTopics(ctx, s, sc, mappings, sfOK),
		c.teamPrivileges(ctx, s, sc, conn.TeamID, mappings, dvOK),
		c.mappings(sc, mappings, sfOK, dvOK, s),
		c.apiBudget(ctx, s, sc, conn, mappings, sfOK),
		c.dataSize(sc, mappings, sfOK),
	)
	for _, ch := range checks {
		c.log.Info("preflight check", "connector_id", conn.ID, "check", ch.Name, "ok", ch.OK, "warning", ch.Warning, "message", ch.Message)
	}
	return checks
}

// skipped is a check that could not run because one of the sides is not reachable.
func skipped(name string, unresolvedSide bool, side string) api.PreflightCheck {
	if unresolvedSide {
		return api.PreflightCheck{Name: name, OK: true, Warning: true,
			Message: "not checked: the " + side + " secret is resolved by the agent on its own host"}
	}
	return api.PreflightCheck{Name: name, OK: false, Message: "not checked: the " + side + " credentials do not work (see " + strings.ToLower(side) + "_credentials)"}
}

func (c *Checker) salesforceCredentials(ctx context.Context, s *sides) api.PreflightCheck {
	ch := api.PreflightCheck{Name: CheckSalesforceCredentials}
	if s.sf == nil {
		if s.sfUnres {
			ch.OK, ch.Warning, ch.Message = true, true, s.sfErr.Error()
			return ch
		}
		ch.Message = "salesforce: " + s.sfErr.Error()
		return ch
	}
	sess, err := s.sf.Session(ctx)
	if err != nil {
		s.sfErr = err
		ch.Message = "salesforce: cannot get a session: " + err.Error()
		return ch
	}
	ch.OK, ch.Message = true, fmt.Sprintf("authenticated to %s (org %s) with %s", sess.InstanceURL, sess.OrgID, s.sfConfig.Auth)
	return ch
}

func (c *Checker) dataverseCredentials(ctx context.Context, s *sides) api.PreflightCheck {
	ch := api.PreflightCheck{Name: CheckDataverseCredentials}
	if s.dv == nil {
		if s.dvUnres {
			ch.OK, ch.Warning, ch.Message = true, true, s.dvErr.Error()
			return ch
		}
		ch.Message = "dataverse: " + s.dvErr.Error()
		return ch
	}
	who, err := s.dv.WhoAmI(ctx)
	if err != nil {
		s.dvErr = err
		ch.Message = "dataverse: WhoAmI failed: " + err.Error()
		return ch
	}
	ch.OK, ch.Message = true, fmt.Sprintf("authenticated to %s as application user %s", s.dv.Config().EnvironmentURL, who.UserID)
	return ch
}

// readSchemas reads every describe, table definition and record count the checks need, once.
func (c *Checker) readSchemas(ctx context.Context, s *sides, mappings []api.TableMapping, sfOK, dvOK bool) *schemas {
	sc := &schemas{describes: map[string]*salesforce.Describe{}, describeE: map[string]error{}, dests: map[string]*mapping.DestSchema{},
		destE: map[string]error{}, counts: map[string]int64{}, countE: map[string]error{}}
	for _, m := range mappings {
		src, dst := m.SourceTable, m.Destination()
		if sfOK {
			if _, done := sc.describes[src]; !done {
				sc.describes[src], sc.describeE[src] = s.sf.Describe(ctx, src)
				if sc.describeE[src] == nil {
					n, err := count(ctx, s.sf, src)
					sc.counts[src], sc.countE[src] = n, err
				}
			}
		}
		if dvOK {
			if _, done := sc.dests[dst]; !done {
				sc.dests[dst], sc.destE[dst] = s.dv.Table(ctx, dst)
			}
		}
	}
	return sc
}

var objectName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,79}$`)

// count runs SELECT COUNT() on an object whose name is checked first (it goes into SOQL).
func count(ctx context.Context, sf *salesforce.Client, object string) (int64, error) {
	if !objectName.MatchString(object) {
		return 0, fmt.Errorf("%q is not a Salesforce object name", object)
	}
	n, err := sf.Count(ctx, "SELECT COUNT() FROM "+object)
	return int64(n), err
}

// TopicName returns the change-event channel of an object: /data/ContactChangeEvent, and for a custom
// object Foo__c, /data/Foo__ChangeEvent.
func TopicName(object string) string {
	if base, ok := strings.CutSuffix(object, "__c"); ok {
		return "/data/" + base + "__ChangeEvent"
	}
	return "/data/" + object + "ChangeEvent"
}

func (c *Checker) changeTopics(ctx context.Context, s *sides, sc *schemas, mappings []api.TableMapping, sfOK bool) api.PreflightCheck {
	if !sfOK {
		return skipped(CheckChangeTopics, s.sfUnres, "Salesforce")
	}
	addr := s.sfConfig.PubSubAddr
	if addr == "" {
		addr = api.DefaultPubSubAddr
	}
	ps, err := s.sf.DialPubSub(addr, s.sfConfig.PubSubPlaintext)
	if err != nil {
		return api.PreflightCheck{Name: CheckChangeTopics, Message: "cannot connect to the Pub/Sub API: " + err.Error()}
	}
	defer ps.Close()
	var bad, good []string
	for _, m := range mappings {
		name := m.SourceTable
		if d := sc.describes[m.SourceTable]; d != nil {
			name = d.Name
		}
		topic := TopicName(name)
		info, err := ps.Topic(ctx, topic)
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("%s: %v (select %s for Change Data Capture in Setup)", topic, err, name))
		case !info.GetCanSubscribe():
			bad = append(bad, topic+": the integration user cannot subscribe (grant it View All or the object's change-event permission)")
		default:
			good = append(good, topic)
		}
	}
	if len(bad) > 0 {
		return api.PreflightCheck{Name: CheckChangeTopics, Message: "change-event topics not subscribable: " + strings.Join(bad, "; ")}
	}
	return api.PreflightCheck{Name: CheckChangeTopics, OK: true, Message: "subscribable: " + strings.Join(good, ", ")}
}

// requiredPrivileges lists the privileges the team needs, in a stable order: create, read, write and append
// on each destination table, append-to on each table a synced lookup points at.
func requiredPrivileges(sc *schemas, mappings []api.TableMapping) []string {
	synced := syncedTables(mappings)
	var out []string
	add := func(p string) {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	for _, m := range mappings {
		schema := dataverse.SchemaName(m.Destination())
		for _, a := range []string{"Create", "Read", "Write", "Append"} {
			add("prv" + a + schema)
		}
	}
	for _, m := range mappings {
		src, dst := sourceSchema(sc, m), destSchema(sc, m)
		if src == nil || dst == nil {
			continue
		}
		for _, col := range mapping.Effective(m.TableConfig, synced) {
			f, ok1 := src.Field(col.Source)
			d, ok2 := dst.Column(col.Destination)
			if !ok1 || !ok2 || f.Type != "reference" || (d.AttributeType != "Lookup" && d.AttributeType != "Customer") {
				continue
			}
			for _, obj := range f.ReferenceTo {
				for so, dt := range synced {
					if strings.EqualFold(so, obj) && slices.Contains(d.Targets, dt) {
						add("prvAppendTo" + dataverse.SchemaName(dt))
					}
				}
			}
		}
	}
	return out
}

func (c *Checker) teamPrivileges(ctx context.Context, s *sides, sc *schemas, teamID string, mappings []api.TableMapping, dvOK bool) api.PreflightCheck {
	ch := api.PreflightCheck{Name: CheckTeamPrivileges}
	if !dvOK {
		return skipped(CheckTeamPrivileges, s.dvUnres, "Dataverse")
	}
	team, err := s.dv.Team(ctx, teamID)
	if err != nil {
		if dataverse.IsNotFound(err) {
			ch.Message = fmt.Sprintf("team %s does not exist in %s", teamID, s.dv.Config().EnvironmentURL)
		} else {
			ch.Message = fmt.Sprintf("reading team %s: %v", teamID, err)
		}
		return ch
	}
	privs, err := s.dv.TeamPrivileges(ctx, teamID)
	if err != nil {
		ch.Message = fmt.Sprintf("reading the privileges of team %s (%s): %v", team.Name, teamID, err)
		return ch
	}
	held := map[string]bool{}
	for _, p := range privs {
		held[strings.ToLower(p.PrivilegeName)] = true
	}
	need := requiredPrivileges(sc, mappings)
	var missing []string
	for _, p := range need {
		if !held[strings.ToLower(p)] {
			missing = append(missing, p)
		}
	}
	if len(missing) > 0 {
		ch.Message = fmt.Sprintf("team %s (%s) is missing %d privilege(s): %s", team.Name, teamID, len(missing), strings.Join(missing, ", "))
		return ch
	}
	ch.OK, ch.Message = true, fmt.Sprintf("team %s (%s) holds %s", team.Name, teamID, strings.Join(need, ", "))
	return ch
}

func sourceSchema(sc *schemas, m api.TableMapping) *mapping.SourceSchema {
	if d := sc.describes[m.SourceTable]; d != nil {
		return d.SourceSchema()
	}
	return mapping.StandardSource(m.SourceTable)
}

func destSchema(sc *schemas, m api.TableMapping) *mapping.DestSchema {
	if d := sc.dests[m.Destination()]; d != nil {
		return d
	}
	return mapping.StandardDestination(m.Destination())
}

// syncedTables are the tables of the mappings checked together (the connector's, or a change's proposal).
func syncedTables(mappings []api.TableMapping) mapping.Siblings {
	out := mapping.Siblings{}
	for _, m := range mappings {
		out[m.SourceTable] = m.Destination()
	}
	return out
}

func (c *Checker) mappings(sc *schemas, mappings []api.TableMapping, sfOK, dvOK bool, s *sides) api.PreflightCheck {
	ch := api.PreflightCheck{Name: CheckMappings}
	if len(mappings) == 0 {
		ch.Message = "the connector has no table mappings"
		return ch
	}
	synced := syncedTables(mappings)
	var errs, warns []string
	for _, m := range mappings {
		var live *mapping.Live // static rules when a side cannot be read
		if sfOK && dvOK {
			// A missing describe or table definition is reported by mapping.Check as an unknown table.
			live = &mapping.Live{Dest: sc.dests[m.Destination()]}
			if d := sc.describes[m.SourceTable]; d != nil {
				live.Source = d.SourceSchema()
			}
		}
		_, probs := mapping.Check(m.TableConfig, synced, live)
		for _, p := range probs {
			line := fmt.Sprintf("%s → %s: %s: %s", m.SourceTable, m.Destination(), p.Path, p.Message)
			if p.Severity == mapping.Error {
				errs = append(errs, line)
			} else {
				warns = append(warns, line)
			}
		}
		if e := sc.describeE[m.SourceTable]; e != nil && !sfNotFound(e) {
			errs = append(errs, fmt.Sprintf("%s: describing it failed: %v", m.SourceTable, e))
		}
		if e := sc.destE[m.Destination()]; e != nil && !dataverse.IsNotFound(e) {
			errs = append(errs, fmt.Sprintf("%s: reading its definition failed: %v", m.Destination(), e))
		}
	}
	switch {
	case len(errs) > 0:
		// The errors block activation; the caveats are listed apart, so the reason is not buried among them.
		ch.Message, ch.Caveats = strings.Join(errs, "; "), warns
	case !sfOK || !dvOK:
		ch.OK, ch.Warning = true, true
		ch.Message = "checked statically only (live schemas unavailable: " + unavailable(s, sfOK, dvOK) + ")"
		if len(warns) > 0 {
			ch.Message += "; " + strings.Join(warns, "; ")
		}
	case len(warns) > 0:
		ch.OK, ch.Warning, ch.Message = true, true, strings.Join(warns, "; ")
	default:
		ch.OK, ch.Message = true, fmt.Sprintf("%d mapping(s) valid against the live schemas", len(mappings))
	}
	return ch
}

// sfNotFound reports whether Salesforce answered 404 (an object that does not exist, which Validate
// reports as an unknown table).
func sfNotFound(err error) bool {
	var e *salesforce.APIError
	return errors.As(err, &e) && e.Status == http.StatusNotFound
}

func unavailable(s *sides, sfOK, dvOK bool) string {
	var parts []string
	if !sfOK && s.sfErr != nil {
		parts = append(parts, "Salesforce: "+s.sfErr.Error())
	}
	if !dvOK && s.dvErr != nil {
		parts = append(parts, "Dataverse: "+s.dvErr.Error())
	}
	return strings.Join(parts, "; ")
}

// EstimateLoadCalls estimates the Salesforce API calls an initial load of n records costs: a fixed
// DefaultCallsPerTable per table plus one call per Bulk API results page.
func EstimateLoadCalls(records int64, pageSize int) int64 {
	if pageSize <= 0 {
		pageSize = defaultPageSize
	}
	return DefaultCallsPerTable + int64(math.Ceil(float64(records)/float64(pageSize)))
}

func (c *Checker) apiBudget(ctx context.Context, s *sides, sc *schemas, conn api.Connector, mappings []api.TableMapping, sfOK bool) api.PreflightCheck {
	ch := api.PreflightCheck{Name: CheckAPIBudget}
	if !sfOK {
		return skipped(CheckAPIBudget, s.sfUnres, "Salesforce")
	}
	limits, err := s.sf.Limits(ctx)
	if err != nil {
		ch.Message = "reading /limits: " + err.Error()
		return ch
	}
	daily, ok := limits["DailyApiRequests"]
	if !ok {
		ch.OK, ch.Warning, ch.Message = true, true, "the org's /limits has no DailyApiRequests entry; the API budget is not known"
		return ch
	}
	pageSize := 0
	if conn.Tuning != nil {
		pageSize = conn.Tuning.PageSize
	}
	var need int64
	for _, m := range mappings {
		need += EstimateLoadCalls(sc.counts[m.SourceTable], pageSize)
	}
	left := daily.Remaining - need
	msg := fmt.Sprintf("the initial load needs about %d API calls; %d of %d daily calls remain", need, daily.Remaining, daily.Max)
	switch {
	case left < 0:
		ch.Message = msg + ": not enough for the initial load"
	case float64(left) < budgetHeadroomFraction*float64(daily.Max):
		ch.OK, ch.Warning, ch.Message = true, true, msg+fmt.Sprintf(": less than %.0f%% of the daily limit would be left", budgetHeadroomFraction*100)
	default:
		ch.OK, ch.Message = true, msg
	}
	return ch
}

func (c *Checker) dataSize(sc *schemas, mappings []api.TableMapping, sfOK bool) api.PreflightCheck {
	ch := api.PreflightCheck{Name: CheckDataSize}
	if !sfOK {
		ch.OK, ch.Warning, ch.Message = true, true, "not estimated: the record counts need Salesforce access"
		return ch
	}
	var total int64
	var parts []string
	names := make([]string, 0, len(mappings))
	for _, m := range mappings {
		names = append(names, m.SourceTable)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := sc.countE[n]; err != nil {
			ch.OK, ch.Warning, ch.Message = true, true, fmt.Sprintf("not estimated: counting %s failed: %v", n, err)
			return ch
		}
		total += sc.counts[n]
		parts = append(parts, fmt.Sprintf("%s %d", n, sc.counts[n]))
	}
	bytes := total * c.cfg.RowBytes
	msg := fmt.Sprintf("%d records (%s) ≈ %s at about %s per row; guidance %s", total, strings.Join(parts, ", "),
		human(bytes), human(c.cfg.RowBytes), human(c.cfg.SizeGuidance))
	ch.OK, ch.Message = true, msg
	if bytes > c.cfg.SizeGuidance {
		ch.Warning, ch.Message = true, msg+": above the guidance; expect a long initial load and check the environment's storage capacity"
	}
	return ch
}

func human(b int64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := int64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

// LiveSchemas implements controlplane.Checker: the Salesforce describe of sourceTable, the Dataverse
// definition of destTable and the number of source records.
func (c *Checker) LiveSchemas(ctx context.Context, conn api.Connector, secrets store.Secrets, sourceTable, destTable string) (*mapping.SourceSchema, *mapping.DestSchema, int64, error) {
	if !objectName.MatchString(sourceTable) {
		return nil, nil, 0, fmt.Errorf("source table %q is not a Salesforce object name", sourceTable)
	}
	s := c.connect(conn, secrets)
	if s.sf == nil {
		return nil, nil, 0, fmt.Errorf("salesforce: %w", s.sfErr)
	}
	if s.dv == nil {
		return nil, nil, 0, fmt.Errorf("dataverse: %w", s.dvErr)
	}
	d, err := s.sf.Describe(ctx, sourceTable)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("describing Salesforce %s: %w", sourceTable, err)
	}
	dst, err := s.dv.Table(ctx, destTable)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("reading Dataverse table %s: %w", destTable, err)
	}
	n, err := count(ctx, s.sf, d.Name)
	if err != nil {
		return nil, nil, 0, fmt.Errorf("counting Salesforce %s: %w", sourceTable, err)
	}
	return d.SourceSchema(), dst, n, nil
}
