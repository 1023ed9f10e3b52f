package preflight

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
)

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

// applicationUsers checks each additional Dataverse application user: it signs in and is an application user
// of the environment (WhoAmI), and holds through its security roles the privileges the sync needs. A user
// short of privileges is a warning, not a failure: it may hold them as a member of the owning team, which
// RetrieveUserPrivileges does not show.
func (c *Checker) applicationUsers(ctx context.Context, s *sides, sc *schemas, teamID string, mappings []api.TableMapping) api.PreflightCheck {
	ch := api.PreflightCheck{Name: CheckDataverseApplicationUsers, OK: true}
	need := requiredPrivileges(sc, mappings)
	var good, failed, warnings []string
	for i, u := range s.dvUsers {
		name := fmt.Sprintf("additional_application_users[%d] (client %s)", i, u.clientID)
		if u.dv == nil {
			if u.unres {
				warnings = append(warnings, name+": "+u.err.Error())
			} else {
				failed = append(failed, name+": "+u.err.Error())
			}
			continue
		}
		who, err := u.dv.WhoAmI(ctx)
		if err != nil {
			failed = append(failed, name+": WhoAmI failed: "+err.Error())
			continue
		}
		privs, err := u.dv.UserPrivileges(ctx, who.UserID)
		if err != nil {
			failed = append(failed, fmt.Sprintf("%s: reading the privileges of application user %s: %v", name, who.UserID, err))
			continue
		}
		held := map[string]bool{}
		for _, p := range privs {
			held[strings.ToLower(p.PrivilegeName)] = true
		}
		var missing []string
		for _, p := range need {
			if !held[strings.ToLower(p)] {
				missing = append(missing, p)
			}
		}
		if len(missing) > 0 {
			warnings = append(warnings, fmt.Sprintf("%s: application user %s does not hold %s through its roles; it needs them as a "+
				"member of team %s or through a role", name, who.UserID, strings.Join(missing, ", "), teamID))
			continue
		}
		good = append(good, fmt.Sprintf("%s as application user %s", u.clientID, who.UserID))
	}
	switch {
	case len(failed) > 0:
		ch.OK, ch.Message = false, strings.Join(failed, "; ")
		ch.Caveats = warnings
	case len(warnings) > 0:
		ch.Warning, ch.Message = true, strings.Join(warnings, "; ")
	default:
		ch.Message = fmt.Sprintf("%d more application user(s) authenticated with the privileges the sync needs: %s", len(good), strings.Join(good, ", "))
	}
	return ch
}
