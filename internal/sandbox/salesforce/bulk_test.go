package salesforce

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

const jobsPath = "/services/data/v62.0/jobs/query"

func createJob(t *testing.T, o *testOrg, body string) map[string]any {
	t.Helper()
	resp, b := o.do(http.MethodPost, jobsPath, body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("create job: %d %s", resp.StatusCode, b)
	}
	var job map[string]any
	mustJSON(t, b, &job)
	return job
}

func jobState(t *testing.T, o *testOrg, id string) map[string]any {
	t.Helper()
	_, b := o.do(http.MethodGet, jobsPath+"/"+id, nil)
	var job map[string]any
	mustJSON(t, b, &job)
	return job
}

// Spec 4.2–4.5: UploadComplete → InProgress → JobComplete on the sandbox clock; results before completion
// are refused; job info has every key; results are CSV pages with Sforce-Locator (null on the last page),
// Sforce-NumberOfRecords and maxRecords.
func TestBulkJobProgressesAndPagesCSV(t *testing.T) {
	o := newTestOrg(t, 5, 2, func(c *Config) { c.BulkDelay = time.Hour })
	job := createJob(t, o, `{"operation":"query","query":"SELECT Id, LastName, Account.Name, CreatedDate FROM Contact"}`)
	createKeys := []string{"apiVersion", "columnDelimiter", "concurrencyMode", "contentType", "createdById", "createdDate",
		"id", "lineEnding", "object", "operation", "state", "systemModstamp"}
	if got := sortedKeys(job); !slices.Equal(got, createKeys) {
		t.Errorf("create response keys %v, want %v", got, createKeys)
	}
	id := job["id"].(string)
	if job["state"] != "UploadComplete" || job["apiVersion"] != 62.0 || job["object"] != "Contact" || !strings.HasPrefix(id, "750") {
		t.Errorf("created job = %v", job)
	}
	resp, body := o.do(http.MethodGet, jobsPath+"/"+id+"/results", nil)
	if e := restErr(t, body); resp.StatusCode != http.StatusPreconditionFailed || e.ErrorCode != "JOB_NOT_COMPLETE" {
		t.Errorf("results before completion: %d %s", resp.StatusCode, body)
	}
	o.clock.Advance(31 * time.Minute)
	if s := jobState(t, o, id)["state"]; s != "InProgress" {
		t.Errorf("state after half the delay = %v", s)
	}
	o.clock.Advance(30 * time.Minute)
	info := jobState(t, o, id)
	infoKeys := append(slices.Clone(createKeys), "isPkChunkingSupported", "jobType", "numberRecordsProcessed", "retries", "totalProcessingTime")
	slices.Sort(infoKeys)
	if got := sortedKeys(info); !slices.Equal(got, infoKeys) || info["state"] != "JobComplete" || info["numberRecordsProcessed"] != 5.0 || info["jobType"] != "V2Query" {
		t.Errorf("job info = %v", info)
	}

	var rows []string
	locator := ""
	for page := 0; page < 4; page++ {
		path := jobsPath + "/" + id + "/results?maxRecords=2"
		if locator != "" {
			path += "&locator=" + locator
		}
		resp, body := o.do(http.MethodGet, path, nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/csv" {
			t.Fatalf("page %d: %d %s", page, resp.StatusCode, body)
		}
		lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
		if lines[0] != `"Id","LastName","Account.Name","CreatedDate"` {
			t.Errorf("header = %s", lines[0])
		}
		want := []string{"2", "2", "1"}[page]
		if n := resp.Header.Get("Sforce-NumberOfRecords"); n != want || len(lines)-1 != int(want[0]-'0') {
			t.Errorf("page %d: Sforce-NumberOfRecords %s, %d rows", page, n, len(lines)-1)
		}
		rows = append(rows, lines[1:]...)
		locator = resp.Header.Get("Sforce-Locator")
		if locator == "null" {
			if page != 2 {
				t.Errorf("last page at %d", page)
			}
			break
		}
		if _, err := base64.RawStdEncoding.DecodeString(locator); err != nil || locator == "" {
			t.Errorf("locator %q is not opaque base64", locator)
		}
	}
	if len(rows) != 5 {
		t.Fatalf("paged %d rows, want 5", len(rows))
	}
	for _, r := range rows {
		f := strings.Split(r, ",")
		if len(f) != 4 || !strings.HasPrefix(f[0], `"003`) || !strings.HasSuffix(f[3], `.000Z"`) {
			t.Errorf("row %s: want 4 quoted values, an Id and a …000Z datetime", r)
		}
	}
}

