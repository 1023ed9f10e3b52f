package dataverse

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/jsonrow"
)

// maxBody caps request bodies; Dataverse fails bulk payloads over 116.85 MB (spec 4.7).
const maxBody = 128 << 20

// opCtx is the context of one operation: a top-level request or one part of a $batch.
type opCtx struct {
	user    uint16 // caller, index into Emulator.users
	actor   uint16 // the user the operation acts as: user, or the impersonated user (spec 8.5)
	prefs   prefs
	hdr     http.Header
	tx      *txn                 // non-nil inside a $batch change set (the lock is held)
	refs    map[string]entityRef // $batch Content-ID references of the current change set
	inBatch bool
	cost    time.Duration
	reqURL  string // the request URL, for @odata.nextLink
}

// entityRef addresses one row.
type entityRef struct {
	t  *table
	id [16]byte
}

// prefs are the Prefer header values of spec 2.2.
type prefs struct {
	returnRepresentation bool
	annotations          []string // include-annotations patterns; nil = none
	maxPageSize          int
	continueOnError      bool
	trackChanges         bool
}

// parsePrefer reads every Prefer header; values are comma-separated, and quoted values may hold commas.
func parsePrefer(h http.Header) prefs {
	var p prefs
	for _, line := range h.Values("Prefer") {
		for _, item := range splitOutsideQuotes(line, ',') {
			item = strings.TrimSpace(item)
			k, v, _ := strings.Cut(item, "=")
			k = strings.ToLower(strings.TrimSpace(k))
			v = strings.Trim(strings.TrimSpace(v), `"`)
			switch k {
			case "return":
				p.returnRepresentation = v == "representation"
			case "odata.include-annotations":
				for _, a := range strings.Split(v, ",") {
					if a = strings.TrimSpace(a); a != "" {
						p.annotations = append(p.annotations, a)
					}
				}
			case "odata.maxpagesize":
				if n, err := strconv.Atoi(v); err == nil && n > 0 {
					p.maxPageSize = n
				}
			case "odata.continue-on-error":
				p.continueOnError = v == "" || v == "true"
			case "odata.track-changes":
				p.trackChanges = true
			}
		}
	}
	return p
}

