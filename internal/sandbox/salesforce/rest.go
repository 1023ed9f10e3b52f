package salesforce

import (
	"bytes"

	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/schema"
)

// call is one authenticated REST or Bulk request under /services/data/vXX.X/.
type call struct {
	w       http.ResponseWriter
	r       *http.Request
	version string // "62.0"
	sess    *session
	rest    []string // path segments after the version
	batch   *txBatch // the savepoint of the composite request this is a subrequest of (allOrNone)
}

// base is the path prefix of this API version, e.g. /services/data/v62.0.
func (c *call) base() string { return "/services/data/v" + c.version }

var versionSegment = regexp.MustCompile(`^v(\d{2})\.(\d)$`)

// serveData routes /services/data/... (spec 2 and 4).
func (e *Emulator) serveData(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/services/data")
	if path == "" || path == "/" {
		e.count("rest.versions")
		e.handleVersions(w, r)
		return
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	m := versionSegment.FindStringSubmatch(segs[0])
	if m == nil {
		writeAPIError(w, errNotFound)
		return
	}
	switch e.versionState(m[1] + "." + m[2]) {
	case versionRetired:
		// Retired versions answer 410 GONE (the REST API's end-of-life policy); the body is a guess.
		writeAPIError(w, errorf(http.StatusGone, "UNSUPPORTED_API_VERSION", "API version %s.%s is retired and no longer available", m[1], m[2]))
		return
	case versionUnknown:
		writeAPIError(w, errNotFound)
		return
	}
	c := &call{w: w, r: r, version: m[1] + "." + m[2], rest: segs[1:]}
	sess, ok := e.tokens.valid(bearer(r))
	if !ok {
		writeAPIError(w, errInvalidSession)
		return
	}
	c.sess = sess
	used, max, ok := e.apiBudget()
	if !ok {
		w.Header().Set("Sforce-Limit-Info", "api-usage="+strconv.FormatInt(used, 10)+"/"+strconv.FormatInt(max, 10))
		writeAPIError(w, errLimitExceeded)
		return
	}
	w.Header().Set("Sforce-Limit-Info", "api-usage="+strconv.FormatInt(used, 10)+"/"+strconv.FormatInt(max, 10))
	// Compression headers (REST API): a gzip request body, and a gzip answer for Accept-Encoding: gzip (Bulk
	// results compress themselves).
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") && r.ContentLength != 0 {
		zr, err := gzip.NewReader(r.Body)
		switch {
		case errors.Is(err, io.EOF): // no body at all, whatever the header says (a GET)
		case err != nil:
			writeAPIError(w, errorf(http.StatusBadRequest, "JSON_PARSER_ERROR", "The request body is not gzip: %v", err))
			return
		default:
			r.Body = zr
		}
	}
	if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") && (len(c.rest) == 0 || c.rest[0] != "jobs") {
		gw := &gzipWriter{ResponseWriter: w}
		defer gw.close()
		c.w = gw
	}
	e.routeData(c)
}

// gzipWriter compresses an answer that has a body.
type gzipWriter struct {
	http.ResponseWriter
	zw *gzip.Writer
}

func (g *gzipWriter) WriteHeader(status int) {
	if status != http.StatusNoContent && status != http.StatusNotModified {
		g.Header().Set("Content-Encoding", "gzip")
		g.Header().Del("Content-Length")
		g.zw = gzip.NewWriter(g.ResponseWriter)
	}
	g.ResponseWriter.WriteHeader(status)
}

func (g *gzipWriter) Write(b []byte) (int, error) {
	if g.zw == nil {
		g.WriteHeader(http.StatusOK)
	}
	if g.zw == nil {
		return g.ResponseWriter.Write(b)
	}
	return g.zw.Write(b)
}

func (g *gzipWriter) close() {
	if g.zw != nil {
		_ = g.zw.Close()
	}
}

type versionStatus int

const (
	versionServed versionStatus = iota
	versionRetired
	versionUnknown
)

