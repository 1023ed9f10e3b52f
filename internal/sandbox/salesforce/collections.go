package salesforce

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// sObject Collections (REST API, "sObject Collections"): up to 200 records of any objects per request,
// created (POST /composite/sobjects), updated (PATCH), upserted by an external Id field
// (PATCH /composite/sobjects/{SObject}/{Field}), deleted (DELETE ?ids=) or retrieved
// (GET /composite/sobjects/{SObject}?ids=&fields=, or POST with the lists in the body), answering a list of
// per-record results in request order. With allOrNone=true one failing record fails the request: every
// record answers success false, the invalid ones with their errors and the others with
// ALL_OR_NONE_OPERATION_ROLLED_BACK, and nothing is saved. Otherwise every valid record is saved, in one
// transaction (so identical changes make one merged change event, as on a real org).

// collectionLimit is the records per create, update, upsert or delete request; retrieveLimit the Ids per
// retrieve.
const (
	collectionLimit = 200
	retrieveLimit   = 2000
)

// recordError is one error of a per-record result; its key is statusCode, not errorCode.
type recordError struct {
	StatusCode string   `json:"statusCode"`
	Message    string   `json:"message"`
	Fields     []string `json:"fields"`
}

// saveResult is one record's result, keys in the real order. ID is absent for records that could not be
// created; Created only in upsert results.
type saveResult struct {
	ID      *string       `json:"id,omitempty"`
	Success bool          `json:"success"`
	Errors  []recordError `json:"errors"`
	Created *bool         `json:"created,omitempty"`
}

func toRecordError(e *apiError) recordError {
	f := e.Fields
	if f == nil {
		f = []string{}
	}
	return recordError{StatusCode: e.Code, Message: e.Message, Fields: f}
}

var errRolledBack = recordError{StatusCode: "ALL_OR_NONE_OPERATION_ROLLED_BACK",
	Message: "Record rolled back because not all records were valid and the request was using AllOrNone header", Fields: []string{}}

