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

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
)

// The ceiling scenarios measure the sandbox with clients that do no work of their own: a trivial reader
// draining a Bulk query, a trivial writer sending UpsertMultiple bodies prepared before the clock starts, and
// both at once (the relay: the writer may only send a batch once the reader has read its rows, as a sync that
// did nothing in between would). The prepared rows are the very rows crmsync writes: the contacts of the
// sandbox, read and mapped with the predefined Contact mapping before timing.

// contactPlan is the predefined Contact mapping as the agent compiles it, rows owned by team.
func contactPlan(team string) (*mapping.Plan, error) {
	cfg := mapping.TableConfig{SourceTable: "Contact", UsePredefined: true}
	synced := mapping.Siblings{"Contact": "contact", "Account": "account"}
	p, probs := mapping.Compile(cfg, mapping.Effective(cfg, synced), mapping.Live{Source: mapping.StandardSource("Contact"), Dest: mapping.StandardDestination("contact")},
		mapping.Tables{DestOf: synced, EntitySetOf: map[string]string{"account": "accounts", "contact": "contacts"}, OwnerTeamID: team})
	if p == nil {
		return nil, fmt.Errorf("compiling the predefined Contact mapping: %v", probs)
	}
	return p, nil
}

// sfRaw is a plain HTTP client of the Salesforce sandbox.
type sfRaw struct {
	hc    *http.Client
	base  string // instance URL + /services/data/vXX.X
	token string
}

func (e *env) sfLogin() (*sfRaw, error) {
	i := e.sb.Info.Salesforce
	hc := e.sb.HTTPClient()
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

func (c *sfRaw) call(method, path, body string) (*http.Response, error) {
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	return c.hc.Do(req)
}

// bulkQuery creates a Bulk query job and waits until it is complete.
func (c *sfRaw) bulkQuery(soql string) (string, error) {
	q, _ := json.Marshal(map[string]string{"operation": "query", "query": soql})
	resp, err := c.call(http.MethodPost, "/jobs/query", string(q))
	if err != nil {
		return "", err
	}
	var job struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	err = json.NewDecoder(resp.Body).Decode(&job)
	resp.Body.Close()
	if err != nil || job.ID == "" {
		return "", fmt.Errorf("creating the bulk query (HTTP %d): %w", resp.StatusCode, err)
	}
	for job.State != "JobComplete" {
		if job.State == "Failed" || job.State == "Aborted" {
			return "", fmt.Errorf("bulk query %s ended %s", job.ID, job.State)
		}
		time.Sleep(50 * time.Millisecond)
		if resp, err = c.call(http.MethodGet, "/jobs/query/"+job.ID, ""); err != nil {
			return "", err
		}
		err = json.NewDecoder(resp.Body).Decode(&job)
		resp.Body.Close()
		if err != nil {
			return "", err
		}
	}
	return job.ID, nil
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
		resp, err := c.call(http.MethodGet, "/jobs/query/"+jobID+"/results"+q, "")
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK {
			resp.Body.Close()
			return fmt.Errorf("bulk results: HTTP %d", resp.StatusCode)
		}
		err = page(resp.Body)
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

// mappedRows reads the sandbox's contacts (untimed) and maps them as the agent does, one bulk target per
// contact, and returns the SOQL query of crmsync's load.
func (e *env) mappedRows(sf *sfRaw) (targets []dataverse.Target, soql string, err error) {
	plan, err := contactPlan(e.sb.Info.Dataverse.TeamID)
	if err != nil {
		return nil, "", err
	}
	soql = "SELECT " + strings.Join(plan.SourceFields(), ", ") + " FROM Contact"
	job, err := sf.bulkQuery(soql)
	if err != nil {
		return nil, "", err
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
			targets = append(targets, dataverse.Target{Key: key, Members: members})
		}
	})
	return targets, soql, err
}

