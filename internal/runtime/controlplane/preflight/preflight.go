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
	"log/slog"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
)

// Check names, in the order Preflight returns them.
//
//nolint:gosec // names of checks, not credentials
const (
	CheckSalesforceCredentials = "salesforce_credentials"
	CheckDataverseCredentials  = "dataverse_credentials"
	// CheckDataverseApplicationUsers runs only for a connector with additional application users.
	CheckDataverseApplicationUsers = "dataverse_application_users"
	CheckChangeTopics              = "change_topics"
	CheckTeamPrivileges            = "team_privileges"
	CheckMappings                  = "mappings"
	CheckAPIBudget                 = "api_budget"
	CheckDataSize                  = "data_size"
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
	if len(s.dvUsers) > 0 {
		checks = append(checks, c.applicationUsers(ctx, s, sc, conn.TeamID, mappings))
	}
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
