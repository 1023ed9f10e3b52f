package dataverse

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/jsonrow"
)

// Security model (spec 8): privileges named prv<Action><EntitySchemaName>, roles that grant privileges at a
// depth, teams and users that hold roles. The sandbox has the application user (System Administrator), a
// person (System Administrator), one owner team whose role grants every privilege on contact and account,
// and one owner team whose role grants nothing on them.

var privilegeActions = []string{"Create", "Read", "Write", "Delete", "Append", "AppendTo", "Assign", "Share"}

// Depths of a privilege grant (spec 8.2), by name.
var depths = map[string]int{"Basic": 0, "Local": 1, "Deep": 2, "Global": 3}

type privilege struct {
	id     [16]byte
	name   string
	action string // Create, Read, ... (PrivilegeType)
	table  string // logical name, "" for non-table privileges
}

type role struct {
	id    [16]byte
	name  string
	privs map[string]string // privilege name → depth
}

func (e *Emulator) buildPrivileges(gen func() [16]byte) {
	e.privileges = map[string]*privilege{}
	add := func(name, action, table string) {
		p := &privilege{id: metadataID("privilege", name), name: name, action: action, table: table}
		e.privileges[name] = p
		e.privilegeOrder = append(e.privilegeOrder, p)
	}
	for _, t := range []struct{ logical, schema string }{{"contact", "Contact"}, {"account", "Account"}, {"team", "Team"}, {"systemuser", "User"}, {"businessunit", "BusinessUnit"}, {"role", "Role"}} {
		for _, a := range privilegeActions {
			add("prv"+a+t.schema, a, t.logical)
		}
	}
	add("prvActOnBehalfOfAnotherUser", "None", "")
	add("prvBypassCustomPlugins", "None", "")
	e.sysadmin = &role{id: gen(), name: "System Administrator"}
	e.fullRole = &role{id: gen(), name: "crmsync Sync Writer"}
	e.none = &role{id: gen(), name: "crmsync No Table Access"}
}

// resetSecurity restores the roles' grants and the two teams. Callers hold e.mu.
func (e *Emulator) resetSecurity() {
	e.sysadmin.privs = map[string]string{}
	for _, p := range e.privilegeOrder {
		e.sysadmin.privs[p.name] = "Global"
	}
	e.fullRole.privs = map[string]string{}
	for _, t := range []string{"Contact", "Account"} {
		for _, a := range privilegeActions {
			e.fullRole.privs["prv"+a+t] = "Global"
		}
	}
	// The empty role holds privileges on other tables only, so a client must look at names, not counts.
	e.none.privs = map[string]string{"prvReadTeam": "Global", "prvReadUser": "Global"}
	for _, u := range e.users {
		u.roles = []*role{e.sysadmin}
	}
	e.teams = map[[16]byte]*teamInfo{
		e.fullTeam:  {id: e.fullTeam, name: "crmsync Sync Owners", roles: []*role{e.fullRole}},
		e.emptyTeam: {id: e.emptyTeam, name: "crmsync No Privileges", roles: []*role{e.none}},
	}
}

// principal is a user or team whose privileges a write checks.
type principal struct {
	id    [16]byte
	team  bool
	roles []*role
}

func (e *Emulator) principalFor(tbl *table, id [16]byte) (principal, bool) {
	switch tbl.Logical {
	case "team":
		if tm := e.teams[id]; tm != nil {
			return principal{id: id, team: true, roles: tm.roles}, true
		}
	case "systemuser":
		if i := e.userIndex(id); i >= 0 {
			return principal{id: id, roles: e.users[i].roles}, true
		}
	}
	return principal{}, false
}

func (p *principal) has(name string) bool {
	for _, r := range p.roles {
		if _, ok := r.privs[name]; ok {
			return true
		}
	}
	return false
}

func (p *principal) privilegeCount() int {
	n := 0
	for _, r := range p.roles {
		n += len(r.privs)
	}
	return n
}

