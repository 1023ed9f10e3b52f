package salesforce

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// BulkJob is a Bulk API 2.0 query job's info.
type BulkJob struct {
	ID                     string  `json:"id"`
	Operation              string  `json:"operation"`
	Object                 string  `json:"object"`
	State                  string  `json:"state"`
	CreatedDate            string  `json:"createdDate"`
	APIVersion             float64 `json:"apiVersion"`
	NumberRecordsProcessed int64   `json:"numberRecordsProcessed"`
	ErrorMessage           string  `json:"errorMessage"`
}

// Bulk job states.
const (
	JobUploadComplete = "UploadComplete"
	JobInProgress     = "InProgress"
	JobComplete       = "JobComplete"
	JobFailed         = "Failed"
	JobAborted        = "Aborted"
)

// Created parses CreatedDate (server time).
func (j *BulkJob) Created() (time.Time, error) {
	return time.Parse("2006-01-02T15:04:05.000-0700", j.CreatedDate)
}

// CreateQueryJob starts a Bulk API 2.0 query (queryAll when all is true).
func (c *Client) CreateQueryJob(ctx context.Context, soql string, all bool) (*BulkJob, error) {
	op := "query"
	if all {
		op = "queryAll"
	}
	body, _ := json.Marshal(map[string]string{"operation": op, "query": soql, "contentType": "CSV", "columnDelimiter": "COMMA", "lineEnding": "LF"})
	resp, err := c.call(ctx, request{kind: "bulk.create_job", method: http.MethodPost, path: c.dataPath("/jobs/query"), body: body, ctype: "application/json"})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var job BulkJob
	if err := json.NewDecoder(resp.Body).Decode(&job); err != nil {
		return nil, fmt.Errorf("salesforce bulk: decoding the created job: %w", err)
	}
	return &job, nil
}

// QueryJob returns a job's current info.
func (c *Client) QueryJob(ctx context.Context, id string) (*BulkJob, error) {
	var job BulkJob
	if err := c.getJSON(ctx, "bulk.job_info", c.dataPath("/jobs/query/"+url.PathEscape(id)), nil, &job); err != nil {
		return nil, err
	}
	return &job, nil
}

// ErrJobFailed is wrapped by WaitQueryJob when a job ends Failed or Aborted.
var ErrJobFailed = errors.New("salesforce bulk query job did not complete")

// WaitQueryJob polls until the job reaches a terminal state (bulkPollWait between polls).
func (c *Client) WaitQueryJob(ctx context.Context, id string) (*BulkJob, error) {
	var waited time.Duration
	for {
		job, err := c.QueryJob(ctx, id)
		if err != nil {
			return nil, err
		}
		switch job.State {
		case JobComplete:
			return job, nil
		case JobFailed, JobAborted:
			return job, fmt.Errorf("%w: job %s is %s: %s", ErrJobFailed, id, job.State, job.ErrorMessage)
		}
		wait := bulkPollWait(waited)
		if err := c.sleep(ctx, wait); err != nil {
			return nil, err
		}
		waited += wait
	}
}

// bulkPollWait is how long to wait before the next poll of a job polled for waited so far: a quarter of
// that (at least 50 ms, at most 5 s), so a job is noticed at most a quarter of its running time after it
// completes, and a long job costs one call per 5 s. A load waits for its job before anything else can
// happen, so the wait is the load's; growing by half from 100 ms noticed a 300 ms job at 475 ms and a 10 s
// one up to 5 s late, for a saving of about a dozen API calls per job.
func bulkPollWait(waited time.Duration) time.Duration {
	return min(max(50*time.Millisecond, waited/4), 5*time.Second)
}