// versionState says whether the org serves an API version: from MinAPIVersion to APIVersion; older
// versions are retired (versions 21.0 to 30.0 were retired in Summer '25), newer ones do not exist yet.
func (e *Emulator) versionState(v string) versionStatus {
	x, err := strconv.ParseFloat(v, 64)
	maxV, _ := strconv.ParseFloat(e.cfg.APIVersion, 64)
	minV, _ := strconv.ParseFloat(e.cfg.MinAPIVersion, 64)
	switch {
	case err != nil || x > maxV:
		return versionUnknown
	case x < minV:
		return versionRetired
	}
	return versionServed
}

func (e *Emulator) routeData(c *call) {
	r := c.r
	seg := func(i int) string {
		if i < len(c.rest) {
			return c.rest[i]
		}
		return ""
	}
	n := len(c.rest)
	if n > 0 && c.rest[n-1] == "" { // a trailing slash
		n--
	}
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet // the server drops the body of HEAD answers
	}
	switch {
	case n == 0:
		e.count("rest.resources")
		if method != http.MethodGet {
			writeAPIError(c.w, errMethodNotAllowed(method, "GET", "HEAD"))
			return
		}
		e.handleResources(c)
	case seg(0) == "sobjects" && n == 1:
		e.count("rest.describe_global")
		if method != http.MethodGet {
			writeAPIError(c.w, errMethodNotAllowed(method, "GET", "HEAD"))
			return
		}
		e.handleDescribeGlobal(c)
	case seg(0) == "sobjects" && n == 2:
		switch method {
		case http.MethodGet:
			e.count("rest.sobject_info")
			e.handleObjectInfo(c, seg(1))
		case http.MethodPost:
			e.count("rest.sobject_create")
			e.handleCreate(c, seg(1))
		default:
			writeAPIError(c.w, errMethodNotAllowed(method, "GET", "HEAD", "POST"))
		}
	case seg(0) == "sobjects" && n == 3 && seg(2) == "describe":
		e.count("rest.describe")
		if method != http.MethodGet {
			writeAPIError(c.w, errMethodNotAllowed(method, "GET", "HEAD"))
			return
		}
		e.handleDescribe(c, seg(1))
	case seg(0) == "sobjects" && n == 3 && (seg(2) == "updated" || seg(2) == "deleted"):
		e.count("rest." + seg(2))
		if method != http.MethodGet {
			writeAPIError(c.w, errMethodNotAllowed(method, "GET", "HEAD"))
			return
		}
		e.handleReplication(c, seg(1), seg(2) == "deleted")
	case seg(0) == "sobjects" && n == 4:
		if method != http.MethodPatch {
			writeAPIError(c.w, errMethodNotAllowed(method, "PATCH"))
			return
		}
		e.count("rest.sobject_upsert")
		e.handleUpsert(c, seg(1), seg(2), seg(3))
	case seg(0) == "composite" && seg(1) == "sobjects":
		e.routeCollections(c, c.rest[2:n], method)
	case seg(0) == "composite" && (n == 1 || n == 2 && seg(1) == "batch"):
		if method != http.MethodPost {
			writeAPIError(c.w, errMethodNotAllowed(method, "POST"))
			return
		}
		if n == 1 {
			e.count("rest.composite")
			e.handleComposite(c)
		} else {
			e.count("rest.composite_batch")
			e.handleCompositeBatch(c)
		}
	case seg(0) == "sobjects" && n == 3:
		switch method {
		case http.MethodGet:
			e.count("rest.sobject_get")
			e.handleGet(c, seg(1), seg(2))
		case http.MethodPatch:
			e.count("rest.sobject_update")
			e.handleUpdate(c, seg(1), seg(2))
		case http.MethodDelete:
			e.count("rest.sobject_delete")
			e.handleDelete(c, seg(1), seg(2))
		default:
			writeAPIError(c.w, errMethodNotAllowed(method, "GET", "HEAD", "PATCH", "DELETE"))
		}
	case (seg(0) == "query" || seg(0) == "queryAll") && n <= 2:
		if method != http.MethodGet {
			writeAPIError(c.w, errMethodNotAllowed(method, "GET", "HEAD"))
			return
		}
		if n == 2 {
			e.count("rest.query_more")
			e.handleQueryMore(c, seg(1))
			return
		}
		if seg(0) == "queryAll" {
			e.count("rest.query_all")
		} else {
			e.count("rest.query")
		}
		e.handleQuery(c, seg(0) == "queryAll")
	case seg(0) == "limits" && n == 1:
		e.count("rest.limits")
		if method != http.MethodGet {
			writeAPIError(c.w, errMethodNotAllowed(method, "GET", "HEAD"))
			return
		}
		writeJSONValue(c.w, http.StatusOK, e.limits())
	case seg(0) == "jobs" && seg(1) == "query":
		e.routeBulk(c, c.rest[2:n])
	default:
		writeAPIError(c.w, errNotFound)
	}
}