// errMissingPrivilege is Dataverse's SecLib access-check failure (spec 6.2, 0x80040220).
func (e *Emulator) errMissingPrivilege(p *principal, name string, t *table) *apiError {
	kind, typ := "user", 8
	if p.team {
		kind, typ = "team", 9
	}
	priv := e.privileges[name]
	var pid [16]byte
	if priv != nil {
		pid = priv.id
	}
	return newError(http.StatusForbidden, codePrivilegeDenied,
		"Principal %s (Id=%s, type=%d, roleCount=%d, privilegeCount=%d, accessMode=0), is missing %s privilege (Id=%s) on OTC=%d for entity '%s'. context.Caller=%s",
		kind, guidString(p.id), typ, len(p.roles), p.privilegeCount(), name, guidString(pid), t.OTC, t.Logical, e.ApplicationUserID())
}

// tablePrivileges are a table's privilege names, computed once (the write path checks them per row).
type tablePrivileges struct{ create, read, write, delete, appendP, appendTo, assign string }

func privilegesOf(t *table) tablePrivileges {
	return tablePrivileges{create: "prvCreate" + t.Schema, read: "prvRead" + t.Schema, write: "prvWrite" + t.Schema,
		delete: "prvDelete" + t.Schema, appendP: "prvAppend" + t.Schema, appendTo: "prvAppendTo" + t.Schema,
		assign: "prvAssign" + t.Schema}
}

// Privilege checks (spec 8.3). Dataverse checks the privilege of every operation on every request. The
// sandbox's application user holds System Administrator, so it models the setup the README asks for — an
// application user whose privileges on the synced tables come from the owner team that owns and writes the
// rows — by checking two principals: the caller (or the impersonated user) and the team the operation acts
// through. That team is the owner a write binds in ownerid, or else the row's current owner when a team
// owns it; rows owned by users are checked against the caller only.

// checkWritePrivileges applies the checks to a write of table t. bound is the ownerid the write binds (nil
// when none), current the row's owner before the write (nil for a new row). Each checked principal needs
// Create (new row) or Write (existing row); a bound owner needs Read unless the behaviour switch drops it,
// and Assign when the row changes owner; setting a lookup needs Append on t and AppendTo on each target.
// Callers hold e.mu.
func (e *Emulator) checkWritePrivileges(caller uint16, bound, current *value, t *table, create bool, lookupTargets []*table) *apiError {
	reassign := !create && bound != nil && !bound.isNull() && current != nil && (current.tbl != bound.tbl || current.g != bound.g)
	check := func(p *principal, isBound bool) *apiError {
		action := t.privs.write
		if create {
			action = t.privs.create
		}
		if !p.has(action) {
			return e.errMissingPrivilege(p, action, t)
		}
		if isBound && e.set.requireOwnerRead && !p.has(t.privs.read) {
			return e.errMissingPrivilege(p, t.privs.read, t)
		}
		if reassign && !p.has(t.privs.assign) {
			return e.errMissingPrivilege(p, t.privs.assign, t)
		}
		if len(lookupTargets) > 0 && !p.has(t.privs.appendP) {
			return e.errMissingPrivilege(p, t.privs.appendP, t)
		}
		for _, target := range lookupTargets {
			// Lookups to users, teams and business units need no AppendTo here.
			if !target.system && !p.has(target.privs.appendTo) {
				return e.errMissingPrivilege(p, target.privs.appendTo, target)
			}
		}
		return nil
	}
	callerP := principal{id: e.users[caller].id, roles: e.users[caller].roles}
	if err := check(&callerP, false); err != nil {
		return err
	}
	switch {
	case bound != nil && !bound.isNull():
		if p, ok := e.principalFor(e.tables[bound.tbl], bound.g); ok {
			return check(&p, true)
		}
	case current != nil && !current.isNull():
		if p, ok := e.owningTeam(*current); ok {
			return check(&p, false)
		}
	}
	return nil
}