// Spec 4.5: every value quoted, embedded quotes doubled, newlines kept; other delimiters and CRLF; nulls
// empty; results are the snapshot taken at completion; gzip on request.
func TestBulkCSVFormatAndSnapshot(t *testing.T) {
	o := newTestOrg(t, 0, 0, func(c *Config) { c.BulkDelay = 0 })
	_, b := o.do(http.MethodPost, "/services/data/v62.0/sobjects/Contact", `{"LastName":"O\"Hara","Description":"line 1\nline \"2\""}`)
	var cr map[string]any
	mustJSON(t, b, &cr)
	id := cr["id"].(string)
	job := createJob(t, o, `{"operation":"query","query":"SELECT Id, LastName, Description, Email FROM Contact","columnDelimiter":"PIPE","lineEnding":"CRLF"}`)
	jobID := job["id"].(string)
	deadline := time.Now().Add(10 * time.Second)
	for jobState(t, o, jobID)["state"] != "JobComplete" {
		if time.Now().After(deadline) {
			t.Fatal("a job with no delay did not complete")
		}
		time.Sleep(5 * time.Millisecond)
	}
	o.do(http.MethodPatch, "/services/data/v62.0/sobjects/Contact/"+id, `{"LastName":"Changed"}`)
	resp, body := o.do(http.MethodGet, jobsPath+"/"+jobID+"/results", nil)
	want := "\"Id\"|\"LastName\"|\"Description\"|\"Email\"\r\n\"" + id + "\"|\"O\"\"Hara\"|\"line 1\nline \"\"2\"\"\"|\"\"\r\n"
	if string(body) != want || resp.Header.Get("Sforce-Locator") != "null" {
		t.Errorf("CSV page = %q\nwant       %q (locator %s)", body, want, resp.Header.Get("Sforce-Locator"))
	}
	resp, body = o.do(http.MethodGet, jobsPath+"/"+jobID+"/results", nil, "Accept-Encoding", "gzip")
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("no gzip when asked: %v", resp.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || string(plain) != want {
		t.Errorf("gunzipped page = %q, %v", plain, err)
	}
}

// Spec 4.2: features Bulk API 2.0 does not support are rejected at creation; malformed SOQL gets the
// query error.
func TestBulkRejectsUnsupportedQueries(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	cases := map[string]string{
		`{"operation":"query","query":"SELECT COUNT() FROM Contact"}`:                  "INVALIDJOB",
		`{"operation":"query","query":"SELECT MailingAddress FROM Contact"}`:           "INVALIDJOB",
		`{"operation":"query","query":"SELECT Id FROM Contact LIMIT 5 OFFSET 2"}`:      "INVALIDJOB",
		`{"operation":"query","query":"SELECT FIELDS(STANDARD) FROM Contact"}`:         "INVALIDJOB",
		`{"operation":"query","query":"SELECT Id FROM Contact","columnDelimiter":"X"}`: "INVALIDJOB",
		`{"operation":"upsert","query":"SELECT Id FROM Contact"}`:                      "INVALIDJOB",
		`{"operation":"query","query":"SELECT Id FRM Contact"}`:                        "MALFORMED_QUERY",
		`{"operation":"query","query":"SELECT Nope FROM Contact"}`:                     "INVALID_FIELD",
		`{"operation":`: "JSON_PARSER_ERROR",
	}
	for body, code := range cases {
		resp, b := o.do(http.MethodPost, jobsPath, body)
		if e := restErr(t, b); resp.StatusCode != http.StatusBadRequest || e.ErrorCode != code {
			t.Errorf("%s: %d %s, want %s", body, resp.StatusCode, b, code)
		}
	}
	if n := len(o.e.bulk.jobs); n != 0 {
		t.Errorf("%d jobs were created by rejected requests", n)
	}
}

// Spec 4.1: jobs are listable, abortable (PATCH) and deletable; queryAll includes deleted records.
func TestBulkListAbortDeleteAndQueryAll(t *testing.T) {
	o := newTestOrg(t, 3, 0, func(c *Config) { c.BulkDelay = time.Hour })
	victim := o.query("SELECT Id FROM Contact LIMIT 1", false).Records[0]["Id"].(string)
	o.do(http.MethodDelete, "/services/data/v62.0/sobjects/Contact/"+victim, nil)
	running := createJob(t, o, `{"operation":"query","query":"SELECT Id FROM Contact"}`)["id"].(string)
	all := createJob(t, o, `{"operation":"queryAll","query":"SELECT Id, IsDeleted FROM Contact"}`)["id"].(string)

	_, b := o.do(http.MethodGet, jobsPath, nil)
	var list struct {
		Done    bool             `json:"done"`
		Records []map[string]any `json:"records"`
	}
	mustJSON(t, b, &list)
	if !list.Done || len(list.Records) != 2 || list.Records[0]["id"] != running || list.Records[1]["jobType"] != "V2Query" {
		t.Errorf("job list = %s", b)
	}
	resp, b := o.do(http.MethodPatch, jobsPath+"/"+running, `{"state":"Aborted"}`)
	var aborted map[string]any
	mustJSON(t, b, &aborted)
	if resp.StatusCode != http.StatusOK || aborted["state"] != "Aborted" {
		t.Errorf("abort: %d %s", resp.StatusCode, b)
	}
	if resp, b := o.do(http.MethodPatch, jobsPath+"/"+running, `{"state":"Aborted"}`); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("aborting an aborted job: %d %s", resp.StatusCode, b)
	}

	o.clock.Advance(90 * time.Minute) // past the job delay, within the token lifetime
	resp, b = o.do(http.MethodGet, jobsPath+"/"+all+"/results", nil)
	if resp.StatusCode != http.StatusOK || strings.Count(string(b), "\n") != 4 || !strings.Contains(string(b), `"`+victim+`","true"`) {
		t.Errorf("queryAll results = %d %s", resp.StatusCode, b)
	}
	if resp, _ := o.do(http.MethodDelete, jobsPath+"/"+all, nil); resp.StatusCode != http.StatusNoContent {
		t.Errorf("delete: %d", resp.StatusCode)
	}
	resp, b = o.do(http.MethodGet, jobsPath+"/"+all, nil)
	if e := restErr(t, b); resp.StatusCode != http.StatusNotFound || e.ErrorCode != "NOT_FOUND" {
		t.Errorf("deleted job: %d %s", resp.StatusCode, b)
	}
}

// A job's delay runs from the instant it was created, not from its createdDate (which has whole seconds):
// a job created late in a second completes after the whole delay, like one created early in it. Measured
// from the truncated stamp, the 300 ms default delay was anything between 0 and 300 ms, at random.
func TestBulkJobDelayRunsFromTheCreationInstant(t *testing.T) {
	o := newTestOrg(t, 5, 0, func(c *Config) { c.BulkDelay = time.Hour })
	// Move the sandbox clock to 900 ms past a whole second.
	now := o.clock.Now()
	o.clock.Advance(time.Second + 900*time.Millisecond - time.Duration(now.Nanosecond()))
	id := createJob(t, o, `{"operation":"query","query":"SELECT Id FROM Contact"}`)["id"].(string)
	o.clock.Advance(time.Hour - 500*time.Millisecond)
	if s := jobState(t, o, id)["state"]; s != "InProgress" {
		t.Errorf("state %v half a second before the delay has passed, want InProgress", s)
	}
	o.clock.Advance(time.Second)
	if s := jobState(t, o, id)["state"]; s != "JobComplete" {
		t.Errorf("state %v half a second after the delay has passed, want JobComplete", s)
	}
}