// handleVersions serves GET /services/data/: every version the org serves, from MinAPIVersion to
// APIVersion. It needs no session, as on a real org.
func (e *Emulator) handleVersions(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeAPIError(w, errMethodNotAllowed(r.Method, "GET", "HEAD"))
		return
	}
	maxV, _ := strconv.ParseFloat(e.cfg.APIVersion, 64)
	minV, _ := strconv.ParseFloat(e.cfg.MinAPIVersion, 64)
	type version struct {
		Label   string `json:"label"`
		URL     string `json:"url"`
		Version string `json:"version"`
	}
	var out []version
	for v := int(minV); v <= int(maxV); v++ {
		ver := strconv.Itoa(v) + ".0"
		out = append(out, version{Label: releaseLabel(v), URL: "/services/data/v" + ver, Version: ver})
	}
	writeJSONValue(w, http.StatusOK, out)
}

// releaseLabel names the release of an API version: three releases a year, Spring '24 being v60.0.
func releaseLabel(v int) string {
	k := v - 60
	cycle := k / 3
	if k%3 != 0 && k < 0 {
		cycle--
	}
	idx := k - 3*cycle
	year := 24 + cycle
	if idx == 2 {
		year++ // Winter '25 follows Summer '24
	}
	return [...]string{"Spring", "Summer", "Winter"}[idx] + " '" + fmt.Sprintf("%02d", (year%100+100)%100)
}

// handleResources serves "List Available REST Resources" (GET /services/data/vXX.X/): resource names to
// their paths, and identity, the full identity URL of the session's user, as a real org lists it.
func (e *Emulator) handleResources(c *call) {
	b := c.base()
	writeJSONValue(c.w, http.StatusOK, map[string]string{
		"sobjects": b + "/sobjects", "query": b + "/query", "queryAll": b + "/queryAll", "limits": b + "/limits",
		"jobs": b + "/jobs", "search": b + "/search", "tooling": b + "/tooling", "recent": b + "/recent",
		"composite": b + "/composite", "identity": e.identityURL(c.sess.user),
	})
}

// objectOrNotFound resolves an sObject name of a path; unknown objects are 404 NOT_FOUND, as on a real org.
func (e *Emulator) objectOrNotFound(c *call, name string) (*objMeta, bool) {
	m, ok := e.store.meta(name)
	if !ok {
		writeAPIError(c.w, errNotFound)
	}
	return m, ok
}

func (e *Emulator) handleDescribeGlobal(c *call) {
	var objs []any
	for _, n := range e.schemas.Names() {
		m, _ := e.store.meta(n)
		objs = append(objs, e.objectSummary(c, m))
	}
	writeJSONValue(c.w, http.StatusOK, map[string]any{"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": objs})
}

