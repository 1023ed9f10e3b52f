package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/crmsync/terraform-provider-crmsync/internal/cafile"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
)

// The ceiling scenarios measure the sandbox with clients that do no work of their own: a trivial reader
// draining Bulk queries, a trivial writer sending UpsertMultiple bodies prepared before the clock starts, and
// both at once (the relay: the writer may only send a batch once the reader has read its rows, as a sync that
// did nothing in between would). The prepared rows are the very rows crmsync's load writes: the sandbox's
// accounts and contacts, read and mapped with the predefined mappings before timing (so contacts bind their
// accounts, and the accounts are written first, as the load must for those lookups to resolve).

// loadTables are the tables of crmsync's load, in the order their rows must be written: the contacts'
// parent-account lookups point at the accounts.
var loadTables = []struct{ source, logical, set string }{
	{"Account", "account", "accounts"},
	{"Contact", "contact", "contacts"},
}

// tablePlan is a table's predefined mapping as the agent compiles it, rows owned by team.
func tablePlan(source, logical, team string) (*mapping.Plan, error) {
	cfg := mapping.TableConfig{SourceTable: source, UsePredefined: true}
	synced := mapping.Siblings{"Contact": "contact", "Account": "account"}
	p, probs := mapping.Compile(cfg, mapping.Effective(cfg, synced), mapping.Live{Source: mapping.StandardSource(source), Dest: mapping.StandardDestination(logical)},
		mapping.Tables{DestOf: synced, EntitySetOf: map[string]string{"account": "accounts", "contact": "contacts"}, OwnerTeamID: team})
	if p == nil {
		return nil, fmt.Errorf("compiling the predefined %s mapping: %v", source, probs)
	}
	return p, nil
}

// trivial is the trivial clients' view of a sandbox: its addresses and credentials as sandbox.json gives them
// to the agent, and one HTTP client trusting its CA (the file the agent's configuration names), keeping as
// many idle connections per host as the agent's clients do (16). With net/http's default of 2, the writer's
// 4 requests in flight closed and reopened TLS connections all along (the sandbox speaks HTTP/1.1),
// handicapping the ceiling.
type trivial struct {
	info *sandbox.Info
	hc   *http.Client
}

func newTrivial(info *sandbox.Info) (*trivial, error) {
	tlsCfg, err := cafile.TLSConfig("ca_file", info.Salesforce.CAFile)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig, tr.MaxIdleConnsPerHost = tlsCfg, 16
	return &trivial{info: info, hc: &http.Client{Transport: tr, Timeout: time.Minute}}, nil
}

// sfRaw is a plain HTTP client of the Salesforce sandbox.
type sfRaw struct {
	hc    *http.Client
	base  string // instance URL + /services/data/vXX.X
	token string
}

