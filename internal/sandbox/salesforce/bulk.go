package salesforce

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
)

// Bulk API 2.0 query jobs (spec 4). A job starts UploadComplete, moves to InProgress after half the
// configured delay and to JobComplete after the whole delay (on the sandbox clock, checked on every access
// and by a timer). Completion takes the result snapshot: the matching records as they are at that moment,
// which every results page reads, so paging is consistent however the org changes meanwhile.

const (
	jobUploadComplete = "UploadComplete"
	jobInProgress     = "InProgress"
	jobComplete       = "JobComplete"
	jobAborted        = "Aborted"
	jobFailed         = "Failed"
	dailyBulkJobsMax  = 10_000
	minBulkAPIVersion = 47.0
)

var columnDelimiters = map[string]byte{
	"BACKQUOTE": '`', "CARET": '^', "COMMA": ',', "PIPE": '|', "SEMICOLON": ';', "TAB": '\t',
}

type bulkJob struct {
	id, operation, object, createdBy string
	created, modstamp                time.Time // as reported: whole seconds
	// started is the instant the job was created, on the sandbox clock: its delay runs from there.
	started                     time.Time
	state                       string
	query                       *query
	columnDelimiter, lineEnding string
	apiVersion                  string
	rs                          *resultSet
	processing                  time.Duration
	timers                      []*time.Timer
}

func (j *bulkJob) terminal() bool {
	return j.state == jobComplete || j.state == jobAborted || j.state == jobFailed
}

type bulkStore struct {
	mu    sync.Mutex
	jobs  map[string]*bulkJob
	order []string // creation order, for listing
}

func newBulkStore() *bulkStore { return &bulkStore{jobs: map[string]*bulkJob{}} }

// reset forgets every job and stops their timers.
func (b *bulkStore) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, j := range b.jobs {
		for _, t := range j.timers {
			t.Stop()
		}
	}
	b.jobs, b.order = map[string]*bulkJob{}, nil
}

// jobInfo is the job-info JSON in the real key order (spec 4.2).
type jobInfo struct {
	ID                     string      `json:"id"`
	Operation              string      `json:"operation"`
	Object                 string      `json:"object"`
	CreatedByID            string      `json:"createdById"`
	CreatedDate            string      `json:"createdDate"`
	SystemModstamp         string      `json:"systemModstamp"`
	State                  string      `json:"state"`
	ConcurrencyMode        string      `json:"concurrencyMode"`
	ContentType            string      `json:"contentType"`
	APIVersion             json.Number `json:"apiVersion"`
	JobType                string      `json:"jobType,omitempty"`
	LineEnding             string      `json:"lineEnding"`
	ColumnDelimiter        string      `json:"columnDelimiter"`
	NumberRecordsProcessed *int        `json:"numberRecordsProcessed,omitempty"`
	Retries                *int        `json:"retries,omitempty"`
	TotalProcessingTime    *int64      `json:"totalProcessingTime,omitempty"`
	IsPkChunkingSupported  *bool       `json:"isPkChunkingSupported,omitempty"`
	ErrorMessage           string      `json:"errorMessage,omitempty"`
}

// info renders a job: full is the job-info GET shape, otherwise the create/list shape (withType adds
// jobType, as listings do).
func (j *bulkJob) info(full, withType bool) jobInfo {
	ji := jobInfo{
		ID: j.id, Operation: j.operation, Object: j.object, CreatedByID: j.createdBy,
		CreatedDate: j.created.UTC().Format(restDateTime), SystemModstamp: j.modstamp.UTC().Format(restDateTime),
		State: j.state, ConcurrencyMode: "Parallel", ContentType: "CSV", APIVersion: json.Number(j.apiVersion),
		LineEnding: j.lineEnding, ColumnDelimiter: j.columnDelimiter,
	}
	if withType || full {
		ji.JobType = "V2Query"
	}
	if full {
		n, retries, ms, pk := 0, 0, j.processing.Milliseconds(), true
		if j.rs != nil {
			n = len(j.rs.recs)
		}
		ji.NumberRecordsProcessed, ji.Retries, ji.TotalProcessingTime, ji.IsPkChunkingSupported = &n, &retries, &ms, &pk
		if j.state == jobFailed {
			ji.ErrorMessage = "The job failed"
		}
	}
	return ji
}