func (e *Emulator) objectSummary(c *call, m *objMeta) map[string]any {
	o := m.obj
	return map[string]any{
		"name": o.Name, "label": o.Label, "labelPlural": o.LabelPlural, "keyPrefix": o.KeyPrefix, "custom": false,
		"createable": true, "updateable": true, "deletable": true, "queryable": true, "retrieveable": true,
		"searchable": true, "replicateable": true, "undeletable": true, "triggerable": true, "layoutable": true,
		"urls": e.objectURLs(c, o),
	}
}

func (e *Emulator) objectURLs(c *call, o *schema.Object) map[string]string {
	b := c.base() + "/sobjects/" + o.Name
	return map[string]string{"sobject": b, "describe": b + "/describe", "rowTemplate": b + "/{ID}"}
}

func (e *Emulator) handleObjectInfo(c *call, name string) {
	m, ok := e.objectOrNotFound(c, name)
	if !ok {
		return
	}
	writeJSONValue(c.w, http.StatusOK, map[string]any{"objectDescribe": e.objectSummary(c, m), "recentItems": []any{}})
}

// handleDescribe serves the sObject describe with exactly the keys of spec 2.2, fields from package schema.
func (e *Emulator) handleDescribe(c *call, name string) {
	m, ok := e.objectOrNotFound(c, name)
	if !ok {
		return
	}
	writeJSONValue(c.w, http.StatusOK, e.describe(c, m))
}

func (e *Emulator) describe(c *call, m *objMeta) map[string]any {
	o := m.obj
	fields := make([]any, len(o.Fields))
	for i, f := range o.Fields {
		fields[i] = describeField(f)
	}
	return map[string]any{
		"name": o.Name, "label": o.Label, "labelPlural": o.LabelPlural, "keyPrefix": o.KeyPrefix,
		"custom": false, "createable": true, "updateable": true, "deletable": true, "queryable": true,
		"fields":             fields,
		"childRelationships": e.childRelationships(o),
		"recordTypeInfos": []any{map[string]any{
			"active": true, "available": true, "defaultRecordTypeMapping": true, "developerName": "Master",
			"master": true, "name": "Master", "recordTypeId": "012000000000000AAA",
			"urls": map[string]string{"layout": c.base() + "/sobjects/" + o.Name + "/describe/layouts/012000000000000AAA"},
		}},
		"urls": e.objectURLs(c, o),
	}
}

// describeField is one element of describe's fields, with the keys of spec 2.2.
func describeField(f schema.Field) map[string]any {
	var rel, compound any
	if f.RelationshipName != "" {
		rel = f.RelationshipName
	}
	if f.CompoundFieldName != "" {
		compound = f.CompoundFieldName
	}
	length := f.Length
	if !schema.IsText(f.Type) && f.Type != "id" && f.Type != "reference" {
		length = 0
	}
	system := f.Name == "Id" || f.Name == "IsDeleted" || f.Name == "SystemModstamp"
	sortable := f.Type != "textarea" || f.Length <= 255
	return map[string]any{
		"name": f.Name, "label": f.Label, "type": f.Type, "soapType": f.SoapType(),
		"length": length, "byteLength": f.ByteLength(), "digits": f.Digits, "precision": f.Precision, "scale": f.Scale,
		"nillable": f.Nillable, "createable": f.Createable, "updateable": f.Updateable,
		"calculated": f.Calculated, "calculatedFormula": nil,
		"referenceTo": f.ReferenceTo, "relationshipName": rel, "compoundFieldName": compound,
		"picklistValues": f.PicklistValues,
		"aggregatable":   f.Type != "address" && f.Type != "textarea", "autoNumber": false, "cascadeDelete": false,
		"caseSensitive": false, "custom": f.Custom, "defaultedOnCreate": f.DefaultedOnCreate, "dependentPicklist": false,
		"deprecatedAndHidden": false, "externalId": f.ExternalID, "filterable": f.Type != "address" && (f.Type != "textarea" || f.Length <= 255),
		"groupable":     sortable && f.Type != "datetime" && f.Type != "double" && f.Type != "currency" && f.Type != "address",
		"htmlFormatted": false, "idLookup": f.IDLookup, "nameField": f.NameField, "namePointing": false,
		"permissionable": f.Nillable && !system && f.Createable, "polymorphicForeignKey": false,
		"restrictedPicklist": false, "sortable": sortable && f.Type != "address", "unique": f.Unique, "writeRequiresMasterRead": false,
	}
}