// upsertWriter sends UpsertMultiple bodies from a channel with 4 requests in flight (the agent's default
// write concurrency) and returns the first failure.
func (e *env) upsertWriter(tok string, bodies <-chan []byte) error {
	hc := e.sb.HTTPClient()
	u := e.sb.Info.Dataverse.EnvironmentURL + "/api/data/v9.2/contacts/Microsoft.Dynamics.CRM.UpsertMultiple"
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
					errs <- fmt.Errorf("UpsertMultiple: HTTP %d: %.300s", resp.StatusCode, msg)
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

// ceiling is a sandbox of n contacts (no accounts: the prepared rows bind no account), logged in on both
// sides, with the contacts' rows prepared.
type ceiling struct {
	*env
	sf      *sfRaw
	soql    string
	tok     string
	targets []dataverse.Target
}

func ceilingEnv(o options, n int) (*ceiling, error) {
	e, err := newEnv(o, n, 0, budgetNoExecutionTime)
	if err != nil {
		return nil, err
	}
	c := &ceiling{env: e}
	if c.sf, err = e.sfLogin(); err == nil {
		if c.targets, c.soql, err = e.mappedRows(c.sf); err == nil {
			if c.tok, err = dvToken(e.sb); err == nil {
				return c, nil
			}
		}
	}
	e.close()
	return nil, err
}

// bodies frames the prepared rows into UpsertMultiple bodies of 1,000, byte for byte as the agent's client
// does, and moves them outside the Go heap; the rows themselves are dropped and collected before the clock
// starts.
func (c *ceiling) bodies() ([][]byte, error) {
	var bodies [][]byte
	for i := 0; i < len(c.targets); i += 1000 {
		bodies = append(bodies, dataverse.BulkBody("contact", "contactid", c.targets[i:min(i+1000, len(c.targets))]))
	}
	c.targets = nil
	bodies, err := offHeap(bodies)
	if err != nil {
		return nil, err
	}
	runtime.GC()
	debug.FreeOSMemory()
	return bodies, nil
}

func records(n int, elapsed time.Duration) *Result {
	return &Result{Figures: map[string]float64{"records": float64(n), "records_per_second": float64(n) / elapsed.Seconds()}}
}

// scenarioIntake: the sandbox's own intake, from the trivial writer sending the prepared rows.
func scenarioIntake(o options, n int) (*Result, error) {
	c, err := ceilingEnv(o, n)
	if err != nil {
		return nil, err
	}
	defer c.close()
	bodies, err := c.bodies()
	if err != nil {
		return nil, err
	}
	ch := make(chan []byte, len(bodies))
	for _, b := range bodies {
		ch <- b
	}
	close(ch)
	start := time.Now()
	if err := c.upsertWriter(c.tok, ch); err != nil {
		return nil, err
	}
	return records(n, time.Since(start)), nil
}

// scenarioOutput: the sandbox's own output, from the trivial reader draining crmsync's Bulk query.
func scenarioOutput(o options, n int) (*Result, error) {
	e, err := newEnv(o, n, 0, budgetNoExecutionTime)
	if err != nil {
		return nil, err
	}
	defer e.close()
	sf, err := e.sfLogin()
	if err != nil {
		return nil, err
	}
	plan, err := contactPlan(e.sb.Info.Dataverse.TeamID)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	job, err := sf.bulkQuery("SELECT " + strings.Join(plan.SourceFields(), ", ") + " FROM Contact")
	if err != nil {
		return nil, err
	}
	rows := 0
	err = sf.drain(job, func(r io.Reader) error {
		c := &rowCounter{}
		_, err := io.Copy(c, r)
		rows += c.rows
		return err
	})
	if err != nil {
		return nil, err
	}
	return records(rows, time.Since(start)), nil
}

// scenarioRelay: both halves at once, as a sync that does no work of its own would run them: the trivial
// reader drains the Bulk query while the trivial writer sends each prepared batch of 1,000 rows as soon as
// the reader has read that many rows. On one machine the sandbox's two halves then share its cores, which
// is what crmsync's load is up against.
func scenarioRelay(o options, n int) (*Result, error) {
	c, err := ceilingEnv(o, n)
	if err != nil {
		return nil, err
	}
	defer c.close()
	bodies, err := c.bodies()
	if err != nil {
		return nil, err
	}
	ready := make(chan []byte, len(bodies))
	sent := 0
	release := func(rows int) {
		for ; sent < len(bodies) && (sent+1)*1000 <= rows; sent++ {
			ready <- bodies[sent]
		}
	}
	start := time.Now()
	writeErr := make(chan error, 1)
	go func() { writeErr <- c.upsertWriter(c.tok, ready) }()
	readErr := func() error {
		job, err := c.sf.bulkQuery(c.soql)
		if err != nil {
			return err
		}
		total := 0
		return c.sf.drain(job, func(r io.Reader) error {
			c := &rowCounter{every: func(rows int) { release(total + rows) }}
			_, err := io.Copy(c, r)
			total += c.rows
			return err
		})
	}()
	for ; sent < len(bodies); sent++ { // the last, partial batch (and every batch if reading failed)
		ready <- bodies[sent]
	}
	close(ready)
	if err := errors.Join(readErr, <-writeErr); err != nil {
		return nil, err
	}
	return records(n, time.Since(start)), nil
}

// scenarioNaive: what a simple integration does, one PATCH upsert per record, one at a time, with the same
// mapped rows.
func scenarioNaive(o options, n int) (*Result, error) {
	c, err := ceilingEnv(o, n)
	if err != nil {
		return nil, err
	}
	defer c.close()
	bodies := make([]string, len(c.targets)) // PATCH bodies: the same members, in braces, without the key
	for i, t := range c.targets {
		bodies[i] = "{" + string(t.Members) + "}"
	}
	hc := c.sb.HTTPClient()
	start := time.Now()
	for i, t := range c.targets {
		req, _ := http.NewRequest(http.MethodPatch, c.sb.Info.Dataverse.EnvironmentURL+"/api/data/v9.2/contacts("+t.Key+")", strings.NewReader(bodies[i]))
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
	return records(len(c.targets), time.Since(start)), nil
}
