package dataverse

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// $batch (spec 4.8): a multipart/mixed body of operations and change sets, at most 1000 operations, run in
// order. A change set is atomic (one transaction under the write lock) and its parts need a Content-ID,
// which later parts of the same change set reference as $n in URLs and binds. Without
// Prefer: odata.continue-on-error the first failure stops the batch and the whole answer takes its status,
// holding only the failing part; with it the batch answers 200 with every part's own status.
// The whole payload is parsed before anything runs, so a malformed or oversized batch changes nothing.

const maxBatchOperations = 1000

type batchOp struct {
	method    string
	path      string // relative to the service root, or "$n..."
	rawQuery  string
	header    http.Header
	body      []byte
	contentID string
}

type batchItem struct {
	op        *batchOp   // a single operation, or
	changeSet []*batchOp // a change set
}

func errBatch(format string, args ...any) *apiError {
	return newError(http.StatusBadRequest, codeODataParse, format, args...)
}

// parseBatch reads the whole multipart payload.
func parseBatch(contentType string, body []byte) ([]batchItem, int, *apiError) {
	boundary, aerr := multipartBoundary(contentType)
	if aerr != nil {
		return nil, 0, aerr
	}
	mr := multipart.NewReader(bytes.NewReader(body), boundary)
	var items []batchItem
	ops := 0
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, 0, errBatch("The batch payload is malformed: %v. Every part must be delimited by '--%s' and the payload closed by '--%s--'.", err, boundary, boundary)
		}
		ct := part.Header.Get("Content-Type")
		media, _, _ := mime.ParseMediaType(ct)
		switch media {
		case "multipart/mixed":
			csBoundary, aerr := multipartBoundary(ct)
			if aerr != nil {
				return nil, 0, aerr
			}
			raw, err := io.ReadAll(part)
			if err != nil {
				return nil, 0, errBatch("The batch payload is malformed: %v.", err)
			}
			cr := multipart.NewReader(bytes.NewReader(raw), csBoundary)
			var cs []*batchOp
			for {
				p, err := cr.NextPart()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					return nil, 0, errBatch("The change set is malformed: %v. Its parts must be delimited by '--%s' and it must be closed by '--%s--'.", err, csBoundary, csBoundary)
				}
				op, aerr := parseOperation(p)
				if aerr != nil {
					return nil, 0, aerr
				}
				cs = append(cs, op)
			}
			if len(cs) == 0 && len(bytes.TrimSpace(raw)) > 0 {
				return nil, 0, errBatch("The change set boundary delimiter '--%s' was not found in the change set.", csBoundary)
			}
			ops += len(cs)
			items = append(items, batchItem{changeSet: cs})
		case "application/http":
			op, aerr := parseOperation(part)
			if aerr != nil {
				return nil, 0, aerr
			}
			ops++
			items = append(items, batchItem{op: op})
		default:
			return nil, 0, errBatch("The batch part has Content-Type '%s'; expected application/http or multipart/mixed.", ct)
		}
		if ops > maxBatchOperations {
			return nil, 0, errBatch("The number of requests in the batch exceeded the limit of %d.", maxBatchOperations)
		}
	}
	if len(items) == 0 && len(bytes.TrimSpace(body)) > 0 {
		return nil, 0, errBatch("The batch boundary delimiter '--%s' was not found in the batch payload.", boundary)
	}
	return items, ops, nil
}

// multipartBoundary reads the boundary of a multipart/mixed Content-Type (ODataLib's message when missing).
func multipartBoundary(contentType string) (string, *apiError) {
	media, params, err := mime.ParseMediaType(contentType)
	if err != nil || media != "multipart/mixed" {
		return "", errBatch("The content type '%s' is not a batch content type; a $batch request needs 'multipart/mixed; boundary=...'.", contentType)
	}
	b := params["boundary"]
	if b == "" || len(b) > 70 {
		return "", errBatch("The content type 'multipart/mixed' specifies a batch payload; however, the payload either does not include a batch boundary or includes more than one boundary. In OData, batch payload content types must specify exactly one batch boundary in the '; boundary=' parameter of the content type.")
	}
	return b, nil
}