// childRelationships lists the lookups of every object that point at o.
func (e *Emulator) childRelationships(o *schema.Object) []any {
	names := map[string]string{"Contact.AccountId": "Contacts", "Account.ParentId": "ChildAccounts", "Contact.ReportsToId": "DirectReports"}
	out := []any{}
	for _, n := range e.schemas.Names() {
		child, _ := e.store.meta(n)
		for _, f := range child.obj.Fields {
			if f.Type != "reference" || len(f.ReferenceTo) == 0 || f.ReferenceTo[0] != o.Name {
				continue
			}
			var rel any
			if name, ok := names[n+"."+f.Name]; ok {
				rel = name
			}
			out = append(out, map[string]any{
				"cascadeDelete": false, "childSObject": n, "deprecatedAndHidden": false, "field": f.Name,
				"junctionIdListNames": []string{}, "junctionReferenceTo": []string{}, "relationshipName": rel,
				"restrictedDelete": false,
			})
		}
	}
	return out
}

// handleGet serves GET /sobjects/{object}/{id}[?fields=A,B].
func (e *Emulator) handleGet(c *call, name, rawID string) {
	m, ok := e.objectOrNotFound(c, name)
	if !ok {
		return
	}
	id, ok := e.recordID(c, m, rawID)
	if !ok {
		return
	}
	rec := e.store.get(m.obj.Name, id)
	switch {
	case rec == nil:
		writeAPIError(c.w, errNotFound)
		return
	case rec.deleted(m):
		writeAPIError(c.w, errorf(http.StatusNotFound, "ENTITY_IS_DELETED", "entity is deleted"))
		return
	}
	var refs []fieldRef
	if fl := c.r.URL.Query().Get("fields"); fl != "" {
		for _, name := range strings.Split(fl, ",") {
			name = strings.TrimSpace(name)
			pos, ok := m.field(name)
			if !ok {
				writeAPIError(c.w, errorf(http.StatusBadRequest, "INVALID_FIELD", "No such column '%s' on sobject of type %s", name, m.obj.Name))
				return
			}
			f := m.obj.Fields[pos]
			refs = append(refs, fieldRef{rel: -1, meta: m, pos: pos, field: f, name: f.Name, compound: f.Type == "address"})
		}
	} else {
		refs = allFieldRefs(m)
	}
	var buf bytes.Buffer
	rs := &resultSet{q: &query{meta: m, fields: refs}, recs: []*record{rec}}
	writeRecordJSON(&buf, rs, 0, c.base())
	writeJSONBytes(c.w, http.StatusOK, buf.Bytes())
}

func allFieldRefs(m *objMeta) []fieldRef {
	refs := make([]fieldRef, len(m.obj.Fields))
	for pos, f := range m.obj.Fields {
		refs[pos] = fieldRef{rel: -1, meta: m, pos: pos, field: f, name: f.Name, compound: f.Type == "address"}
	}
	return refs
}

// recordID validates an Id from a path: malformed or of another object → 400 MALFORMED_ID.
func (e *Emulator) recordID(c *call, m *objMeta, raw string) (string, bool) {
	id, ok := normalizeID(raw, m.obj.KeyPrefix)
	if !ok {
		writeAPIError(c.w, errorf(http.StatusBadRequest, "MALFORMED_ID", "%s ID: id value of incorrect type: %s", m.obj.Label, raw).withFields("Id"))
	}
	return id, ok
}