func (e *Emulator) routeBulk(c *call, rest []string) {
	if v, _ := strconv.ParseFloat(c.version, 64); v < minBulkAPIVersion {
		writeAPIError(c.w, errNotFound)
		return
	}
	m := c.r.Method
	if m == http.MethodHead {
		m = http.MethodGet
	}
	switch {
	case len(rest) == 0 && m == http.MethodPost:
		e.count("bulk.create_job")
		e.bulkCreate(c)
	case len(rest) == 0 && m == http.MethodGet:
		e.count("bulk.list_jobs")
		e.bulkList(c)
	case len(rest) == 0:
		writeAPIError(c.w, errMethodNotAllowed(m, "GET", "HEAD", "POST"))
	case len(rest) == 1 && m == http.MethodGet:
		e.count("bulk.get_job")
		e.bulkInfo(c, rest[0])
	case len(rest) == 1 && m == http.MethodPatch:
		e.count("bulk.abort_job")
		e.bulkAbort(c, rest[0])
	case len(rest) == 1 && m == http.MethodDelete:
		e.count("bulk.delete_job")
		e.bulkDelete(c, rest[0])
	case len(rest) == 1:
		writeAPIError(c.w, errMethodNotAllowed(m, "GET", "HEAD", "PATCH", "DELETE"))
	case len(rest) == 2 && rest[1] == "results" && m == http.MethodGet:
		e.count("bulk.results")
		e.bulkResults(c, rest[0])
	case len(rest) == 2 && rest[1] == "results":
		writeAPIError(c.w, errMethodNotAllowed(m, "GET", "HEAD"))
	default:
		writeAPIError(c.w, errNotFound)
	}
}

func invalidJob(format string, args ...any) *apiError {
	return errorf(http.StatusBadRequest, "INVALIDJOB", format, args...)
}

// bulkCreate serves POST /jobs/query.
func (e *Emulator) bulkCreate(c *call) {
	var req struct {
		Operation       string `json:"operation"`
		Query           string `json:"query"`
		ContentType     string `json:"contentType"`
		ColumnDelimiter string `json:"columnDelimiter"`
		LineEnding      string `json:"lineEnding"`
	}
	data, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(data, &req)
	}
	if err != nil {
		writeAPIError(c.w, jsonParserError(data, err))
		return
	}
	if req.ContentType == "" {
		req.ContentType = "CSV"
	}
	if req.ColumnDelimiter == "" {
		req.ColumnDelimiter = "COMMA"
	}
	if req.LineEnding == "" {
		req.LineEnding = "LF"
	}
	switch {
	case req.Operation != "query" && req.Operation != "queryAll":
		writeAPIError(c.w, invalidJob("Invalid operation: '%s'. Query jobs support the operations query and queryAll", req.Operation))
		return
	case req.ContentType != "CSV":
		writeAPIError(c.w, invalidJob("Invalid contentType: '%s'. Only CSV is supported", req.ContentType))
		return
	case columnDelimiters[req.ColumnDelimiter] == 0:
		writeAPIError(c.w, invalidJob("Invalid columnDelimiter: '%s'", req.ColumnDelimiter))
		return
	case req.LineEnding != "LF" && req.LineEnding != "CRLF":
		writeAPIError(c.w, invalidJob("Invalid lineEnding: '%s'", req.LineEnding))
		return
	case strings.TrimSpace(req.Query) == "":
		writeAPIError(c.w, invalidJob("query is required"))
		return
	}
	q, aerr := parseSOQL(e.store, req.Query, e.clock.Now())
	if aerr != nil {
		writeAPIError(c.w, aerr)
		return
	}
	if q.bulkUnsupported != "" {
		writeAPIError(c.w, invalidJob("Bulk API 2.0 query jobs do not support %s", q.bulkUnsupported))
		return
	}
	if !e.bulkJobs24h.tryAdd(1, dailyBulkJobsMax) {
		writeAPIError(c.w, errorf(http.StatusBadRequest, "LIMIT_EXCEEDED",
			"Max bulk v2 query jobs (%d) per 24 hrs has been reached (%d)", dailyBulkJobsMax, dailyBulkJobsMax+1))
		return
	}
	started := e.clock.Now()
	now := started.UTC().Truncate(time.Second)
	j := &bulkJob{
		id: e.ids.New(prefixJob), operation: req.Operation, object: q.meta.obj.Name, createdBy: c.sess.user,
		created: now, modstamp: now, started: started, state: jobUploadComplete, query: q,
		columnDelimiter: req.ColumnDelimiter, lineEnding: req.LineEnding, apiVersion: c.version,
	}
	delay := e.currentSettings().BulkDelay
	e.bulk.mu.Lock()
	e.bulk.jobs[j.id] = j
	e.bulk.order = append(e.bulk.order, j.id)
	info := j.info(false, false)
	for _, d := range []time.Duration{delay / 2, delay} {
		j.timers = append(j.timers, time.AfterFunc(d, func() { e.advanceJob(j.id) }))
	}
	e.bulk.mu.Unlock()
	writeJSONValue(c.w, http.StatusOK, info)
}