func errTooManyRecords() *apiError {
	return errorf(http.StatusBadRequest, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than %d records into this call", collectionLimit)
}

// collectionItem is one record of a request: its change (when it could be built) or its error.
type collectionItem struct {
	ch      change
	id      string // the record's Id where known (updates, deletes, matched upserts)
	err     *apiError
	created bool // upserts: the record is new
}

// routeCollections serves /composite/sobjects[/{SObject}[/{Field}]]; rest starts after "sobjects".
func (e *Emulator) routeCollections(c *call, rest []string, method string) {
	switch {
	case len(rest) == 0 && method == http.MethodPost:
		e.count("rest.collection_create")
		e.collectionSave(c, opCreate, "")
	case len(rest) == 0 && method == http.MethodPatch:
		e.count("rest.collection_update")
		e.collectionSave(c, opUpdate, "")
	case len(rest) == 0 && method == http.MethodDelete:
		e.count("rest.collection_delete")
		e.collectionDelete(c)
	case len(rest) == 0:
		writeAPIError(c.w, errMethodNotAllowed(method, "POST", "PATCH", "DELETE"))
	case len(rest) == 1 && (method == http.MethodGet || method == http.MethodPost):
		e.count("rest.collection_retrieve")
		e.collectionRetrieve(c, rest[0])
	case len(rest) == 1:
		writeAPIError(c.w, errMethodNotAllowed(method, "GET", "HEAD", "POST"))
	case len(rest) == 2 && method == http.MethodPatch:
		e.count("rest.collection_upsert")
		e.collectionSave(c, opUpdate, rest[0]+"/"+rest[1])
	case len(rest) == 2:
		writeAPIError(c.w, errMethodNotAllowed(method, "PATCH"))
	default:
		writeAPIError(c.w, errNotFound)
	}
}

// collectionBody reads {"allOrNone": bool, "records": [...]}.
func collectionBody(c *call) (bool, []any, *apiError) {
	body, aerr := decodeBody(c)
	if aerr != nil {
		return false, nil, aerr
	}
	allOrNone := false
	if v, ok := body["allOrNone"]; ok {
		b, isBool := v.(bool)
		if !isBool {
			return false, nil, errorf(http.StatusBadRequest, "JSON_PARSER_ERROR", "Cannot deserialize value of type `boolean` from allOrNone")
		}
		allOrNone = b
	}
	recs, ok := body["records"].([]any)
	if !ok {
		return false, nil, errorf(http.StatusBadRequest, "INVALID_FIELD", "The records list is required")
	}
	if len(recs) > collectionLimit {
		return false, nil, errTooManyRecords()
	}
	return allOrNone, recs, nil
}

// collectionSave serves create, update and (with upsert = "{SObject}/{Field}") upsert collections.
func (e *Emulator) collectionSave(c *call, kind opKind, upsert string) {
	allOrNone, recs, aerr := collectionBody(c)
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	var upsertMeta *objMeta
	var upsertField int
	if upsert != "" {
		object, field, _ := strings.Cut(upsert, "/")
		m, ok := e.objectOrNotFound(c, object)
		if !ok {
			return
		}
		pos, aerr := upsertKeyField(m, field)
		if aerr != nil {
			writeAPIError(c.w, aerr)
			return
		}
		upsertMeta, upsertField = m, pos
	}
	items := make([]collectionItem, len(recs))
	for i, raw := range recs {
		rec, ok := raw.(map[string]any)
		if !ok {
			items[i].err = errorf(http.StatusBadRequest, "JSON_PARSER_ERROR", "Each element of records must be an sObject")
			continue
		}
		switch {
		case upsertMeta != nil:
			items[i] = e.upsertItem(upsertMeta, upsertField, rec)
		default:
			items[i] = e.saveItem(kind, rec)
		}
	}
	e.commitCollection(c, items, allOrNone)
	results := make([]saveResult, len(items))
	for i, it := range items {
		r := saveResult{Success: it.err == nil, Errors: []recordError{}}
		switch it.err {
		case nil:
			id := it.ch.id
			r.ID = &id
		case errRolledBackMarker:
			r.Errors = []recordError{errRolledBack}
			if kind != opCreate && it.id != "" {
				id := it.id
				r.ID = &id
			}
		default:
			r.Errors = []recordError{toRecordError(it.err)}
			if kind != opCreate && it.id != "" {
				id := it.id
				r.ID = &id
			}
		}
		if upsertMeta != nil {
			created := it.created && it.err == nil
			r.Created = &created
		}
		results[i] = r
	}
	writeJSONValue(c.w, http.StatusOK, results)
}

// errRolledBackMarker marks an item that was valid but not saved under allOrNone.
var errRolledBackMarker = &apiError{Code: "ALL_OR_NONE_OPERATION_ROLLED_BACK"}

// recordObject reads a record's attributes.type.
func (e *Emulator) recordObject(rec map[string]any) (*objMeta, *apiError) {
	attrs, _ := rec["attributes"].(map[string]any)
	typ, _ := attrs["type"].(string)
	if typ == "" {
		return nil, errorf(http.StatusBadRequest, "INVALID_TYPE", "Each record must have a type in its attributes map")
	}
	m, ok := e.store.meta(typ)
	if !ok {
		return nil, errorf(http.StatusBadRequest, "INVALID_TYPE", "sObject type '%s' is not supported.", typ)
	}
	return m, nil
}

// saveItem builds the change of one record of a create or update collection.
func (e *Emulator) saveItem(kind opKind, rec map[string]any) collectionItem {
	var it collectionItem
	rawID, hasID := rec["Id"]
	if !hasID {
		rawID, hasID = rec["id"]
	}
	idStr, _ := rawID.(string)
	m, aerr := e.recordObject(rec)
	if kind == opUpdate {
		it.id = idStr
	}
	if aerr != nil {
		it.err = aerr
		return it
	}
	fields := withoutKeys(rec, "Id", "id")
	switch kind {
	case opCreate:
		if hasID && rawID != nil {
			it.err = errorf(http.StatusBadRequest, "INVALID_FIELD", "cannot specify Id in an insert call").withFields("Id")
			return it
		}
		vals, aerr := recordValues(m, fields, true)
		if aerr != nil {
			it.err = aerr
			return it
		}
		it.ch = change{kind: opCreate, object: m.obj.Name, values: vals}
	default:
		if idStr == "" {
			it.err = errorf(http.StatusBadRequest, "MISSING_ARGUMENT", "Id not specified in an update call").withFields("Id")
			return it
		}
		id, ok := normalizeID(idStr, m.obj.KeyPrefix)
		if !ok {
			it.err = errorf(http.StatusBadRequest, "MALFORMED_ID", "%s ID: id value of incorrect type: %s", m.obj.Label, idStr).withFields("Id")
			return it
		}
		vals, aerr := recordValues(m, fields, false)
		if aerr != nil {
			it.err = aerr
			return it
		}
		it.id = id
		it.ch = change{kind: opUpdate, object: m.obj.Name, id: id, values: vals}
	}
	return it
}

// upsertKeyField resolves the field an upsert matches on: Id, an External ID field, or (on standard
// objects) an idLookup field, as SOAP upsert documents.
func upsertKeyField(m *objMeta, name string) (int, *apiError) {
	pos, ok := m.field(name)
	if !ok {
		return 0, errorf(http.StatusNotFound, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: %s", name)
	}
	f := m.obj.Fields[pos]
	if f.Name != "Id" && !f.ExternalID && !f.IDLookup {
		return 0, errorf(http.StatusBadRequest, "INVALID_FIELD", "Field %s is not an external id field and cannot be used for upsert", f.Name).withFields(f.Name)
	}
	return pos, nil
}

// upsertItem builds the change of one record of an upsert: an update of the one live record whose key field
// has the record's value, or a create when none has it.
func (e *Emulator) upsertItem(m *objMeta, keyPos int, rec map[string]any) collectionItem {
	var it collectionItem
	if rm, aerr := e.recordObject(rec); aerr != nil {
		it.err = aerr
		return it
	} else if rm.obj.Name != m.obj.Name {
		it.err = errorf(http.StatusBadRequest, "INVALID_TYPE", "The record's type %s does not match the upsert's sObject %s", rm.obj.Name, m.obj.Name)
		return it
	}
	keyName := m.obj.Fields[keyPos].Name
	var keyRaw any
	for k, v := range rec {
		if strings.EqualFold(k, keyName) {
			keyRaw = v
		}
	}
	key, ok := keyRaw.(string)
	if !ok {
		if n, isNum := keyRaw.(json.Number); isNum {
			key, ok = n.String(), true
		}
	}
	if !ok || key == "" {
		it.err = errorf(http.StatusBadRequest, "MISSING_ARGUMENT", "%s not specified", keyName).withFields(keyName)
		return it
	}
	return e.upsertChange(m, keyPos, key, withoutKeys(rec, keyName))
}

// upsertChange matches key against the key field and builds the update or the create.
func (e *Emulator) upsertChange(m *objMeta, keyPos int, key string, fields map[string]any) collectionItem {
	var it collectionItem
	f := m.obj.Fields[keyPos]
	matches := e.store.matchField(m, keyPos, key)
	switch {
	case len(matches) > 1:
		it.err = errorf(http.StatusMultipleChoices, "DUPLICATE_EXTERNAL_ID", "%s: more than one record found for external id field: %v", f.Name, matches).withFields(f.Name)
		return it
	case len(matches) == 1:
		vals, aerr := recordValues(m, withoutKeys(fields, "Id"), false)
		if aerr != nil {
			it.err, it.id = aerr, matches[0]
			return it
		}
		it.id = matches[0]
		it.ch = change{kind: opUpdate, object: m.obj.Name, id: matches[0], values: vals}
	case f.Name == "Id":
		it.err = errorf(http.StatusNotFound, "NOT_FOUND", "Provided external ID field does not exist or is not accessible: %s", key)
		return it
	default:
		fields = withoutKeys(fields, "Id")
		fields[f.Name] = key
		vals, aerr := recordValues(m, fields, true)
		if aerr != nil {
			it.err = aerr
			return it
		}
		it.ch, it.created = change{kind: opCreate, object: m.obj.Name, values: vals}, true
	}
	return it
}

// commitCollection validates every item on its own, then commits the valid ones in one transaction (all or
// none of them under allOrNone). Items end with err nil and ch.id set (saved), their error, or
// errRolledBackMarker (valid but not saved).
func (e *Emulator) commitCollection(c *call, items []collectionItem, allOrNone bool) {
	opt := c.txOptions()
	dry := opt
	dry.dryRun = true
	var valid []int
	for i := range items {
		if items[i].err != nil {
			continue
		}
		if _, _, terr := e.store.commit([]change{items[i].ch}, dry); terr != nil {
			items[i].err = terr.Err
			continue
		}
		valid = append(valid, i)
	}
	if allOrNone && len(valid) < len(items) {
		for _, i := range valid {
			items[i].err = errRolledBackMarker
		}
		return
	}
	// Records valid on their own can still conflict (the same record twice): drop the one that fails and
	// try again, so the rest are saved together.
	for len(valid) > 0 {
		changes := make([]change, len(valid))
		for k, i := range valid {
			changes[k] = items[i].ch
		}
		done, _, terr := e.store.commit(changes, opt)
		if terr == nil {
			for k, i := range valid {
				items[i].ch.id = done[k].id
			}
			return
		}
		bad := valid[terr.Index]
		items[bad].err = terr.Err
		if allOrNone {
			for _, i := range valid {
				if i != bad {
					items[i].err = errRolledBackMarker
				}
			}
			return
		}
		valid = append(valid[:terr.Index], valid[terr.Index+1:]...)
	}
}

// collectionDelete serves DELETE /composite/sobjects?ids=a,b[&allOrNone=true].
func (e *Emulator) collectionDelete(c *call) {
	q := c.r.URL.Query()
	raw := strings.Split(q.Get("ids"), ",")
	if q.Get("ids") == "" {
		writeAPIError(c.w, errorf(http.StatusBadRequest, "MISSING_ARGUMENT", "ids parameter is required"))
		return
	}
	if len(raw) > collectionLimit {
		writeAPIError(c.w, errTooManyRecords())
		return
	}
	allOrNone, _ := strconv.ParseBool(q.Get("allOrNone"))
	items := make([]collectionItem, len(raw))
	for i, s := range raw {
		s = strings.TrimSpace(s)
		items[i].id = s
		m, ok := e.metaByPrefix(s)
		id, valid := "", false
		if ok {
			id, valid = normalizeID(s, m.obj.KeyPrefix)
		}
		if !valid {
			items[i].err = errorf(http.StatusBadRequest, "MALFORMED_ID", "malformed id %s", s)
			continue
		}
		items[i].id = id
		items[i].ch = change{kind: opDelete, object: m.obj.Name, id: id}
	}
	e.commitCollection(c, items, allOrNone)
	results := make([]saveResult, len(items))
	for i, it := range items {
		id := it.id
		r := saveResult{ID: &id, Success: it.err == nil, Errors: []recordError{}}
		switch {
		case it.err == errRolledBackMarker:
			r.Errors = []recordError{errRolledBack}
		case it.err != nil:
			r.Errors = []recordError{toRecordError(it.err)}
		}
		results[i] = r
	}
	writeJSONValue(c.w, http.StatusOK, results)
}

// metaByPrefix finds the object of an Id by its key prefix.
func (e *Emulator) metaByPrefix(id string) (*objMeta, bool) {
	if len(id) < 3 {
		return nil, false
	}
	for _, n := range e.schemas.Names() {
		if m, ok := e.store.meta(n); ok && m.obj.KeyPrefix == id[:3] {
			return m, true
		}
	}
	return nil, false
}

// collectionRetrieve serves GET /composite/sobjects/{SObject}?ids=&fields= and the POST form with
// {"ids": [...], "fields": [...]}: the records in request order, null for Ids with no live record.
func (e *Emulator) collectionRetrieve(c *call, object string) {
	m, ok := e.objectOrNotFound(c, object)
	if !ok {
		return
	}
	var ids, fields []string
	if c.r.Method == http.MethodPost {
		body, aerr := decodeBody(c)
		if aerr != nil {
			writeAPIError(c.w, aerr)
			return
		}
		ids, fields = stringList(body["ids"]), stringList(body["fields"])
	} else {
		q := c.r.URL.Query()
		ids, fields = splitList(q.Get("ids")), splitList(q.Get("fields"))
	}
	switch {
	case len(ids) == 0:
		writeAPIError(c.w, errorf(http.StatusBadRequest, "MISSING_ARGUMENT", "ids parameter is required"))
		return
	case len(fields) == 0:
		writeAPIError(c.w, errorf(http.StatusBadRequest, "MISSING_ARGUMENT", "fields parameter is required"))
		return
	case len(ids) > retrieveLimit:
		writeAPIError(c.w, errorf(http.StatusBadRequest, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than %d records into this call", retrieveLimit))
		return
	}
	refs := make([]fieldRef, 0, len(fields))
	for _, name := range fields {
		pos, ok := m.field(name)
		if !ok {
			writeAPIError(c.w, errorf(http.StatusBadRequest, "INVALID_FIELD", "No such column '%s' on sobject of type %s", name, m.obj.Name))
			return
		}
		f := m.obj.Fields[pos]
		refs = append(refs, fieldRef{rel: -1, meta: m, pos: pos, field: f, name: f.Name, compound: f.Type == "address"})
	}
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, raw := range ids {
		if i > 0 {
			buf.WriteByte(',')
		}
		id, ok := normalizeID(raw, m.obj.KeyPrefix)
		if !ok {
			writeAPIError(c.w, errorf(http.StatusBadRequest, "MALFORMED_ID", "%s ID: id value of incorrect type: %s", m.obj.Label, raw))
			return
		}
		rec := e.store.get(m.obj.Name, id)
		if rec == nil || rec.deleted(m) {
			buf.WriteString("null")
			continue
		}
		writeRecordJSON(&buf, &resultSet{q: &query{meta: m, fields: refs}, recs: []*record{rec}}, 0, c.base())
	}
	buf.WriteByte(']')
	writeJSONBytes(c.w, http.StatusOK, buf.Bytes())
}

// handleUpsert serves PATCH /sobjects/{SObject}/{Field}/{Value}: 201 with created true for a new record,
// 200 with created false for an update (API 46.0 and later), 300 when several records match.
func (e *Emulator) handleUpsert(c *call, object, field, value string) {
	m, ok := e.objectOrNotFound(c, object)
	if !ok {
		return
	}
	pos, aerr := upsertKeyField(m, field)
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	body, aerr := decodeBody(c)
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	if m.obj.Fields[pos].Name == "Id" {
		if id, ok := normalizeID(value, m.obj.KeyPrefix); ok {
			value = id
		}
	}
	it := e.upsertChange(m, pos, value, withoutKeys(body, "attributes"))
	if it.err == nil {
		done, _, terr := e.store.commit([]change{it.ch}, c.txOptions())
		if terr != nil {
			it.err = terr.Err
		} else {
			it.ch.id = done[0].id
		}
	}
	if it.err != nil {
		writeAPIError(c.w, it.err)
		return
	}
	status := http.StatusOK
	if it.created {
		status = http.StatusCreated
		c.w.Header().Set("Location", c.base()+"/sobjects/"+m.obj.Name+"/"+it.ch.id)
	}
	writeJSONValue(c.w, status, saveResult{ID: &it.ch.id, Success: true, Errors: []recordError{}, Created: &it.created})
}

func withoutKeys(rec map[string]any, keys ...string) map[string]any {
	out := make(map[string]any, len(rec))
	for k, v := range rec {
		drop := false
		for _, key := range keys {
			if strings.EqualFold(k, key) {
				drop = true
			}
		}
		if !drop {
			out[k] = v
		}
	}
	return out
}

func stringList(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}