// checkRowPrivilege checks one privilege (Read, Delete) of the caller and of the team owning a row of a
// data table (the system tables the sandbox maintains are readable by every caller). Callers hold e.mu.
func (e *Emulator) checkRowPrivilege(caller uint16, t *table, slot uint32, name string) *apiError {
	if t.system {
		return nil
	}
	callerP := principal{id: e.users[caller].id, roles: e.users[caller].roles}
	if !callerP.has(name) {
		return e.errMissingPrivilege(&callerP, name, t)
	}
	oc := t.col("ownerid")
	if oc == nil {
		return nil
	}
	var v rowView
	v.e = e
	v.load(t, slot)
	if p, ok := e.owningTeam(v.get(oc)); ok && !p.has(name) {
		return e.errMissingPrivilege(&p, name, t)
	}
	return nil
}

// checkTablePrivilege checks a privilege of the caller on a data table, for reads of collections: rows of
// many owners come back, so only the caller is checked. Callers hold e.mu.
func (e *Emulator) checkTablePrivilege(caller uint16, t *table, name string) *apiError {
	if t.system {
		return nil
	}
	callerP := principal{id: e.users[caller].id, roles: e.users[caller].roles}
	if !callerP.has(name) {
		return e.errMissingPrivilege(&callerP, name, t)
	}
	return nil
}

// owningTeam returns the principal of an owner value when a team owns the row.
func (e *Emulator) owningTeam(owner value) (principal, bool) {
	if owner.isNull() || e.tables[owner.tbl].Logical != "team" {
		return principal{}, false
	}
	return e.principalFor(e.tables[owner.tbl], owner.g)
}

// retrievePrivileges answers RetrieveTeamPrivileges / RetrieveUserPrivileges (spec 8.2).
func (e *Emulator) retrievePrivileges(c *opCtx, p *principal, responseType string) response {
	type grant struct {
		p     *privilege
		depth string
	}
	seen := map[string]grant{}
	for _, r := range p.roles {
		for name, depth := range r.privs {
			if g, ok := seen[name]; !ok || depths[depth] > depths[g.depth] {
				seen[name] = grant{p: e.privileges[name], depth: depth}
			}
		}
	}
	grants := make([]grant, 0, len(seen))
	for _, g := range seen {
		if g.p != nil {
			grants = append(grants, g)
		}
	}
	sort.Slice(grants, func(i, j int) bool { return grants[i].p.name < grants[j].p.name })
	b := []byte(`{"@odata.context":`)
	b = jsonrow.AppendString(b, e.baseURL()+"$metadata#Microsoft.Dynamics.CRM."+responseType)
	b = append(b, `,"RolePrivileges":[`...)
	for i, g := range grants {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"Depth":`...)
		b = jsonrow.AppendString(b, g.depth)
		b = append(b, `,"PrivilegeId":"`...)
		b = appendGUID(b, g.p.id)
		b = append(b, `","BusinessUnitId":"`...)
		b = appendGUID(b, e.rootBU)
		b = append(b, `","PrivilegeName":`...)
		b = jsonrow.AppendString(b, g.p.name)
		b = append(b, `,"RecordFilterId":null,"RecordFilterUniqueName":null}`...)
	}
	b = append(b, "]}"...)
	return jsonResponse(http.StatusOK, b)
}

// accessRights are the AccessRights flag names of spec 8.4, in flag order.
var accessRights = []struct {
	name   string
	action string
}{{"ReadAccess", "Read"}, {"WriteAccess", "Write"}, {"AppendAccess", "Append"}, {"AppendToAccess", "AppendTo"},
	{"CreateAccess", "Create"}, {"DeleteAccess", "Delete"}, {"ShareAccess", "Share"}, {"AssignAccess", "Assign"}}