// advanceJob moves a job along its state machine.
func (e *Emulator) advanceJob(id string) {
	e.bulk.mu.Lock()
	defer e.bulk.mu.Unlock()
	if j, ok := e.bulk.jobs[id]; ok {
		e.advanceLocked(j)
	}
}

func (e *Emulator) advanceLocked(j *bulkJob) {
	if j.terminal() {
		return
	}
	now := e.clock.Now()
	delay := e.currentSettings().BulkDelay
	elapsed := now.Sub(j.started)
	switch {
	case elapsed >= delay:
		start := time.Now()
		j.rs = e.store.execute(j.query, j.operation == "queryAll")
		j.processing = time.Since(start) + delay
		j.state, j.modstamp = jobComplete, now.UTC().Truncate(time.Second)
	case elapsed >= delay/2 && j.state == jobUploadComplete:
		j.state, j.modstamp = jobInProgress, now.UTC().Truncate(time.Second)
	}
}

// job returns a job by Id (15 or 18 characters) after advancing it, or writes 404.
func (e *Emulator) job(c *call, rawID string) (*bulkJob, bool) {
	id, ok := normalizeID(rawID, prefixJob)
	e.bulk.mu.Lock()
	j, found := e.bulk.jobs[id]
	if found {
		e.advanceLocked(j)
	}
	e.bulk.mu.Unlock()
	if !ok || !found {
		writeAPIError(c.w, errorf(http.StatusNotFound, "NOT_FOUND", "Job with id %s not found", rawID))
		return nil, false
	}
	return j, true
}

func (e *Emulator) bulkInfo(c *call, rawID string) {
	j, ok := e.job(c, rawID)
	if !ok {
		return
	}
	e.bulk.mu.Lock()
	info := j.info(true, true)
	e.bulk.mu.Unlock()
	writeJSONValue(c.w, http.StatusOK, info)
}

// bulkList serves GET /jobs/query: every job, oldest first, in one page.
func (e *Emulator) bulkList(c *call) {
	if jt := c.r.URL.Query().Get("jobType"); jt != "" && jt != "V2Query" {
		writeJSONValue(c.w, http.StatusOK, map[string]any{"done": true, "records": []any{}, "nextRecordsUrl": nil})
		return
	}
	e.bulk.mu.Lock()
	records := make([]jobInfo, 0, len(e.bulk.order))
	for _, id := range e.bulk.order {
		j := e.bulk.jobs[id]
		e.advanceLocked(j)
		records = append(records, j.info(false, true))
	}
	e.bulk.mu.Unlock()
	writeJSONValue(c.w, http.StatusOK, map[string]any{"done": true, "records": records, "nextRecordsUrl": nil})
}

// bulkAbort serves PATCH /jobs/query/{id} with {"state":"Aborted"}.
func (e *Emulator) bulkAbort(c *call, rawID string) {
	j, ok := e.job(c, rawID)
	if !ok {
		return
	}
	var req struct {
		State string `json:"state"`
	}
	data, err := io.ReadAll(http.MaxBytesReader(c.w, c.r.Body, 1<<16))
	if err == nil {
		err = json.Unmarshal(data, &req)
	}
	if err != nil {
		writeAPIError(c.w, jsonParserError(data, err))
		return
	}
	if req.State != jobAborted {
		writeAPIError(c.w, invalidJob("Invalid state: '%s'. A query job can only be set to Aborted", req.State))
		return
	}
	e.bulk.mu.Lock()
	defer e.bulk.mu.Unlock()
	if j.terminal() {
		writeAPIError(c.w, errorf(http.StatusBadRequest, "INVALIDJOBSTATE", "Cannot abort a job in state %s", j.state))
		return
	}
	for _, t := range j.timers {
		t.Stop()
	}
	j.state, j.modstamp = jobAborted, e.clock.Now().UTC().Truncate(time.Second)
	writeJSONValue(c.w, http.StatusOK, j.info(false, false))
}

// bulkDelete serves DELETE /jobs/query/{id}; a job still running cannot be deleted.
func (e *Emulator) bulkDelete(c *call, rawID string) {
	j, ok := e.job(c, rawID)
	if !ok {
		return
	}
	e.bulk.mu.Lock()
	defer e.bulk.mu.Unlock()
	if j.state == jobInProgress {
		writeAPIError(c.w, errorf(http.StatusBadRequest, "INVALIDJOBSTATE", "Cannot delete a job in state InProgress"))
		return
	}
	for _, t := range j.timers {
		t.Stop()
	}
	delete(e.bulk.jobs, j.id)
	e.bulk.order = slices.DeleteFunc(e.bulk.order, func(id string) bool { return id == j.id })
	c.w.WriteHeader(http.StatusNoContent)
}

