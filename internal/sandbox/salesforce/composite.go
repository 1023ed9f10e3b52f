package salesforce

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// Composite resources (REST API): /composite runs up to 25 subrequests in order, later ones referring to
// earlier results as @{referenceId.field}; with allOrNone a failing subrequest rolls the whole request back.
// /composite/batch runs up to 25 independent subrequests. Both count as one API call, and their
// subrequests go through the same handlers as direct calls.

const compositeLimit = 25

// recorder captures a subrequest's answer.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

// subrequest runs method url (a /services/data/vXX.X/ path, or for batches a path relative to
// /services/data/) with a JSON body as the session of c, inside batch when not nil.
func (e *Emulator) subrequest(c *call, method, url string, body []byte, batch *txBatch) *recorder {
	rec := &recorder{header: http.Header{}}
	path := url
	if !strings.HasPrefix(path, "/services/data/") {
		path = "/services/data/" + strings.TrimPrefix(path, "/")
	}
	req, err := http.NewRequestWithContext(c.r.Context(), method, "http://"+c.r.Host+path, bytes.NewReader(body))
	if err != nil {
		writeAPIError(rec, errorf(http.StatusBadRequest, "INVALID_URL", "The subrequest URL %s is not valid: %v", url, err))
		return rec
	}
	req.Header.Set("Content-Type", "application/json")
	if v := c.r.Header.Get("Sforce-Call-Options"); v != "" {
		req.Header.Set("Sforce-Call-Options", v)
	}
	segs := strings.Split(strings.Trim(strings.TrimPrefix(req.URL.Path, "/services/data"), "/"), "/")
	m := versionSegment.FindStringSubmatch(segs[0])
	if m == nil || e.versionState(m[1]+"."+m[2]) != versionServed {
		writeAPIError(rec, errNotFound)
		return rec
	}
	if len(segs) > 1 && (segs[1] == "composite" && (len(segs) == 2 || segs[2] == "batch")) {
		writeAPIError(rec, errorf(http.StatusBadRequest, "INVALID_URL", "A composite request cannot hold another composite or batch request"))
		return rec
	}
	e.routeData(&call{w: rec, r: req, version: m[1] + "." + m[2], sess: c.sess, rest: segs[1:], batch: batch})
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec
}

type compositeSubrequest struct {
	Method      string            `json:"method"`
	URL         string            `json:"url"`
	ReferenceID string            `json:"referenceId"`
	Body        json.RawMessage   `json:"body,omitempty"`
	HTTPHeaders map[string]string `json:"httpHeaders,omitempty"`
}

type compositeSubresponse struct {
	Body           json.RawMessage   `json:"body"`
	HTTPHeaders    map[string]string `json:"httpHeaders"`
	HTTPStatusCode int               `json:"httpStatusCode"`
	ReferenceID    string            `json:"referenceId"`
}

var (
	referenceIDPattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	referencePattern   = regexp.MustCompile(`@\{([A-Za-z][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_]+|\[[0-9]+\])*)\}`)
)

// handleComposite serves POST /composite.
func (e *Emulator) handleComposite(c *call) {
	var req struct {
		AllOrNone          bool                  `json:"allOrNone"`
		CollateSubrequests bool                  `json:"collateSubrequests"`
		CompositeRequest   []compositeSubrequest `json:"compositeRequest"`
	}
	data, aerr := readBody(c)
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	if err := json.Unmarshal(data, &req); err != nil {
		writeAPIError(c.w, jsonParserError(data, err))
		return
	}
	subs := req.CompositeRequest
	switch {
	case len(subs) == 0:
		writeAPIError(c.w, errorf(http.StatusBadRequest, "INVALID_BATCH_REQUEST", "compositeRequest must hold at least one subrequest"))
		return
	case len(subs) > compositeLimit:
		writeAPIError(c.w, errorf(http.StatusBadRequest, "INVALID_BATCH_REQUEST", "Composite request can hold at most %d subrequests", compositeLimit))
		return
	}
	seen := map[string]bool{}
	for _, s := range subs {
		if !referenceIDPattern.MatchString(s.ReferenceID) || seen[s.ReferenceID] {
			writeAPIError(c.w, errorf(http.StatusBadRequest, "INVALID_BATCH_REQUEST", "referenceId %q must be unique and start with a letter, then letters, digits or underscores", s.ReferenceID))
			return
		}
		seen[s.ReferenceID] = true
	}
	var batch *txBatch
	if req.AllOrNone {
		batch = e.store.beginBatch()
	}
	results := map[string]any{} // referenceId → decoded body of successful subrequests
	out := make([]compositeSubresponse, len(subs))
	failed := -1
	for i, s := range subs {
		out[i].ReferenceID = s.ReferenceID
		if failed >= 0 && req.AllOrNone {
			continue // answered below
		}
		url, problem := resolveReferences(s.URL, results, true)
		var body []byte
		if problem == "" && len(s.Body) > 0 {
			var b string
			b, problem = resolveReferences(string(s.Body), results, false)
			body = []byte(b)
		}
		if problem != "" {
			out[i].HTTPStatusCode, out[i].Body = http.StatusBadRequest, errorJSON("PROCESSING_HALTED", problem)
			out[i].HTTPHeaders = map[string]string{}
			if failed < 0 {
				failed = i
			}
			continue
		}
		rec := e.subrequest(c, strings.ToUpper(s.Method), url, body, batch)
		out[i].HTTPStatusCode, out[i].HTTPHeaders = rec.status, map[string]string{}
		if loc := rec.header.Get("Location"); loc != "" {
			out[i].HTTPHeaders["Location"] = loc
		}
		out[i].Body = json.RawMessage("null")
		if rec.body.Len() > 0 {
			out[i].Body = json.RawMessage(bytes.Clone(rec.body.Bytes()))
		}
		if rec.status >= 400 {
			if failed < 0 {
				failed = i
			}
			continue
		}
		var decoded any
		if json.Unmarshal(out[i].Body, &decoded) == nil {
			results[s.ReferenceID] = decoded
		}
	}
	if batch != nil {
		e.store.endBatch(batch, failed < 0)
		if failed >= 0 {
			for i := range out {
				if i != failed {
					out[i].HTTPStatusCode, out[i].HTTPHeaders = http.StatusBadRequest, map[string]string{}
					out[i].Body = errorJSON("PROCESSING_HALTED", "The transaction was rolled back since another operation in the same transaction failed.")
				}
			}
		}
	}
	writeJSONValue(c.w, http.StatusOK, map[string]any{"compositeResponse": out})
}