// retrievePrincipalAccess answers RetrievePrincipalAccess(Target=@tid) (spec 8.4) from the principal's
// privileges on the target's table.
func (e *Emulator) retrievePrincipalAccess(c *opCtx, p *principal, rawQuery string) response {
	q, _ := url.ParseQuery(rawQuery)
	target := ""
	for k, v := range q {
		if strings.HasPrefix(k, "@") && len(v) > 0 {
			target = v[0]
		}
	}
	// @tid={'@odata.id':'contacts(<guid>)'}
	_, ref, ok := strings.Cut(target, "'@odata.id':")
	if !ok {
		return errorResponse(errBadRequest("RetrievePrincipalAccess needs Target=@p with @p={'@odata.id':'<set>(<id>)'}"), false)
	}
	ref = strings.Trim(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(ref), "}")), "'\"")
	t, id, aerr := e.parseEntityRef(ref)
	if aerr != nil {
		return errorResponse(aerr, false)
	}
	if _, ok := t.lookup(id); !ok {
		return errorResponse(errNotFound(t.Logical, id), false)
	}
	var names []string
	for _, ar := range accessRights {
		if p.has("prv" + ar.action + t.Schema) {
			names = append(names, ar.name)
		}
	}
	rights := "None"
	if len(names) > 0 {
		rights = strings.Join(names, ", ")
	}
	b := []byte(`{"@odata.context":`)
	b = jsonrow.AppendString(b, e.baseURL()+"$metadata#Microsoft.Dynamics.CRM.RetrievePrincipalAccessResponse")
	b = append(b, `,"AccessRights":`...)
	b = jsonrow.AppendString(b, rights)
	b = append(b, '}')
	return jsonResponse(http.StatusOK, b)
}

// teamRoles answers teams(<id>)/teamroles_association.
func (e *Emulator) teamRoles(c *opCtx, tm *teamInfo) response {
	b := []byte(`{"@odata.context":`)
	b = jsonrow.AppendString(b, e.baseURL()+"$metadata#roles(name,roleid)")
	b = append(b, `,"value":[`...)
	for i, r := range tm.roles {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"@odata.etag":"W/\"1\"","name":`...)
		b = jsonrow.AppendString(b, r.name)
		b = append(b, `,"roleid":"`...)
		b = appendGUID(b, r.id)
		b = append(b, `"}`...)
	}
	b = append(b, "]}"...)
	return jsonResponse(http.StatusOK, b)
}

// TeamPrivileges returns the privilege names a team's roles grant, sorted.
func (e *Emulator) TeamPrivileges(teamID string) ([]string, error) {
	e.mu.RLock()
	defer e.mu.RUnlock()
	tm, err := e.teamByID(teamID)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range tm.roles {
		for name := range r.privs {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (e *Emulator) teamByID(teamID string) (*teamInfo, error) {
	id, ok := parseGUID(teamID)
	if !ok {
		return nil, fmt.Errorf("team id %q is not a GUID", teamID)
	}
	tm := e.teams[id]
	if tm == nil {
		return nil, fmt.Errorf("no team %s", teamID)
	}
	return tm, nil
}

// GrantTeamPrivileges adds privileges (e.g. "prvCreateContact") at depth ("Global" when empty) to the
// team's own role.
func (e *Emulator) GrantTeamPrivileges(teamID, depth string, names ...string) error {
	if depth == "" {
		depth = "Global"
	}
	if _, ok := depths[depth]; !ok {
		return fmt.Errorf("depth %q must be Basic, Local, Deep or Global", depth)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	tm, err := e.teamByID(teamID)
	if err != nil {
		return err
	}
	for _, n := range names {
		if e.privileges[n] == nil {
			return fmt.Errorf("unknown privilege %q (want prv<Action><Table>, e.g. prvCreateContact)", n)
		}
	}
	for _, n := range names {
		tm.roles[0].privs[n] = depth
	}
	return nil
}

// RevokeTeamPrivileges removes privileges from the team's own role.
func (e *Emulator) RevokeTeamPrivileges(teamID string, names ...string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	tm, err := e.teamByID(teamID)
	if err != nil {
		return err
	}
	for _, n := range names {
		if e.privileges[n] == nil {
			return fmt.Errorf("unknown privilege %q (want prv<Action><Table>, e.g. prvCreateContact)", n)
		}
	}
	for _, n := range names {
		delete(tm.roles[0].privs, n)
	}
	return nil
}