func splitOutsideQuotes(s string, sep byte) []string {
	var out []string
	quoted, start := false, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			quoted = !quoted
		case sep:
			if !quoted {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

// wantAnnotation reports whether an annotation term was requested (patterns may end in *; a leading -
// excludes).
func (p *prefs) wantAnnotation(term string) bool {
	want := false
	for _, pat := range p.annotations {
		neg := strings.HasPrefix(pat, "-")
		pat = strings.TrimPrefix(pat, "-")
		match := pat == "*" || pat == term || (strings.HasSuffix(pat, "*") && strings.HasPrefix(term, strings.TrimSuffix(pat, "*")))
		if match {
			if neg {
				return false
			}
			want = true
		}
	}
	return want
}

func (p *prefs) anyAnnotations() bool { return len(p.annotations) > 0 }

func (e *Emulator) baseURL() string { return e.cfg.EnvironmentURL + "/api/data/v9.2/" }

// randomTraceID makes request and trace ids; they identify requests in logs and need no secrecy.
func randomTraceID() [16]byte {
	var g [16]byte
	binary.LittleEndian.PutUint64(g[:8], mrand.Uint64()) //nolint:gosec // G404: request ids, not secrets
	binary.LittleEndian.PutUint64(g[8:], mrand.Uint64()) //nolint:gosec // G404: as above
	g[6] = g[6]&0x0f | 0x40
	g[8] = g[8]&0x3f | 0x80
	return g
}

// cutVersion strips /api/data/v9.N/ (any 9.x minor version is served, spec 2.1).
func cutVersion(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/api/data/v9.")
	if !ok || rest == "" || rest[0] < '0' || rest[0] > '9' {
		return "", false
	}
	i := strings.IndexByte(rest, '/')
	if i < 0 {
		return "", true
	}
	return rest[i+1:], true
}

// serveAPI is the environment host: authentication, service protection, then the operation.
func (e *Emulator) serveAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	reqID := guidString(randomTraceID())
	lim := e.prot.currentLimits()
	h.Set("OData-Version", "4.0")
	h.Set("REQ_ID", reqID)
	h.Set("x-ms-service-request-id", reqID)
	h.Set("x-ms-dop-hint", strconv.Itoa(lim.DOPHint))
	rest, ok := cutVersion(r.URL.Path)
	if !ok {
		writeResponse(w, errorResponse(errSegment(strings.TrimPrefix(r.URL.Path, "/")), false))
		return
	}
	user, aerr := e.authenticate(r)
	if aerr != nil {
		e.count.add(cUnauthorized, 1)
		h.Set("WWW-Authenticate", e.challenge())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	early, thr := e.prot.admit(user)
	if early {
		e.count.add(cEarlyRetries, 1)
	}
	if thr != nil {
		e.count.add(cThrottled, 1)
		remReq, remTime := e.prot.remaining(user)
		h.Set("x-ms-ratelimit-burst-remaining-xrm-requests", strconv.Itoa(remReq))
		h.Set("x-ms-ratelimit-time-remaining-xrm-requests", formatRemainingTime(remTime))
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, maxBody))
		writeResponse(w, errorResponse(thr, false))
		return
	}
	c := &opCtx{user: user, actor: user, prefs: parsePrefer(r.Header), hdr: r.Header, reqURL: e.cfg.EnvironmentURL + r.URL.RequestURI()}
	var resp response
	started := time.Now()
	body, err := readBody(http.MaxBytesReader(w, r.Body, maxBody), r.ContentLength)
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		resp = errorResponse(newError(http.StatusRequestEntityTooLarge, codeODataParse, "The request body exceeds the limit of %d bytes.", maxBody), false)
	case err != nil:
		resp = errorResponse(errBadRequest("The request body could not be read: %v", err), false)
	default:
		if v := r.Header.Get("OData-MaxVersion"); v != "" && !strings.HasPrefix(v, "4.") {
			resp = errorResponse(errBadRequest("The MaxDataServiceVersion '%s' is too low for the response. The lowest supported version is '4.0'.", v), false)
			break
		}
		if aerr := e.impersonate(c, r.Header); aerr != nil {
			resp = errorResponse(aerr, false)
			break
		}
		resp = e.serveOp(c, r.Method, rest, r.URL.RawQuery, r.Header, body)
	}
	if e.log.Enabled(r.Context(), slog.LevelDebug) {
		e.log.LogAttrs(r.Context(), slog.LevelDebug, "dataverse request", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.Int("status", resp.status), slog.Duration("took", time.Since(started)))
	}
	if c.cost == 0 {
		c.cost = time.Duration(lim.Costs.Unexpected)
	}
	remReq, remTime := e.prot.done(user, c.cost)
	h.Set("x-ms-ratelimit-burst-remaining-xrm-requests", strconv.Itoa(remReq))
	h.Set("x-ms-ratelimit-time-remaining-xrm-requests", formatRemainingTime(remTime))
	writeResponse(w, resp)
}

func writeResponse(w http.ResponseWriter, resp response) {
	h := w.Header()
	for k, v := range resp.header {
		h[k] = v
	}
	if resp.body != nil {
		h.Set("Content-Length", strconv.Itoa(len(resp.body)))
	}
	w.WriteHeader(resp.status)
	if resp.body != nil {
		_, _ = w.Write(resp.body)
	}
}

// writeFaultError writes an injected failure in the Web API's error shape.
func (e *Emulator) writeFaultError(w http.ResponseWriter, r *http.Request, status int) {
	w.Header().Set("OData-Version", "4.0")
	w.Header().Set("x-ms-dop-hint", strconv.Itoa(e.prot.currentLimits().DOPHint))
	ae := newError(status, codeUnexpected, "An unexpected error occurred.")
	if status == http.StatusTooManyRequests {
		ae = throttleError(codeRequestLimit, e.prot.currentLimits(), 0)
	}
	writeResponse(w, errorResponse(ae, false))
}

// segment is one path segment: a name and an optional parenthesized key or argument list.
type segment struct {
	name   string
	key    string
	hasKey bool
}