func errorJSON(code, msg string) json.RawMessage {
	b, _ := json.Marshal([]restErrorBody{{Message: msg, ErrorCode: code}})
	return b
}

// resolveReferences replaces @{ref.path} with values from earlier results: in a URL as plain text, in a body
// as the JSON value's text inside a string. It returns Salesforce's message for a reference that resolves to
// nothing, or "".
func resolveReferences(s string, results map[string]any, inURL bool) (string, string) {
	var failure string
	out := referencePattern.ReplaceAllStringFunc(s, func(m string) string {
		parts := referencePattern.FindStringSubmatch(m)
		v, ok := results[parts[1]]
		if !ok {
			failure = fmt.Sprintf("Invalid reference specified. No value for %s found in %s. Provided referenceId ('%s') does not match any previous referenceIds", strings.TrimPrefix(parts[2], "."), parts[1], parts[1])
			return m
		}
		path := parts[2]
		for path != "" {
			if strings.HasPrefix(path, "[") {
				end := strings.IndexByte(path, ']')
				n, _ := strconv.Atoi(path[1:end])
				arr, isArr := v.([]any)
				if !isArr || n >= len(arr) {
					failure = fmt.Sprintf("Invalid reference specified. No value for %s found in %s", parts[2], parts[1])
					return m
				}
				v, path = arr[n], path[end+1:]
				continue
			}
			path = path[1:]
			key := path
			if i := strings.IndexAny(path, ".["); i >= 0 {
				key, path = path[:i], path[i:]
			} else {
				path = ""
			}
			obj, isObj := v.(map[string]any)
			if !isObj {
				failure = fmt.Sprintf("Invalid reference specified. No value for %s found in %s", parts[2], parts[1])
				return m
			}
			v = obj[key]
		}
		switch x := v.(type) {
		case string:
			if inURL {
				return x
			}
			b, _ := json.Marshal(x)
			return string(b[1 : len(b)-1])
		case nil:
			return ""
		default:
			b, _ := json.Marshal(x)
			return string(b)
		}
	})
	return out, failure
}

// handleCompositeBatch serves POST /composite/batch: independent subrequests, haltOnError stopping the rest.
func (e *Emulator) handleCompositeBatch(c *call) {
	var req struct {
		HaltOnError   bool `json:"haltOnError"`
		BatchRequests []struct {
			Method    string          `json:"method"`
			URL       string          `json:"url"`
			RichInput json.RawMessage `json:"richInput,omitempty"`
		} `json:"batchRequests"`
	}
	data, aerr := readBody(c)
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	if err := json.Unmarshal(data, &req); err != nil {
		writeAPIError(c.w, jsonParserError(data, err))
		return
	}
	if len(req.BatchRequests) == 0 || len(req.BatchRequests) > compositeLimit {
		writeAPIError(c.w, errorf(http.StatusBadRequest, "INVALID_BATCH_REQUEST", "batchRequests must hold 1 to %d subrequests", compositeLimit))
		return
	}
	type result struct {
		StatusCode int             `json:"statusCode"`
		Result     json.RawMessage `json:"result"`
	}
	out := make([]result, len(req.BatchRequests))
	hasErrors, halted := false, false
	for i, s := range req.BatchRequests {
		if halted {
			out[i] = result{StatusCode: http.StatusPreconditionFailed, Result: errorJSON("BATCH_PROCESSING_HALTED", "Batch processing halted per request")}
			continue
		}
		rec := e.subrequest(c, strings.ToUpper(s.Method), s.URL, s.RichInput, nil)
		out[i] = result{StatusCode: rec.status, Result: json.RawMessage("null")}
		if rec.body.Len() > 0 {
			out[i].Result = json.RawMessage(bytes.Clone(rec.body.Bytes()))
		}
		if rec.status >= 400 {
			hasErrors = true
			halted = req.HaltOnError
		}
	}
	writeJSONValue(c.w, http.StatusOK, map[string]any{"hasErrors": hasErrors, "results": out})
}

// readBody reads a request body of at most 10 MiB.
func readBody(c *call) ([]byte, *apiError) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(http.MaxBytesReader(c.w, c.r.Body, 10<<20)); err != nil {
		return nil, errorf(http.StatusRequestEntityTooLarge, "JSON_PARSER_ERROR", "request body too large or unreadable: %v", err)
	}
	return buf.Bytes(), nil
}