// parseOperation reads one application/http part: a request line, headers, and the body.
func parseOperation(p *multipart.Part) (*batchOp, *apiError) {
	if media, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type")); media != "application/http" {
		return nil, errBatch("The batch part has Content-Type '%s'; expected application/http.", p.Header.Get("Content-Type"))
	}
	op := &batchOp{contentID: p.Header.Get("Content-ID")}
	br := bufio.NewReader(p)
	tp := textproto.NewReader(br)
	line, err := tp.ReadLine()
	for err == nil && strings.TrimSpace(line) == "" {
		line, err = tp.ReadLine()
	}
	if err != nil {
		return nil, errBatch("The batch operation has no request line: %v.", err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || !strings.HasPrefix(f[2], "HTTP/") {
		return nil, errBatch("The request line '%s' of a batch operation is not '<METHOD> <URL> HTTP/1.1'.", line)
	}
	op.method = f[0]
	hdr, err := tp.ReadMIMEHeader()
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, errBatch("The headers of the batch operation '%s' are malformed: %v.", line, err)
	}
	op.header = http.Header(hdr)
	rest, err := io.ReadAll(br)
	if err != nil {
		return nil, errBatch("The batch operation '%s' could not be read: %v.", line, err)
	}
	if cl := op.header.Get("Content-Length"); cl != "" {
		n, err := strconv.Atoi(cl)
		if err != nil || n < 0 || n > len(rest) {
			return nil, errBatch("The Content-Length %s of the batch operation '%s' does not match its body.", cl, line)
		}
		rest = rest[:n]
	}
	op.body = bytes.TrimRight(rest, "\r\n")
	target := f[1]
	if u, err := url.Parse(target); err == nil && u.IsAbs() {
		target = u.RequestURI()
	}
	target, op.rawQuery, _ = strings.Cut(target, "?")
	if strings.HasPrefix(target, "/api/data/") {
		path, ok := cutVersion(target)
		if !ok {
			return nil, errBatch("The URL '%s' of a batch operation is not under /api/data/v9.x/.", f[1])
		}
		target = path
	} else {
		target = strings.TrimPrefix(target, "/")
	}
	op.path = target
	return op, nil
}

// serveBatch runs a parsed batch and writes the multipart answer.
func (e *Emulator) serveBatch(c *opCtx, hdr http.Header, body []byte) response {
	e.count.add(cBatch, 1)
	c.cost += time.Duration(e.prot.currentLimits().Costs.BatchBase)
	items, nops, aerr := parseBatch(hdr.Get("Content-Type"), body)
	if aerr != nil {
		return e.fail(c, aerr)
	}
	e.count.add(cBatchOps, int64(nops))
	w := newBatchWriter("batchresponse_" + guidString(randomTraceID()))
	status := http.StatusOK
	for _, it := range items {
		if it.op != nil {
			child := e.childCtx(c, it.op, nil, nil)
			var resp response
			if it.op.method == http.MethodPost && strings.HasSuffix(it.op.path, "$batch") {
				resp = e.fail(child, errBatch("Nested batch requests are not supported."))
			} else {
				resp = e.serveOp(child, it.op.method, it.op.path, it.op.rawQuery, it.op.header, it.op.body)
			}
			c.cost += child.cost
			if resp.status >= 400 && !c.prefs.continueOnError {
				only := newBatchWriter(w.boundary)
				only.part(it.op.contentID, resp)
				return only.finish(resp.status)
			}
			w.part(it.op.contentID, resp)
			continue
		}
		resps, failed, failedID := e.runChangeSet(c, it.changeSet)
		if failed != nil {
			if !c.prefs.continueOnError {
				only := newBatchWriter(w.boundary)
				only.part(failedID, *failed)
				return only.finish(failed.status)
			}
			w.part(failedID, *failed)
			continue
		}
		w.changeSet("changesetresponse_"+guidString(randomTraceID()), it.changeSet, resps)
	}
	return w.finish(status)
}