// splitSegments splits a resource path on '/', except inside parentheses or quotes (alternate-key values).
func splitSegments(path string) ([]segment, *apiError) {
	if path == "" {
		return nil, nil
	}
	var segs []segment
	depth, quoted, start := 0, false, 0
	flush := func(s string) *apiError {
		seg := segment{name: s}
		if i := strings.IndexByte(s, '('); i >= 0 {
			if !strings.HasSuffix(s, ")") {
				return errBadRequest("Bad Request - Error in query syntax: unbalanced parentheses in '%s'.", s)
			}
			seg = segment{name: s[:i], key: s[i+1 : len(s)-1], hasKey: true}
		}
		segs = append(segs, seg)
		return nil
	}
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '\'':
			quoted = !quoted
		case '(':
			if !quoted {
				depth++
			}
		case ')':
			if !quoted {
				depth--
			}
		case '/':
			if !quoted && depth == 0 {
				if err := flush(path[start:i]); err != nil {
					return nil, err
				}
				start = i + 1
			}
		}
	}
	if start < len(path) {
		if err := flush(path[start:]); err != nil {
			return nil, err
		}
	}
	return segs, nil
}

// serveOp routes one operation (spec 2.1 resources). It is used for top-level requests and $batch parts.
func (e *Emulator) serveOp(c *opCtx, method, path, rawQuery string, hdr http.Header, body []byte) response {
	lim := e.prot.currentLimits()
	segs, aerr := splitSegments(path)
	if aerr != nil {
		return e.fail(c, aerr)
	}
	if len(segs) == 0 {
		c.cost += time.Duration(lim.Costs.Metadata)
		e.tally(c, cMetadata, 1)
		return e.serviceDocument()
	}
	first := segs[0]
	switch {
	case first.name == "$metadata":
		c.cost += time.Duration(lim.Costs.Metadata)
		e.tally(c, cMetadata, 1)
		return e.fail(c, newError(http.StatusNotImplemented, codeUnexpected, "The sandbox serves JSON resources only; $metadata (CSDL) is not emulated."))
	case first.name == "$batch":
		if c.inBatch {
			return e.fail(c, errBadRequest("Nested batch requests are not supported."))
		}
		if method != http.MethodPost {
			return e.fail(c, errMethod(method))
		}
		return e.serveBatch(c, hdr, body)
	case first.name == "WhoAmI" && len(segs) == 1 && (!first.hasKey || first.key == ""):
		if method != http.MethodGet {
			return e.fail(c, errMethod(method))
		}
		c.cost += time.Duration(lim.Costs.WhoAmI)
		e.tally(c, cWhoAmI, 1)
		return e.whoAmI(c)
	case first.name == "EntityDefinitions":
		c.cost += time.Duration(lim.Costs.Metadata)
		e.tally(c, cMetadata, 1)
		if method != http.MethodGet {
			return e.fail(c, errMethod(method))
		}
		e.mu.RLock()
		defer e.mu.RUnlock()
		return e.serveMetadata(c, segs, rawQuery)
	case strings.HasPrefix(first.name, "$") && c.refs != nil:
		ref, ok := c.refs[first.name]
		if !ok {
			return e.fail(c, errBadRequest("Content-ID Reference: '%s' does not exist in the batch context.", first.name))
		}
		segs[0] = segment{name: ref.t.Set, key: guidString(ref.id), hasKey: true}
		first = segs[0]
	}
	// Reset replaces the table objects; a request that raced with it works on the table it looked up.
	unlock := e.rlock(c)
	t := e.bySet[first.name]
	unlock()
	if t == nil {
		return e.fail(c, errSegment(first.name))
	}
	return e.serveEntitySet(c, t, method, segs, rawQuery, hdr, body)
}

// impersonate applies the MSCRMCallerID (systemuserid) and CallerObjectId (Entra object id) headers of
// spec 8.5: the operation then acts as that user, who is recorded as createdby/modifiedby while the caller
// goes into createdonbehalfby/modifiedonbehalfby. The caller needs prvActOnBehalfOfAnotherUser.
func (e *Emulator) impersonate(c *opCtx, h http.Header) *apiError {
	byID, byObject := h.Get("MSCRMCallerID"), h.Get("CallerObjectId")
	if byID == "" && byObject == "" {
		return nil
	}
	caller := principal{id: e.users[c.user].id, roles: e.users[c.user].roles}
	if !caller.has("prvActOnBehalfOfAnotherUser") {
		return newError(http.StatusForbidden, codePrivilegeDenied, "CannotActOnBehalfOfAnotherUser: the caller %s is missing prvActOnBehalfOfAnotherUser privilege.", guidString(caller.id))
	}
	for i, u := range e.users {
		if i == userSystem {
			continue
		}
		if (byID != "" && byID == guidString(u.id)) || (byObject != "" && byObject == guidString(u.aadID)) {
			c.actor = uint16(i) //nolint:gosec // G115: three users
			return nil
		}
	}
	if byID != "" {
		return newError(http.StatusNotFound, codeObjectDoesNotExist, "systemuser With Id = %s Does Not Exist", byID)
	}
	return newError(http.StatusNotFound, codeObjectDoesNotExist, "No systemuser has azureactivedirectoryobjectid %s.", byObject)
}