// bulkResults serves GET /jobs/query/{id}/results[?locator=&maxRecords=]: one CSV page of the snapshot,
// streamed row by row (a million-row page is never held in memory), with Sforce-NumberOfRecords and
// Sforce-Locator (the literal "null" on the last page).
func (e *Emulator) bulkResults(c *call, rawID string) {
	j, ok := e.job(c, rawID)
	if !ok {
		return
	}
	e.bulk.mu.Lock()
	state, rs, ver := j.state, j.rs, j.apiVersion
	e.bulk.mu.Unlock()
	if state != jobComplete {
		writeAPIError(c.w, errorf(http.StatusPreconditionFailed, "JOB_NOT_COMPLETE",
			"can only download query results of successfully completed bulk job (job %s is %s)", j.id, state))
		return
	}
	if ver != c.version {
		writeAPIError(c.w, errorf(http.StatusConflict, "INVALIDJOB",
			"The job was created with API version %s; request its results with the same version", ver))
		return
	}
	q := c.r.URL.Query()
	offset := 0
	if loc := q.Get("locator"); loc != "" && loc != "null" {
		b, err := base64.RawStdEncoding.DecodeString(loc)
		n, cerr := strconv.Atoi(string(b))
		if err != nil || cerr != nil || n < 0 || n > len(rs.recs) {
			writeAPIError(c.w, errorf(http.StatusBadRequest, "INVALIDLOCATOR", "Invalid locator: %s", loc))
			return
		}
		offset = n
	}
	pageSize := e.currentSettings().BulkPageSize
	if mr := q.Get("maxRecords"); mr != "" {
		n, err := strconv.Atoi(mr)
		if err != nil || n <= 0 {
			writeAPIError(c.w, invalidJob("maxRecords must be a positive integer: %s", mr))
			return
		}
		pageSize = n
	}
	end := min(offset+pageSize, len(rs.recs))
	next := "null"
	if end < len(rs.recs) {
		next = base64.RawStdEncoding.EncodeToString([]byte(strconv.Itoa(end)))
	}
	h := c.w.Header()
	h.Set("Content-Type", "text/csv")
	h.Set("Sforce-NumberOfRecords", strconv.Itoa(end-offset))
	h.Set("Sforce-Locator", next)
	var out io.Writer = c.w
	var gz *gzip.Writer
	if strings.Contains(c.r.Header.Get("Accept-Encoding"), "gzip") {
		h.Set("Content-Encoding", "gzip")
		h.Set("Vary", "Accept-Encoding")
		gz = gzip.NewWriter(c.w)
		out = gz
	}
	c.w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(out, 64<<10)
	writeCSVPage(bw, rs, offset, end, columnDelimiters[j.columnDelimiter], j.lineEnding)
	if err := bw.Flush(); err != nil {
		e.logger.Debug("writing bulk results", "job", j.id, "error", err)
		return
	}
	if gz != nil {
		_ = gz.Close()
	}
}

// writeCSVPage writes the header (field names in SELECT order, parents as Account.Name) and rows
// [from, to) of rs: every value quoted, quotes doubled, nulls empty.
func writeCSVPage(w *bufio.Writer, rs *resultSet, from, to int, delim byte, lineEnding string) {
	eol := "\n"
	if lineEnding == "CRLF" {
		eol = "\r\n"
	}
	fields := rs.q.fields
	for k, ref := range fields {
		if k > 0 {
			_ = w.WriteByte(delim)
		}
		writeCSVValue(w, ref.name)
	}
	_, _ = w.WriteString(eol)
	for i := from; i < to; i++ {
		for k, ref := range fields {
			if k > 0 {
				_ = w.WriteByte(delim)
			}
			writeCSVValue(w, csvValue(ref.field, rs.value(ref, i)))
		}
		_, _ = w.WriteString(eol)
	}
}

func writeCSVValue(w *bufio.Writer, s string) {
	_ = w.WriteByte('"')
	for {
		i := strings.IndexByte(s, '"')
		if i < 0 {
			break
		}
		_, _ = w.WriteString(s[:i+1])
		_ = w.WriteByte('"')
		s = s[i+1:]
	}
	_, _ = w.WriteString(s)
	_ = w.WriteByte('"')
}
