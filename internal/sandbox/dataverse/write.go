package dataverse

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/jsonrow"
)

// field is one member of a JSON payload object; payload order is kept so the first bad member is the one
// reported, as Dataverse processes members in order.
type field struct {
	name string
	val  any
}

// parseEntityBody reads a JSON object in member order; set names the entity set in 0x80048d19 messages.
func parseEntityBody(set string, body []byte) ([]field, *apiError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errPayload(set, "An unexpected 'EndOfInput' node was found when reading from the JSON reader. A 'StartObject' node was expected.")
	}
	fields, end, err := scanObject(body, 0, make([]field, 0, 16))
	if err != nil {
		return nil, errPayload(set, "Invalid JSON. "+err.Error())
	}
	if skipSpace(body, end) != len(body) {
		return nil, errPayload(set, "Invalid JSON. More than one value was found at the root of the JSON content. JSON content can only have one root value.")
	}
	return fields, nil
}

type writeMode int

const (
	modeCreate     writeMode = iota // POST, CreateMultiple: an existing id fails with 412
	modeUpsert                      // PATCH without conditions, UpsertMultiple
	modeUpdate                      // If-Match, UpdateMultiple, property PUT/DELETE: a missing row fails with 404
	modeCreateOnly                  // If-None-Match: *: an existing row fails with 412
)

// writeOp is one row write before it is applied.
type writeOp struct {
	t      *table
	mode   writeMode
	urlID  *[16]byte
	ifOK   string // If-Match ETag (W/"n"); "" or "*" for none
	fields []field
	bulk   string // bulk message name, "" for single writes
}

type writeResult struct {
	t       *table
	id      [16]byte
	slot    uint32
	created bool
}

type change struct {
	col *column
	val value
}