// runChangeSet runs a change set atomically. On failure it returns the failing part's response and
// Content-ID, and every part of the change set is rolled back.
func (e *Emulator) runChangeSet(c *opCtx, ops []*batchOp) ([]response, *response, string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	tx := &txn{e: e}
	refs := map[string]entityRef{}
	resps := make([]response, 0, len(ops))
	for _, op := range ops {
		child := e.childCtx(c, op, tx, refs)
		var resp response
		switch {
		case op.contentID == "":
			resp = e.fail(child, errBatch("Content-ID header not present in a change set request (%s %s).", op.method, op.path))
		case op.method == http.MethodGet:
			resp = e.fail(child, errBatch("GET requests are not allowed inside a change set; put them outside the change set."))
		default:
			resp = e.serveOp(child, op.method, op.path, op.rawQuery, op.header, op.body)
		}
		c.cost += child.cost
		if resp.status >= 400 {
			tx.rollback()
			return nil, &resp, op.contentID
		}
		if resp.entity != nil {
			refs["$"+op.contentID] = *resp.entity
		}
		resps = append(resps, resp)
	}
	tx.commit()
	return resps, nil, ""
}

func (e *Emulator) childCtx(c *opCtx, op *batchOp, tx *txn, refs map[string]entityRef) *opCtx {
	reqURL := e.baseURL() + op.path
	if op.rawQuery != "" {
		reqURL += "?" + op.rawQuery
	}
	return &opCtx{user: c.user, actor: c.actor, prefs: parsePrefer(op.header), hdr: op.header, tx: tx, refs: refs, inBatch: true, reqURL: reqURL}
}

// batchWriter renders the multipart/mixed answer of spec 4.8.
type batchWriter struct {
	boundary string
	buf      bytes.Buffer
}

func newBatchWriter(boundary string) *batchWriter { return &batchWriter{boundary: boundary} }

func writeHTTPPart(buf *bytes.Buffer, boundary, contentID string, r response) {
	buf.WriteString("--" + boundary + "\r\n")
	buf.WriteString("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n")
	if contentID != "" {
		buf.WriteString("Content-ID: " + contentID + "\r\n")
	}
	buf.WriteString("\r\n")
	buf.WriteString("HTTP/1.1 " + strconv.Itoa(r.status) + " " + http.StatusText(r.status) + "\r\n")
	if r.get("Content-Type") == "" && len(r.body) > 0 {
		buf.WriteString("Content-Type: " + jsonContentType + "\r\n")
	}
	buf.WriteString("OData-Version: 4.0\r\n")
	if id := r.get("OData-EntityId"); id != "" {
		buf.WriteString("Location: " + id + "\r\n")
	}
	for _, k := range []string{"Content-Type", "OData-EntityId", "ETag", "Preference-Applied", "Retry-After"} {
		if v := r.get(k); v != "" {
			buf.WriteString(k + ": " + v + "\r\n")
		}
	}
	buf.WriteString("\r\n")
	buf.Write(r.body)
	buf.WriteString("\r\n")
}

func (w *batchWriter) part(contentID string, r response) {
	writeHTTPPart(&w.buf, w.boundary, contentID, r)
}

func (w *batchWriter) changeSet(boundary string, ops []*batchOp, resps []response) {
	w.buf.WriteString("--" + w.boundary + "\r\n")
	w.buf.WriteString("Content-Type: multipart/mixed; boundary=" + boundary + "\r\n\r\n")
	for i, r := range resps {
		writeHTTPPart(&w.buf, boundary, ops[i].contentID, r)
	}
	w.buf.WriteString("--" + boundary + "--\r\n")
}

func (w *batchWriter) finish(status int) response {
	w.buf.WriteString("--" + w.boundary + "--\r\n")
	r := response{status: status, body: w.buf.Bytes()}
	r.set("Content-Type", "multipart/mixed; boundary="+w.boundary)
	return r
}
