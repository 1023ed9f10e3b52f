package dataverse

import (
	"net/http"
	"strings"
	"time"
)

// serveEntitySet routes the resources under an entity set (spec 2.1): the collection, one row, a row's
// property or navigation property, bulk messages, and the bound security functions of spec 8.
func (e *Emulator) serveEntitySet(c *opCtx, t *table, method string, segs []segment, rawQuery string, hdr http.Header, body []byte) response {
	first := segs[0]
	if len(segs) == 1 && !first.hasKey {
		switch method {
		case http.MethodGet:
			return e.serveQuery(c, t, rawQuery)
		case http.MethodPost:
			return e.serveWrite(c, t, method, nil, rawQuery, hdr, body)
		}
		return e.fail(c, errMethod(method))
	}
	if !first.hasKey {
		second := segs[1]
		switch {
		case len(segs) == 2 && second.name == "$count" && method == http.MethodGet:
			return e.serveCount(c, t)
		case len(segs) == 2 && strings.HasPrefix(second.name, "Microsoft.Dynamics.CRM."):
			msg := strings.TrimPrefix(second.name, "Microsoft.Dynamics.CRM.")
			if method != http.MethodPost {
				return e.fail(c, errMethod(method))
			}
			return e.serveBulk(c, t, msg, body)
		}
		return e.fail(c, errSegment(second.name))
	}
	id, aerr := e.parseKey(t, first.key)
	if aerr != nil {
		return e.fail(c, aerr)
	}
	if len(segs) == 1 {
		switch method {
		case http.MethodGet:
			return e.serveRetrieve(c, t, id, rawQuery, hdr)
		case http.MethodPatch:
			return e.serveWrite(c, t, method, &id, rawQuery, hdr, body)
		case http.MethodDelete:
			return e.serveDelete(c, t, id, hdr)
		}
		return e.fail(c, errMethod(method))
	}
	second := segs[1]
	if fn, ok := strings.CutPrefix(second.name, "Microsoft.Dynamics.CRM."); ok && len(segs) == 2 {
		return e.serveBoundFunction(c, t, id, fn, method, rawQuery)
	}
	if second.name == "teamroles_association" && t.Logical == "team" && len(segs) == 2 {
		if method != http.MethodGet {
			return e.fail(c, errMethod(method))
		}
		e.tally(c, cRead, 1)
		c.cost += time.Duration(e.prot.currentLimits().Costs.Read)
		defer e.rlock(c)()
		tm := e.teams[id]
		if tm == nil {
			return e.fail(c, errNotFound("team", id))
		}
		return e.teamRoles(c, tm)
	}
	unlock := e.rlock(c) // AddColumn may be changing byProp
	col := t.byProp[second.name]
	unlock()
	if col != nil && len(segs) == 2 {
		return e.serveProperty(c, t, id, col, method, body)
	}
	if nav := t.navs[second.name]; nav != nil {
		switch {
		case len(segs) == 3 && segs[2].name == "$ref" && method == http.MethodDelete:
			return e.clearNavigation(c, t, id, nav.name)
		case len(segs) == 2 && method == http.MethodGet:
			return e.serveNavigation(c, t, id, nav, rawQuery, hdr)
		}
		return e.fail(c, errMethod(method))
	}
	return e.fail(c, errSegment(second.name))
}

// serveNavigation answers GET set(id)/<single-valued navigation property>: the related row, or 204 when
// the lookup is empty.
func (e *Emulator) serveNavigation(c *opCtx, t *table, id [16]byte, nav *navProp, rawQuery string, hdr http.Header) response {
	unlock := e.rlock(c)
	slot, ok := t.lookup(id)
	if !ok {
		unlock()
		e.tally(c, cRead, 1)
		return e.fail(c, errNotFound(t.Logical, id))
	}
	var v rowView
	v.e = e
	v.load(t, slot)
	l := v.get(nav.col)
	unlock()
	if l.isNull() || (nav.target != "" && e.tables[l.tbl].Logical != nav.target) {
		e.tally(c, cRead, 1)
		return response{status: http.StatusNoContent}
	}
	return e.serveRetrieve(c, e.tables[l.tbl], l.g, rawQuery, hdr)
}

// serveBoundFunction answers the functions bound to teams and systemusers (spec 8.2, 8.4).
func (e *Emulator) serveBoundFunction(c *opCtx, t *table, id [16]byte, fn, method, rawQuery string) response {
	if method != http.MethodGet {
		return e.fail(c, errMethod(method))
	}
	e.tally(c, cRead, 1)
	c.cost += time.Duration(e.prot.currentLimits().Costs.Read)
	name, _, _ := strings.Cut(fn, "(")
	defer e.rlock(c)()
	if t.Logical != "team" && t.Logical != "systemuser" {
		return e.fail(c, errSegment("Microsoft.Dynamics.CRM."+fn))
	}
	p, ok := e.principalFor(t, id)
	if !ok {
		return e.fail(c, errNotFound(t.Logical, id))
	}
	switch {
	case name == "RetrieveTeamPrivileges" && t.Logical == "team":
		return e.retrievePrivileges(c, &p, "RetrieveTeamPrivilegesResponse")
	case name == "RetrieveUserPrivileges" && t.Logical == "systemuser":
		return e.retrievePrivileges(c, &p, "RetrieveUserPrivilegesResponse")
	case name == "RetrievePrincipalAccess":
		return e.retrievePrincipalAccess(c, &p, rawQuery)
	}
	return e.fail(c, errSegment("Microsoft.Dynamics.CRM."+fn))
}