// fail renders an error for this operation.
func (e *Emulator) fail(c *opCtx, err *apiError) response {
	return errorResponse(err, c.prefs.anyAnnotations())
}

func (e *Emulator) serviceDocument() response {
	b := []byte(`{"@odata.context":`)
	b = jsonrow.AppendString(b, e.baseURL()+"$metadata")
	b = append(b, `,"value":[`...)
	for i, t := range e.tables {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = jsonrow.AppendString(b, t.Set)
		b = append(b, `,"kind":"EntitySet","url":`...)
		b = jsonrow.AppendString(b, t.Set)
		b = append(b, '}')
	}
	b = append(b, `,{"name":"EntityDefinitions","kind":"EntitySet","url":"EntityDefinitions"}]}`...)
	return jsonResponse(http.StatusOK, b)
}

// whoAmI answers spec 2.3.
func (e *Emulator) whoAmI(c *opCtx) response {
	b := []byte(`{"@odata.context":`)
	b = jsonrow.AppendString(b, e.baseURL()+"$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse")
	b = append(b, `,"BusinessUnitId":"`...)
	b = appendGUID(b, e.rootBU)
	b = append(b, `","UserId":"`...)
	b = appendGUID(b, e.users[c.actor].id)
	b = append(b, `","OrganizationId":"`...)
	b = appendGUID(b, e.orgID)
	b = append(b, `"}`...)
	return jsonResponse(http.StatusOK, b)
}

// parseKey reads a key segment of table t: a GUID, "<primary key>=<GUID>", or an alternate key (none is
// defined on the emulated tables, as on contact and account out of the box; spec 4.4).
func (e *Emulator) parseKey(t *table, key string) ([16]byte, *apiError) {
	k := strings.TrimPrefix(key, t.PrimaryID+"=")
	if id, ok := parseGUID(k); ok {
		return id, nil
	}
	if strings.Contains(key, "=") {
		return [16]byte{}, errBadRequest("The key '%s' is not a defined alternate key of entity '%s'; the emulated tables have no alternate keys.", key, t.Logical)
	}
	return [16]byte{}, errBadRequest("Bad Request - Error in query syntax: '%s' is not a valid key of entity '%s'.", key, t.Logical)
}

// parseEntityRef reads "/set(id)", "set(id)" or an absolute URL ending in set(id).
func (e *Emulator) parseEntityRef(ref string) (*table, [16]byte, *apiError) {
	s := ref
	if i := strings.Index(s, "/api/data/v9."); i >= 0 {
		s = s[i+len("/api/data/v9."):]
		if j := strings.IndexByte(s, '/'); j >= 0 {
			s = s[j+1:]
		}
	}
	s = strings.TrimPrefix(s, "/")
	open := strings.IndexByte(s, '(')
	if open <= 0 || !strings.HasSuffix(s, ")") {
		return nil, [16]byte{}, errBadRequest("The entity reference '%s' is not of the form /<entityset>(<id>).", ref)
	}
	t := e.bySet[s[:open]]
	if t == nil {
		return nil, [16]byte{}, errSegment(s[:open])
	}
	id, aerr := e.parseKey(t, s[open+1:len(s)-1])
	return t, id, aerr
}

// readBody reads a request body, into a buffer of the declared Content-Length when there is one (the server
// stops the body there), instead of growing one: bulk messages run to megabytes.
func readBody(body io.Reader, contentLength int64) ([]byte, error) {
	if contentLength <= 0 || contentLength > maxBody {
		return io.ReadAll(body)
	}
	b := make([]byte, contentLength)
	if _, err := io.ReadFull(body, b); err != nil {
		return nil, err
	}
	return b, nil
}