func (e *trivial) sfLogin() (*sfRaw, error) {
	i := e.info.Salesforce
	hc := e.hc
	resp, err := hc.PostForm(i.InstanceURL+"/services/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "client_id": {i.ClientID}, "client_secret": {i.ClientSecret}})
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var t struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil || t.AccessToken == "" {
		return nil, fmt.Errorf("salesforce token (HTTP %d): %w", resp.StatusCode, err)
	}
	return &sfRaw{hc: hc, base: i.InstanceURL + "/services/data/v" + i.APIVersion, token: t.AccessToken}, nil
}

func (c *sfRaw) call(method, path, body string, header ...string) (*http.Response, error) {
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	return c.hc.Do(req)
}

// createQuery creates a Bulk query job and returns its id.
func (c *sfRaw) createQuery(soql string) (string, error) {
	q, _ := json.Marshal(map[string]string{"operation": "query", "query": soql})
	resp, err := c.call(http.MethodPost, "/jobs/query", string(q))
	if err != nil {
		return "", err
	}
	var job struct {
		ID string `json:"id"`
	}
	err = json.NewDecoder(resp.Body).Decode(&job)
	resp.Body.Close()
	if err != nil || job.ID == "" {
		return "", fmt.Errorf("creating the bulk query (HTTP %d): %w", resp.StatusCode, err)
	}
	return job.ID, nil
}

// waitQuery polls a Bulk query job every 50 ms until it is complete.
func (c *sfRaw) waitQuery(id string) error {
	for {
		resp, err := c.call(http.MethodGet, "/jobs/query/"+id, "")
		if err != nil {
			return err
		}
		var job struct {
			State string `json:"state"`
		}
		err = json.NewDecoder(resp.Body).Decode(&job)
		resp.Body.Close()
		switch {
		case err != nil:
			return err
		case job.State == "JobComplete":
			return nil
		case job.State == "Failed" || job.State == "Aborted":
			return fmt.Errorf("bulk query %s ended %s", id, job.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// bulkQuery creates a Bulk query job and waits until it is complete.
func (c *sfRaw) bulkQuery(soql string) (string, error) {
	id, err := c.createQuery(soql)
	if err == nil {
		err = c.waitQuery(id)
	}
	return id, err
}

// drain reads every result page of a job (50,000 rows per page, as the agent asks), handing each page's
// CSV body to page.
func (c *sfRaw) drain(jobID string, page func(io.Reader) error) error {
	locator := ""
	for {
		q := "?maxRecords=50000"
		if locator != "" {
			q += "&locator=" + locator
		}
		// Compressed as the agent asks for it, and decompressed with the agent's decoder (net/http's own,
		// compress/gzip, is slower: it would slow the trivial reader down and lower the ceiling).
		resp, err := c.call(http.MethodGet, "/jobs/query/"+jobID+"/results"+q, "", "Accept-Encoding", "gzip")
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fmt.Errorf("bulk results: HTTP %d", resp.StatusCode)
		}
		var body io.Reader = resp.Body
		if resp.Header.Get("Content-Encoding") == "gzip" {
			if body, err = gzip.NewReader(resp.Body); err != nil {
				resp.Body.Close()
				return err
			}
		}
		err = page(body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		locator = resp.Header.Get("Sforce-Locator")
		if locator == "" || locator == "null" {
			return nil
		}
	}
}

// rowCounter counts the CSV records of a page as it streams, without parsing values: a line break outside
// quotes ends a record (the sandbox quotes every value). every is called after each record but the header.
type rowCounter struct {
	inQuote, header bool
	rows            int
	every           func(rows int)
}

func (r *rowCounter) Write(p []byte) (int, error) {
	for _, c := range p {
		switch {
		case c == '"':
			r.inQuote = !r.inQuote
		case c == '\n' && !r.inQuote:
			if !r.header {
				r.header = true
				continue
			}
			r.rows++
			if r.every != nil {
				r.every(r.rows)
			}
		}
	}
	return len(p), nil
}

// ceilingTable is one table of the load as the ceiling moves it: its Bulk query, and its rows mapped as the
// agent maps them, then framed into UpsertMultiple bodies of 1,000.
type ceilingTable struct {
	source, logical, set, soql string
	rows                       int
	targets                    []dataverse.Target
	bodies                     [][]byte
}

// mappedRows reads a table of the sandbox (untimed) and maps its rows as the agent does, one bulk target
// per row.
func (e *trivial) mappedRows(sf *sfRaw, source, logical, set string) (*ceilingTable, error) {
	plan, err := tablePlan(source, logical, e.info.Dataverse.TeamID)
	if err != nil {
		return nil, err
	}
	t := &ceilingTable{source: source, logical: logical, set: set, soql: "SELECT " + strings.Join(plan.SourceFields(), ", ") + " FROM " + source}
	job, err := sf.bulkQuery(t.soql)
	if err != nil {
		return nil, err
	}
	err = sf.drain(job, func(r io.Reader) error {
		cr := csv.NewReader(r)
		header, err := cr.Read()
		if err != nil {
			return err
		}
		rec := map[string]any{}
		for {
			vals, err := cr.Read()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			for i, h := range header {
				if vals[i] == "" {
					rec[h] = nil
				} else {
					rec[h] = vals[i]
				}
			}
			key, err := plan.Key(vals[0])
			if err != nil {
				return err
			}
			members, err := plan.AppendRow(nil, rec)
			if err != nil {
				return err
			}
			t.targets = append(t.targets, dataverse.Target{Key: key, Members: members})
		}
	})
	t.rows = len(t.targets)
	return t, err
}

// upsertWriter sends UpsertMultiple bodies of one entity set from a channel with 4 requests in flight (the
// agent's default write concurrency) and returns the first failure.
func (e *trivial) upsertWriter(tok, set string, bodies <-chan []byte) error {
	hc := e.hc
	u := e.info.Dataverse.EnvironmentURL + "/api/data/v9.2/" + set + "/Microsoft.Dynamics.CRM.UpsertMultiple"
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range bodies {
				req, _ := http.NewRequest(http.MethodPost, u, bytes.NewReader(b))
				req.Header.Set("Authorization", "Bearer "+tok)
				req.Header.Set("Content-Type", "application/json")
				resp, err := hc.Do(req)
				if err != nil {
					errs <- err
					return
				}
				msg, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusNoContent {
					errs <- fmt.Errorf("UpsertMultiple on %s: HTTP %d: %.300s", set, resp.StatusCode, msg)
					return
				}
			}
		}()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// ceiling is the trivial clients of a sandbox of the load's data (n contacts, n/5 accounts), logged in on
// both sides, with every table's rows prepared.
type ceiling struct {
	*trivial
	sf     *sfRaw
	tok    string
	tables []*ceilingTable
}

// prepareCeiling logs in on both sides and reads and maps every table of the load (untimed).
func prepareCeiling(t *trivial) (*ceiling, error) {
	c := &ceiling{trivial: t}
	var err error
	if c.sf, err = t.sfLogin(); err != nil {
		return nil, err
	}
	for _, lt := range loadTables {
		tab, err := t.mappedRows(c.sf, lt.source, lt.logical, lt.set)
		if err != nil {
			return nil, err
		}
		c.tables = append(c.tables, tab)
	}
	if c.tok, err = t.dvToken(); err != nil {
		return nil, err
	}
	return c, nil
}

// dvToken gets a Dataverse token.
func (e *trivial) dvToken() (string, error) {
	i := e.info.Dataverse
	resp, err := e.hc.PostForm(i.AuthorityURL+"/"+i.TenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {i.ClientID}, "client_secret": {i.ClientSecret}, "scope": {i.EnvironmentURL + "/.default"}})
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var t struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&t); err != nil || t.AccessToken == "" {
		return "", fmt.Errorf("dataverse token (HTTP %d): %w", resp.StatusCode, err)
	}
	return t.AccessToken, nil
}

// records is how many rows the ceiling moves: every table's.
func (c *ceiling) records() int {
	n := 0
	for _, t := range c.tables {
		n += t.rows
	}
	return n
}

// prepareBodies frames every table's prepared rows into UpsertMultiple bodies of 1,000, byte for byte as the
// agent's client does, and moves them outside the Go heap; the rows themselves are dropped and collected
// before the clock starts.
func (c *ceiling) prepareBodies() error {
	for _, t := range c.tables {
		var bodies [][]byte
		for i := 0; i < len(t.targets); i += 1000 {
			bodies = append(bodies, dataverse.BulkBody(t.logical, t.logical+"id", t.targets[i:min(i+1000, len(t.targets))]))
		}
		t.targets = nil
		var err error
		if t.bodies, err = offHeap(bodies); err != nil {
			return err
		}
	}
	runtime.GC()
	debug.FreeOSMemory()
	return nil
}

func records(n int, elapsed time.Duration) *Result {
	return &Result{Figures: map[string]float64{"records": float64(n), "records_per_second": float64(n) / elapsed.Seconds()}}
}

// intake is the timed part of the intake: the trivial writer sending the prepared rows, the accounts then
// the contacts.
func (c *ceiling) intake() (int, error) {
	for _, t := range c.tables {
		ch := make(chan []byte, len(t.bodies))
		for _, b := range t.bodies {
			ch <- b
		}
		close(ch)
		if err := c.upsertWriter(c.tok, t.set, ch); err != nil {
			return 0, err
		}
	}
	return c.records(), nil
}

// loadSOQL are the Bulk queries of crmsync's load, in loadTables' order.
func (e *trivial) loadSOQL() ([]string, error) {
	var soql []string
	for _, lt := range loadTables {
		plan, err := tablePlan(lt.source, lt.logical, e.info.Dataverse.TeamID)
		if err != nil {
			return nil, err
		}
		soql = append(soql, "SELECT "+strings.Join(plan.SourceFields(), ", ")+" FROM "+lt.source)
	}
	return soql, nil
}

// output is the timed part of the output: the trivial reader draining crmsync's Bulk queries (both started
// at once, as the agent's tables do). It returns the rows read.
func (c *sfRaw) output(soql []string) (int, error) {
	jobs, err := c.createQueries(soql)
	if err != nil {
		return 0, err
	}
	rows := 0
	for _, job := range jobs {
		if err := c.waitQuery(job); err != nil {
			return 0, err
		}
		err = c.drain(job, func(r io.Reader) error {
			rc := &rowCounter{}
			_, err := io.Copy(rc, r)
			rows += rc.rows
			return err
		})
		if err != nil {
			return 0, err
		}
	}
	return rows, nil
}

// createQueries creates one Bulk query job per query, at once.
func (c *sfRaw) createQueries(soql []string) ([]string, error) {
	var jobs []string
	for _, q := range soql {
		job, err := c.createQuery(q)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, job)
	}
	return jobs, nil
}

// relay is the timed part of the relay: both halves at once, as a sync that does no work of its own would
// run them: both Bulk queries start at once; the trivial reader drains the accounts' then the contacts'
// results, never waiting for the writer; the trivial writer sends each prepared batch of 1,000 rows as soon
// as the reader has read that many rows of its table, the contacts only once every account is written
// (their lookups point at them). On one machine the sandbox's two halves then share its cores, which is
// what crmsync's load is up against.
func (c *ceiling) relay() (int, error) {
	soql := make([]string, len(c.tables))
	ready := make([]chan []byte, len(c.tables))
	for i, t := range c.tables {
		soql[i], ready[i] = t.soql, make(chan []byte, len(t.bodies))
	}
	readErr := make(chan error, 1)
	go func() { readErr <- c.relayRead(soql, ready) }()
	var writeErr error
	for i, t := range c.tables {
		if writeErr = c.upsertWriter(c.tok, t.set, ready[i]); writeErr != nil {
			break
		}
	}
	if err := errors.Join(<-readErr, writeErr); err != nil {
		return 0, err
	}
	return c.records(), nil
}

// relayRead is the relay's reader: it starts the queries, then drains each job in turn, releasing each
// table's prepared batches into its channel as their rows are read; every channel is filled and closed
// even when reading fails, so the writer never waits forever.
func (c *ceiling) relayRead(soql []string, ready []chan []byte) error {
	sent := make([]int, len(c.tables))
	release := func(i, rows int) {
		for ; sent[i] < len(c.tables[i].bodies) && (sent[i]+1)*1000 <= rows; sent[i]++ {
			ready[i] <- c.tables[i].bodies[sent[i]]
		}
	}
	defer func() {
		for i, t := range c.tables { // the last, partial batch (and every batch if reading failed)
			for ; sent[i] < len(t.bodies); sent[i]++ {
				ready[i] <- t.bodies[sent[i]]
			}
			close(ready[i])
		}
	}()
	jobs, err := c.sf.createQueries(soql)
	if err != nil {
		return err
	}
	for i, job := range jobs {
		if err := c.sf.waitQuery(job); err != nil {
			return err
		}
		total := 0
		err := c.sf.drain(job, func(r io.Reader) error {
			rc := &rowCounter{every: func(rows int) { release(i, total+rows) }}
			_, err := io.Copy(rc, r)
			total += rc.rows
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// scenarioNaive: what a simple integration does, one PATCH upsert per record, one at a time, with the same
// mapped rows (the accounts, then the contacts). Its client runs in the sandbox's process: it is a baseline
// far below the ceiling, not a bound on it.
func scenarioNaive(o options, n int) (*Result, error) {
	e, err := newEnv(o, n, n/5, budgetNoExecutionTime)
	if err != nil {
		return nil, err
	}
	defer e.close()
	t, err := newTrivial(&e.sb.Info)
	if err != nil {
		return nil, err
	}
	c, err := prepareCeiling(t)
	if err != nil {
		return nil, err
	}
	patches := make([][]string, len(c.tables)) // PATCH bodies: the same members, in braces, without the key
	for i, t := range c.tables {
		for _, row := range t.targets {
			patches[i] = append(patches[i], "{"+string(row.Members)+"}")
		}
	}
	hc := c.hc
	start := time.Now()
	for i, t := range c.tables {
		for j, row := range t.targets {
			req, _ := http.NewRequest(http.MethodPatch, c.info.Dataverse.EnvironmentURL+"/api/data/v9.2/"+t.set+"("+row.Key+")", strings.NewReader(patches[i][j]))
			req.Header.Set("Authorization", "Bearer "+c.tok)
			req.Header.Set("Content-Type", "application/json")
			resp, err := hc.Do(req)
			if err != nil {
				return nil, err
			}
			msg, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusNoContent {
				return nil, fmt.Errorf("PATCH: HTTP %d: %.300s", resp.StatusCode, msg)
			}
		}
	}
	return records(c.records(), time.Since(start)), nil
}