// applyWrite validates and applies one row write inside tx; on error nothing it did is kept once the caller
// rolls tx back. Callers hold e.mu for writing.
func (e *Emulator) applyWrite(c *opCtx, tx *txn, op writeOp) (writeResult, *apiError) {
	t := op.t
	if t.system {
		return writeResult{}, newError(http.StatusForbidden, codePrivilegeDenied, "The sandbox maintains %s itself; it is read-only through the Web API.", t.Set)
	}
	var (
		bodyID  *[16]byte
		hasType bool
	)
	for _, f := range op.fields {
		switch f.name {
		case t.PrimaryID:
			s, ok := f.val.(string)
			g, ok2 := parseGUID(s)
			if !ok || !ok2 {
				return writeResult{}, errPayload(t.Set, "Cannot convert the literal '"+literal(f.val)+"' to the expected type 'Edm.Guid'.")
			}
			bodyID = &g
		case "@odata.type":
			s, _ := f.val.(string)
			if strings.TrimPrefix(s, "#") != "Microsoft.Dynamics.CRM."+t.Logical {
				return writeResult{}, errPayload(t.Set, "The '@odata.type' annotation '"+s+"' does not name the entity type 'Microsoft.Dynamics.CRM."+t.Logical+"'.")
			}
			hasType = true
		case "@odata.id":
			if op.bulk == "" {
				continue
			}
			s, _ := f.val.(string)
			rt, id, aerr := e.parseEntityRef(s)
			if aerr != nil {
				return writeResult{}, aerr
			}
			if rt != t {
				return writeResult{}, errPayload(t.Set, "The '@odata.id' '"+s+"' does not address a row of "+t.Set+".")
			}
			if bodyID == nil {
				bodyID = &id
			}
		}
	}
	if op.bulk != "" && !hasType {
		return writeResult{}, errPayload(t.Set, "The '@odata.type' annotation is required on every entity in Targets of "+op.bulk+"; expected 'Microsoft.Dynamics.CRM."+t.Logical+"'.")
	}
	var id [16]byte
	switch {
	case op.urlID != nil:
		id = *op.urlID
		if bodyID != nil && *bodyID != id {
			return writeResult{}, errBadRequest("The primary key %s in the payload does not match the key %s in the request URL.", guidString(*bodyID), guidString(id))
		}
	case bodyID != nil:
		id = *bodyID
	case op.mode == modeCreate:
		id = e.newID()
	default:
		return writeResult{}, errPayload(t.Set, "The primary key '"+t.PrimaryID+"' (or '@odata.id') is required on every entity in Targets of "+op.bulk+".")
	}
	slot, exists := t.lookup(id)
	switch {
	case op.mode == modeCreate && exists:
		return writeResult{}, errDuplicate("Cannot insert duplicate key.")
	case op.mode == modeCreateOnly && exists:
		return writeResult{}, errDuplicate("A record with matching key values already exists.")
	case op.mode == modeUpdate && !exists:
		return writeResult{}, errNotFound(t.Logical, id)
	}
	if op.ifOK != "" && op.ifOK != "*" {
		if !exists {
			return writeResult{}, errNotFound(t.Logical, id)
		}
		if op.ifOK != etag(t.rows[slot].version) {
			return writeResult{}, newError(http.StatusPreconditionFailed, codeVersionMismatch, "The version of the existing record doesn't match the RowVersion property provided.")
		}
	}
	create := !exists
	changes, owner, targets, aerr := e.resolveFields(c, t, op.fields, create)
	if aerr != nil {
		return writeResult{}, aerr
	}

	if cap(e.valScratch) < t.nslots {
		e.valScratch = make([]value, t.nslots)
	}
	vals := e.valScratch[:t.nslots]
	var old row
	var current *value // the row's owner before the write
	if exists {
		old = t.rows[slot]
		t.decode(t.arena.get(old.ref), vals)
		if oc := t.col("ownerid"); oc != nil {
			v := vals[oc.slot]
			current = &v
		}
	} else {
		clear(vals)
	}
	if aerr := e.checkWritePrivileges(c.actor, owner, current, t, create, targets); aerr != nil {
		return writeResult{}, aerr
	}
	stateSet, statusSet := false, false
	for _, ch := range changes {
		vals[ch.col.slot] = ch.val
		switch ch.col.Logical {
		case "statecode":
			stateSet = true
		case "statuscode":
			statusSet = true
		}
	}
	if aerr := e.fixState(t, id, vals, create, stateSet, statusSet); aerr != nil {
		return writeResult{}, aerr
	}
	if create {
		if oc := t.col("ownerid"); oc != nil && vals[oc.slot].isNull() {
			vals[oc.slot] = e.userValue(c.actor)
		}
	}
	// Impersonated writes record the real caller as "on behalf by" (spec 8.5).
	onBehalf := value{}
	if c.actor != c.user {
		onBehalf = e.userValue(c.user)
	}
	if mc := t.col("modifiedonbehalfby"); mc != nil {
		vals[mc.slot] = onBehalf
		if cc := t.col("createdonbehalfby"); create && cc != nil {
			vals[cc.slot] = onBehalf
		}
	}
	if aerr := e.checkRequired(t, vals, changes, create); aerr != nil {
		return writeResult{}, aerr
	}
	now := e.clock.Now().Unix()
	e.scratch = t.encode(e.scratch[:0], vals)
	r := row{id: id, modified: now, version: e.nextVersion(), ref: t.arena.put(e.scratch), modifiedBy: c.actor}
	if create {
		r.created, r.createdBy = now, c.actor
		if oc := t.col("overriddencreatedon"); oc != nil && !vals[oc.slot].isNull() {
			r.created = vals[oc.slot].i
		}
		slot = tx.insert(t, r)
	} else {
		r.created, r.createdBy = old.created, old.createdBy
		tx.replace(t, slot, r)
	}
	return writeResult{t: t, id: id, slot: slot, created: create}, nil
}