// AbortQueryJob aborts a running job.
func (c *Client) AbortQueryJob(ctx context.Context, id string) error {
	resp, err := c.call(ctx, request{kind: "bulk.abort", method: http.MethodPatch, path: c.dataPath("/jobs/query/" + url.PathEscape(id)),
		body: []byte(`{"state":"Aborted"}`), ctype: "application/json", idempotent: true})
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// DeleteQueryJob deletes a job and its results.
func (c *Client) DeleteQueryJob(ctx context.Context, id string) error {
	resp, err := c.call(ctx, request{kind: "bulk.delete", method: http.MethodDelete, path: c.dataPath("/jobs/query/" + url.PathEscape(id)), idempotent: true})
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// ResultPage is what QueryResults read from one page.
type ResultPage struct {
	Records int
	// Next is the locator of the following page; empty after the last page.
	Next string
}

// QueryResults streams one page of a completed job's CSV results (locator "" for the first page), calling
// fn per row with the values keyed by the header's field names; empty values are nil (Bulk CSV cannot tell
// null from empty, and Salesforce stores empty text as null). The row map is reused between calls: fn must
// copy what it keeps. maxRecords bounds the page (0 lets the server choose).
func (c *Client) QueryResults(ctx context.Context, jobID, locator string, maxRecords int, fn func(Record) error) (ResultPage, error) {
	return c.QueryResultRows(ctx, jobID, locator, maxRecords, recordsOf(fn))
}

// recordsOf hands each row to fn as a Record (one map, reused), an empty value as nil.
func recordsOf(fn func(Record) error) func(header, row []string) error {
	var rec Record
	return func(header, row []string) error {
		if rec == nil {
			rec = make(Record, len(header))
		}
		for i, h := range header {
			if row[i] == "" {
				rec[h] = nil
			} else {
				rec[h] = row[i]
			}
		}
		return fn(rec)
	}
}

// QueryResultRows is QueryResults with each row given as its values in the header's order (an empty value
// is null), without a map per row: the load's path. header and row are reused between calls.
func (c *Client) QueryResultRows(ctx context.Context, jobID, locator string, maxRecords int, fn func(header, row []string) error) (ResultPage, error) {
	q := url.Values{}
	if locator != "" {
		q.Set("locator", locator)
	}
	if maxRecords > 0 {
		q.Set("maxRecords", strconv.Itoa(maxRecords))
	}
	// Result pages are large and compress well, so they are asked for gzip-compressed (as net/http would do by
	// itself), and decompressed with klauspost/compress, about twice as fast as compress/gzip.
	resp, err := c.call(ctx, request{kind: "bulk.results", method: http.MethodGet, path: c.dataPath("/jobs/query/" + url.PathEscape(jobID) + "/results"),
		query: q, accept: "text/csv", header: http.Header{"Accept-Encoding": {"gzip"}}, idempotent: true})
	if err != nil {
		return ResultPage{}, err
	}
	defer resp.Body.Close()
	page := ResultPage{Next: resp.Header.Get("Sforce-Locator")}
	if page.Next == "null" {
		page.Next = ""
	}
	body, err := decoded(resp)
	if err != nil {
		return page, fmt.Errorf("salesforce bulk results of job %s: %w", jobID, err)
	}
	n, err := readCSV(body, fn)
	page.Records = n
	if err != nil {
		return page, fmt.Errorf("salesforce bulk results of job %s: %w", jobID, err)
	}
	if want := resp.Header.Get("Sforce-NumberOfRecords"); want != "" {
		if w, perr := strconv.Atoi(want); perr == nil && w != n {
			return page, fmt.Errorf("salesforce bulk results of job %s: page has %d rows but Sforce-NumberOfRecords says %d (truncated body?)", jobID, n, w)
		}
	}
	return page, nil
}

// readCSV reads a Bulk results page: a header row, then one row per record, each handed to fn with the
// header. Values keep their bytes exactly (csvReader).
func readCSV(r io.Reader, fn func(header, row []string) error) (int, error) {
	cr := newCSVReader(r)
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading the CSV header: %w", err)
	}
	header = append([]string(nil), header...)
	n := 0
	for {
		row, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("reading CSV row %d: %w", n+1, err)
		}
		if len(row) != len(header) {
			return n, fmt.Errorf("CSV row %d has %d values for %d columns", n+1, len(row), len(header))
		}
		n++
		if err := fn(header, row); err != nil {
			return n, err
		}
	}
}