// decodeBody decodes a JSON object body into raw values (numbers kept as json.Number).
func decodeBody(c *call) (map[string]any, *apiError) {
	data, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, 10<<20))
	if err != nil {
		return nil, errorf(http.StatusRequestEntityTooLarge, "JSON_PARSER_ERROR", "request body too large or unreadable: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var body map[string]any
	if err := dec.Decode(&body); err != nil || body == nil {
		return nil, jsonParserError(data, err)
	}
	if dec.More() {
		return nil, jsonParserError(data, errors.New("unexpected content after the JSON object"))
	}
	return body, nil
}

// jsonParserError describes a body that is not a JSON object the way Salesforce's parser does.
func jsonParserError(data []byte, err error) *apiError {
	line, col := 1, 1
	var se *json.SyntaxError
	if errors.As(err, &se) {
		for i := 0; i < int(se.Offset) && i < len(data); i++ {
			if data[i] == '\n' {
				line, col = line+1, 1
			} else {
				col++
			}
		}
		return errorf(http.StatusBadRequest, "JSON_PARSER_ERROR", "Unexpected character: %s at [line:%d, column:%d]", se.Error(), line, col)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return errorf(http.StatusBadRequest, "JSON_PARSER_ERROR", "No content to map due to end-of-input at [line:1, column:0]")
	}
	msg := "Cannot deserialize instance of sObject from the request body"
	if err != nil {
		msg += ": " + err.Error()
	}
	return errorf(http.StatusBadRequest, "JSON_PARSER_ERROR", "%s at [line:1, column:1]", msg)
}

// recordValues converts a create or update body to typed values by field position, rejecting unknown and
// read-only fields.
func recordValues(m *objMeta, body map[string]any, create bool) (map[int]any, *apiError) {
	vals := make(map[int]any, len(body))
	for k, raw := range body {
		if k == "attributes" {
			continue
		}
		pos, ok := m.field(k)
		if !ok {
			return nil, errorf(http.StatusBadRequest, "INVALID_FIELD", "No such column '%s' on sobject of type %s", k, m.obj.Name)
		}
		f := m.obj.Fields[pos]
		if create && !f.Createable || !create && !f.Updateable {
			return nil, errorf(http.StatusBadRequest, "INVALID_FIELD_FOR_INSERT_UPDATE",
				"Unable to create/update fields: %s. Please check the security settings of this field and verify that it is read/write for your profile or permission set.", f.Name).withFields(f.Name)
		}
		v, err := fromJSON(m.obj, f, raw)
		if err != nil {
			return nil, err
		}
		vals[pos] = v
	}
	return vals, nil
}

// changeOrigin is the changeOrigin of events caused by this call (spec 5.2).
func (c *call) changeOrigin() string {
	origin := "com/salesforce/api/rest/" + c.version
	if client := callOptionsClient(c.r.Header.Get("Sforce-Call-Options")); client != "" {
		origin += ";client=" + client
	}
	return origin
}

// txOptions says who commits this call's changes and how they show up on the event bus.
func (c *call) txOptions() txOptions {
	return txOptions{user: c.sess.user, origin: c.changeOrigin(), batch: c.batch}
}

// callOptionsClient extracts client=<name> from a Sforce-Call-Options header.
func callOptionsClient(h string) string {
	for _, part := range strings.Split(h, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "client") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// handleCreate serves POST /sobjects/{object}: 201 {"id","success":true,"errors":[]}.
func (e *Emulator) handleCreate(c *call, name string) {
	m, ok := e.objectOrNotFound(c, name)
	if !ok {
		return
	}
	body, aerr := decodeBody(c)
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	vals, aerr := recordValues(m, body, true)
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	done, _, terr := e.store.commit([]change{{kind: opCreate, object: m.obj.Name, values: vals}},
		c.txOptions())
	if terr != nil {
		writeAPIError(c.w, terr.Err)
		return
	}
	c.w.Header().Set("Location", c.base()+"/sobjects/"+m.obj.Name+"/"+done[0].id)
	writeJSONValue(c.w, http.StatusCreated, map[string]any{"id": done[0].id, "success": true, "errors": []any{}})
}

// handleUpdate serves PATCH /sobjects/{object}/{id}: 204.
func (e *Emulator) handleUpdate(c *call, name, rawID string) {
	m, ok := e.objectOrNotFound(c, name)
	if !ok {
		return
	}
	id, ok := e.recordID(c, m, rawID)
	if !ok {
		return
	}
	body, aerr := decodeBody(c)
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	vals, aerr := recordValues(m, body, false)
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	if _, _, terr := e.store.commit([]change{{kind: opUpdate, object: m.obj.Name, id: id, values: vals}},
		c.txOptions()); terr != nil {
		writeAPIError(c.w, terr.Err)
		return
	}
	c.w.WriteHeader(http.StatusNoContent)
}

// handleDelete serves DELETE /sobjects/{object}/{id}: a soft delete (the record moves to the recycle bin
// and stays visible to queryAll with IsDeleted = true), 204.
func (e *Emulator) handleDelete(c *call, name, rawID string) {
	m, ok := e.objectOrNotFound(c, name)
	if !ok {
		return
	}
	id, ok := e.recordID(c, m, rawID)
	if !ok {
		return
	}
	if _, _, terr := e.store.commit([]change{{kind: opDelete, object: m.obj.Name, id: id}},
		c.txOptions()); terr != nil {
		writeAPIError(c.w, terr.Err)
		return
	}
	c.w.WriteHeader(http.StatusNoContent)
}

// handleReplication serves the updated and deleted resources (spec 2.1): records whose SystemModstamp is
// in [start, end), both rounded down to the minute.
func (e *Emulator) handleReplication(c *call, name string, deleted bool) {
	m, ok := e.objectOrNotFound(c, name)
	if !ok {
		return
	}
	q := c.r.URL.Query()
	var bounds [2]time.Time
	for i, p := range []string{"start", "end"} {
		v := q.Get(p)
		if v == "" {
			writeAPIError(c.w, errorf(http.StatusBadRequest, "MISSING_ARGUMENT", "Missing parameter: %s", p))
			return
		}
		t, ok := parseDateTime(v)
		if !ok {
			writeAPIError(c.w, errorf(http.StatusBadRequest, "INVALID_REPLICATION_DATE", "%s: invalid date: %s", p, v))
			return
		}
		bounds[i] = t.Truncate(time.Minute)
	}
	now := e.clock.Now().UTC()
	start, end := bounds[0], bounds[1]
	switch {
	case end.Before(start):
		writeAPIError(c.w, errorf(http.StatusBadRequest, "INVALID_REPLICATION_DATE", "startDate must chronologically precede endDate by more than one minute"))
		return
	case start.Before(now.Add(-30 * 24 * time.Hour)):
		writeAPIError(c.w, errorf(http.StatusBadRequest, "INVALID_REPLICATION_DATE", "startDate cannot be more than 30 days ago"))
		return
	}
	if end.After(now) {
		end = now.Truncate(time.Minute)
	}
	ids, stamps := e.store.changedBetween(m, start, end, deleted)
	latest := end.Format(restDateTime)
	if !deleted {
		if ids == nil {
			ids = []string{}
		}
		writeJSONValue(c.w, http.StatusOK, map[string]any{"ids": ids, "latestDateCovered": latest})
		return
	}
	recs := make([]map[string]string, len(ids))
	for i := range ids {
		recs[i] = map[string]string{"id": ids[i], "deletedDate": stamps[i].Format(restDateTime)}
	}
	earliest := e.started.UTC().Truncate(time.Minute)
	if limit := now.Add(-15 * 24 * time.Hour); earliest.Before(limit) {
		earliest = limit.Truncate(time.Minute)
	}
	writeJSONValue(c.w, http.StatusOK, map[string]any{
		"deletedRecords": recs, "earliestDateAvailable": earliest.Format(restDateTime), "latestDateCovered": latest,
	})
}