func literal(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	case nil:
		return "null"
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func etag(version int64) string { return `W/"` + strconv.FormatInt(version, 10) + `"` }

// resolveFields maps payload members to columns and validated values (spec 4.1, 4.6, 9), in payload order.
// owner is the ownerid bind, if any; targets are the tables of the other lookups set (for AppendTo checks).
func (e *Emulator) resolveFields(c *opCtx, t *table, fields []field, create bool) ([]change, *value, []*table, *apiError) {
	changes := e.changeScratch[:0] // the caller is done with them before the next write (under the write lock)
	defer func() { e.changeScratch = changes[:0] }()
	var owner *value
	var targets []*table
	for _, f := range fields {
		name := f.name
		if name == t.PrimaryID || strings.HasPrefix(name, "@") {
			continue
		}
		if prop, annotation, ok := strings.Cut(name, "@"); ok {
			if annotation != "odata.bind" {
				continue // instance annotations on properties are ignored
			}
			ch, target, aerr := e.resolveBind(c, t, prop, f.val)
			if aerr != nil {
				return nil, nil, nil, aerr
			}
			if ch.col.Type == atOwner {
				v := ch.val
				owner = &v
			} else if target != nil {
				targets = append(targets, target)
			}
			changes = append(changes, ch)
			continue
		}
		col := t.byProp[name]
		if col == nil {
			if nav := t.navs[name]; nav != nil {
				if _, isObj := f.val.(map[string]any); isObj {
					return nil, nil, nil, newError(http.StatusNotImplemented, codeUnexpected, "Deep insert through '%s' is not emulated by the sandbox; bind existing rows with '%s@odata.bind'.", name, name)
				}
				return nil, nil, nil, errPayload(t.Set, "An unexpected 'PrimitiveValue' node was found when reading from the JSON reader. A 'StartObject' node was expected.")
			}
			return nil, nil, nil, newError(http.StatusBadRequest, codeODataParse,
				"The property '%s' does not exist on type 'Microsoft.Dynamics.CRM.%s'. Make sure to only use property names that are defined by the type or mark the type as open type.", name, t.Logical)
		}
		switch col.Type {
		case atLookup, atCustomer, atOwner:
			return nil, nil, nil, newError(http.StatusBadRequest, codeODataParse, "CRM do not support direct update of Entity Reference properties, Use Navigation properties instead.")
		}
		if (create && !col.ValidCreate) || (!create && !col.ValidUpdate) || col.src != srcBlob {
			if !e.set.rejectReadOnly {
				continue
			}
			op := "update"
			if create {
				op = "create"
			}
			return nil, nil, nil, newError(http.StatusBadRequest, codeInvalidArgument, "The attribute '%s' of entity '%s' is not valid for %s.", col.Logical, t.Logical, op)
		}
		v, aerr := convertIn(t, col, f.val, &e.set)
		if aerr != nil {
			return nil, nil, nil, aerr
		}
		changes = append(changes, change{col: col, val: v})
	}
	return changes, owner, targets, nil
}

// resolveBind resolves "<nav>@odata.bind": "/set(id)" | "$n" | absolute URL | null (spec 4.6). A missing
// target row fails with 404 / 0x80040217.
func (e *Emulator) resolveBind(c *opCtx, t *table, navName string, raw any) (change, *table, *apiError) {
	nav := t.navs[navName]
	if nav == nil {
		return change{}, nil, newError(http.StatusBadRequest, codeODataParse,
			"An undeclared property '%s' which only has property annotations in the payload but no property value was found in the payload. In OData, only declared navigation properties and declared named streams can be represented as properties without values.", navName)
	}
	if raw == nil {
		return change{col: nav.col}, nil, nil
	}
	s, ok := raw.(string)
	if !ok {
		return change{}, nil, errPayload(t.Set, "The value of the 'odata.bind' annotation on '"+navName+"' must be a URL string such as '/accounts(<guid>)'.")
	}
	var target *table
	var id [16]byte
	if strings.HasPrefix(s, "$") {
		ref, ok := c.refs[s]
		if !ok {
			return change{}, nil, errBadRequest("Content-ID Reference: '%s' does not exist in the batch context.", s)
		}
		target, id = ref.t, ref.id
	} else {
		var aerr *apiError
		if target, id, aerr = e.parseEntityRef(s); aerr != nil {
			return change{}, nil, aerr
		}
	}
	switch {
	case nav.target == "" && target.Logical != "systemuser" && target.Logical != "team":
		return change{}, nil, errBadRequest("The navigation property '%s' binds to systemusers or teams, not %s.", navName, target.Set)
	case nav.target != "" && target.Logical != nav.target:
		return change{}, nil, errBadRequest("The navigation property '%s' binds to %s, not %s.", navName, e.table(nav.target).Set, target.Set)
	}
	if _, ok := target.lookup(id); !ok {
		return change{}, nil, errNotFound(target.Logical, id)
	}
	return change{col: nav.col, val: guidRef(target, id)}, target, nil
}

// fixState keeps statecode and statuscode consistent: a status alone moves the state with it; a state alone
// takes its default status; a status that does not belong to the state fails.
func (e *Emulator) fixState(t *table, id [16]byte, vals []value, create, stateSet, statusSet bool) *apiError {
	sc, uc := t.col("statecode"), t.col("statuscode")
	if sc == nil || uc == nil {
		return nil
	}
	state, status := &vals[sc.slot], &vals[uc.slot]
	if create && !stateSet {
		*state = value{kind: vInt, i: 0}
	}
	statusState := func(s int64) int64 {
		for _, o := range uc.Options {
			if o.Value == s {
				return o.State
			}
		}
		return -1
	}
	switch {
	case statusSet && !status.isNull() && !stateSet:
		*state = value{kind: vInt, i: statusState(status.i)}
	case (stateSet || create) && (!statusSet || status.isNull()):
		for _, o := range uc.Options {
			if o.State == state.i {
				*status = value{kind: vInt, i: o.Value}
				break
			}
		}
	case (stateSet || statusSet) && statusState(status.i) != state.i:
		return newError(http.StatusBadRequest, codeInvalidArgument, "%d is not a valid status code for state code %sState.%s on %s with Id %s.",
			status.i, t.Schema, optionLabel(sc, state.i), t.Logical, guidString(id))
	}
	return nil
}

func optionLabel(c *column, v int64) string {
	for _, o := range c.Options {
		if o.Value == v {
			return o.Label
		}
	}
	return strconv.FormatInt(v, 10)
}

// checkRequired fails a create that leaves a required column empty, and any write that sets one to null.
// SystemRequired always applies; ApplicationRequired only while the behaviour switch enforces it.
func (e *Emulator) checkRequired(t *table, vals []value, changes []change, create bool) *apiError {
	required := func(c *column) bool {
		return c.src == srcBlob && (c.Required == reqSystemRequired || (c.Required == reqApplicationRequired && e.set.enforceRequired))
	}
	if create {
		for _, c := range t.cols {
			if required(c) && c.ValidCreate && vals[c.slot].isNull() {
				return errRequired(c, t)
			}
		}
		return nil
	}
	for _, ch := range changes {
		if required(ch.col) && ch.val.isNull() {
			return errRequired(ch.col, t)
		}
	}
	return nil
}

func errRequired(c *column, t *table) *apiError {
	return newError(http.StatusBadRequest, codeValidation, "A validation error occurred.  The value of '%s' on record of type '%s' is required (RequiredLevel %s).", c.Logical, t.Logical, c.Required)
}

// inWrite runs fn in a transaction: the current $batch change set's, or a new one holding the write lock.
// On error the new transaction is rolled back; a change set's is rolled back by the batch.
func (e *Emulator) inWrite(c *opCtx, fn func(tx *txn) (response, *apiError)) response {
	if c.tx != nil {
		resp, aerr := fn(c.tx)
		if aerr != nil {
			return e.fail(c, aerr)
		}
		return resp
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	tx := &txn{e: e, undo: e.undoScratch[:0]}
	defer func() { e.undoScratch = tx.undo[:0] }() // a bulk message logs a thousand undo entries
	resp, aerr := fn(tx)
	if aerr != nil {
		tx.rollback()
		return e.fail(c, aerr)
	}
	tx.commit()
	return resp
}

// rlock takes the read lock unless the operation already runs under the write lock.
func (e *Emulator) rlock(c *opCtx) func() {
	if c.tx != nil {
		return func() {}
	}
	e.mu.RLock()
	return e.mu.RUnlock
}

// serveWrite handles POST (create) and PATCH (update or upsert) of one row (spec 4.1-4.3).
func (e *Emulator) serveWrite(c *opCtx, t *table, method string, urlID *[16]byte, rawQuery string, hdr http.Header, body []byte) response {
	e.tally(c, cSingleWrite, 1)
	c.cost += time.Duration(e.prot.currentLimits().Costs.Write)
	q, aerr := parseQuery(rawQuery)
	if aerr != nil {
		return e.fail(c, aerr)
	}
	fields, aerr := parseEntityBody(t.Set, body)
	if aerr != nil {
		return e.fail(c, aerr)
	}
	op := writeOp{t: t, urlID: urlID, fields: fields}
	switch {
	case method == http.MethodPost:
		op.mode = modeCreate
	case hdr.Get("If-Match") != "":
		op.mode, op.ifOK = modeUpdate, hdr.Get("If-Match")
	case hdr.Get("If-None-Match") == "*":
		op.mode = modeCreateOnly
	default:
		op.mode = modeUpsert
	}
	return e.inWrite(c, func(tx *txn) (response, *apiError) {
		sel, aerr := parseSelect(t, q.get("$select"))
		if aerr != nil {
			return response{}, aerr
		}
		res, aerr := e.applyWrite(c, tx, op)
		if aerr != nil {
			return response{}, aerr
		}
		return e.writeResponse(c, res, sel, method == http.MethodPost), nil
	})
}

// writeResponse answers a successful write: 204 with OData-EntityId, or with return=representation 201
// (created) / 200 (updated) and the row (spec 4.1, 4.3).
func (e *Emulator) writeResponse(c *opCtx, res writeResult, sel []*column, post bool) response {
	t := res.t
	entityURL := e.baseURL() + t.Set + "(" + guidString(res.id) + ")"
	var resp response
	if c.prefs.returnRepresentation {
		status := http.StatusOK
		if res.created || post {
			status = http.StatusCreated
		}
		var v rowView
		v.e = e
		v.load(t, res.slot)
		b := []byte(`{"@odata.context":`)
		b = jsonrow.AppendString(b, e.baseURL()+"$metadata#"+t.Set+selectContext(sel)+"/$entity")
		b = append(b, ',')
		b = e.appendRowMembers(b, c, &v, sel)
		b = append(b, '}')
		resp = jsonResponse(status, b)
		resp.set("Preference-Applied", "return=representation")
		resp.set("ETag", etag(v.r.version))
	} else {
		resp = response{status: http.StatusNoContent}
		resp.set("OData-EntityId", entityURL)
	}
	resp.entity = &entityRef{t: t, id: res.id}
	return resp
}

// serveDelete handles DELETE set(id) (spec 4.5).
func (e *Emulator) serveDelete(c *opCtx, t *table, id [16]byte, hdr http.Header) response {
	e.tally(c, cSingleWrite, 1)
	c.cost += time.Duration(e.prot.currentLimits().Costs.Write)
	return e.inWrite(c, func(tx *txn) (response, *apiError) {
		if t.system {
			return response{}, newError(http.StatusForbidden, codePrivilegeDenied, "The sandbox maintains %s itself; it is read-only through the Web API.", t.Set)
		}
		slot, ok := t.lookup(id)
		if !ok {
			return response{}, errNotFound(t.Logical, id)
		}
		if aerr := e.checkRowPrivilege(c.actor, t, slot, t.privs.delete); aerr != nil {
			return response{}, aerr
		}
		if m := hdr.Get("If-Match"); m != "" && m != "*" && m != etag(t.rows[slot].version) {
			return response{}, newError(http.StatusPreconditionFailed, codeVersionMismatch, "The version of the existing record doesn't match the RowVersion property provided.")
		}
		tx.remove(t, slot)
		resp := response{status: http.StatusNoContent}
		resp.entity = &entityRef{t: t, id: id}
		return resp, nil
	})
}

// serveProperty handles set(id)/<property>: GET the value, PUT {"value": x}, DELETE to clear (spec 4.2).
func (e *Emulator) serveProperty(c *opCtx, t *table, id [16]byte, col *column, method string, body []byte) response {
	switch method {
	case http.MethodGet:
		e.tally(c, cRead, 1)
		c.cost += time.Duration(e.prot.currentLimits().Costs.Read)
		defer e.rlock(c)()
		slot, ok := t.lookup(id)
		if !ok {
			return e.fail(c, errNotFound(t.Logical, id))
		}
		if aerr := e.checkRowPrivilege(c.actor, t, slot, t.privs.read); aerr != nil {
			return e.fail(c, aerr)
		}
		var v rowView
		v.e = e
		v.load(t, slot)
		val := v.get(col)
		if val.isNull() {
			return response{status: http.StatusNoContent}
		}
		b := []byte(`{"@odata.context":`)
		b = jsonrow.AppendString(b, e.baseURL()+"$metadata#"+t.Set+"("+guidString(id)+")/"+col.prop)
		b = append(b, `,"value":`...)
		b = appendValue(b, val)
		return jsonResponse(http.StatusOK, append(b, '}'))
	case http.MethodPut, http.MethodDelete:
		var fields []field
		if method == http.MethodPut {
			fs, aerr := parseEntityBody(t.Set, body)
			if aerr != nil {
				return e.fail(c, aerr)
			}
			if len(fs) != 1 || fs[0].name != "value" {
				return e.fail(c, errPayload(t.Set, "A single-property PUT needs the body {\"value\": <value>}."))
			}
			fields = []field{{name: col.prop, val: fs[0].val}}
		} else {
			fields = []field{{name: col.prop, val: nil}}
		}
		e.tally(c, cSingleWrite, 1)
		c.cost += time.Duration(e.prot.currentLimits().Costs.Write)
		return e.inWrite(c, func(tx *txn) (response, *apiError) {
			if _, aerr := e.applyWrite(c, tx, writeOp{t: t, mode: modeUpdate, urlID: &id, fields: fields}); aerr != nil {
				return response{}, aerr
			}
			resp := response{status: http.StatusNoContent}
			resp.entity = &entityRef{t: t, id: id}
			return resp, nil
		})
	}
	return e.fail(c, errMethod(method))
}

// clearNavigation handles DELETE set(id)/<nav>/$ref, the documented way to clear a lookup (spec 4.6).
func (e *Emulator) clearNavigation(c *opCtx, t *table, id [16]byte, nav string) response {
	e.tally(c, cSingleWrite, 1)
	c.cost += time.Duration(e.prot.currentLimits().Costs.Write)
	return e.inWrite(c, func(tx *txn) (response, *apiError) {
		if _, aerr := e.applyWrite(c, tx, writeOp{t: t, mode: modeUpdate, urlID: &id, fields: []field{{name: nav + "@odata.bind", val: nil}}}); aerr != nil {
			return response{}, aerr
		}
		return response{status: http.StatusNoContent}, nil
	})
}
