package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/testenv/pgtest"
)

// capacityResult is one capacity run's figures.
type capacityResult struct {
	Store      string `json:"store"`
	Replicas   int    `json:"replicas"`
	Connectors int    `json:"connectors"`
	Seconds    int    `json:"seconds"`
	// HeartbeatsPerSecond is the rate achieved (the target is one per connector per second).
	HeartbeatsPerSecond float64 `json:"heartbeats_per_second"`
	HeartbeatP50MS      float64 `json:"heartbeat_p50_ms"`
	HeartbeatP99MS      float64 `json:"heartbeat_p99_ms"`
	// Reads are the provider's reads (connector, mappings, activation, status) made meanwhile.
	Reads       int     `json:"reads"`
	ReadP50MS   float64 `json:"read_p50_ms"`
	ReadP99MS   float64 `json:"read_p99_ms"`
	ReadMaxMS   float64 `json:"read_max_ms"`
	Errors      int64   `json:"errors"`
	ServeCPU    float64 `json:"serve_cpu_cores"`          // all replicas together
	StoreCPU    float64 `json:"postgres_cpu_cores"`       // PostgreSQL's processes (0 for SQLite: in serve)
	RowsWritten float64 `json:"postgres_rows_per_second"` // inserted + updated + deleted
	Commits     float64 `json:"postgres_commits_per_second"`
}

// latencies collects durations from many goroutines.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) { l.mu.Lock(); l.d = append(l.d, d); l.mu.Unlock() }

func (l *latencies) reset() { l.mu.Lock(); l.d = l.d[:0]; l.mu.Unlock() }

// pct returns the p-th percentile and the count, in milliseconds.
func (l *latencies) pct(p float64) (float64, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.d) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), l.d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := min(len(s)-1, int(p*float64(len(s))))
	return float64(s[i].Microseconds()) / 1000, len(s)
}

// capacityEnv is the control plane under load.
type capacityEnv struct {
	o        options
	dir      string
	pg       *pgtest.Cluster
	storeURL string
	replicas []*proc
	op       *client.Client
	agents   []*client.Client // one per replica, the agent identity's credential
	conns    []string
}

func capacity(o options, kind string, replicas int) (capacityResult, error) {
	res := capacityResult{Store: kind, Replicas: replicas, Connectors: o.connectors, Seconds: o.seconds}
	dir, err := os.MkdirTemp("", "crmsync-scale-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(dir)
	e := &capacityEnv{o: o, dir: dir}
	defer e.close()
	if err := e.start(kind, replicas); err != nil {
		return res, err
	}
	if err := e.declare(); err != nil {
		return res, err
	}
	return e.load(res)
}

func (e *capacityEnv) start(kind string, replicas int) error {
	var extra []string
	if kind == "postgres" {
		pg, err := pgtest.StartCluster()
		if err != nil {
			return err
		}
		e.pg = pg
		if e.storeURL, err = pg.CreateDatabase(context.Background(), "crmsync"); err != nil {
			return err
		}
		extra = []string{"--store", e.storeURL, "--key-file", filepath.Join(e.dir, "secret.key")}
	}
	var urls []string
	for i := range replicas {
		p, err := startServe(e.o.crmsync, filepath.Join(e.dir, fmt.Sprintf("serve-%d", i)), extra...)
		if err != nil {
			return err
		}
		e.replicas = append(e.replicas, p)
		urls = append(urls, p.url)
	}
	var err error
	e.op, err = client.New(client.Config{Endpoint: strings.Join(urls, ","), Token: benchToken, Timeout: time.Minute})
	return err
}

func (e *capacityEnv) close() {
	for _, p := range e.replicas {
		p.stop(syscall.SIGTERM)
	}
	if e.pg != nil {
		_ = e.pg.Remove()
	}
}

// declare creates the connectors (one mapping each), an agent identity, and a lease per connector.
func (e *capacityEnv) declare() error {
	ctx := context.Background()
	ids := make([]string, e.o.connectors)
	err := parallel(16, e.o.connectors, func(i int) error {
		c, err := e.op.CreateConnector(ctx, api.ConnectorSpec{Name: fmt.Sprintf("load-%04d", i), TeamID: "6b1a4c1e-2f0d-4d5e-9a51-3f5d0c6a7b10",
			Salesforce: api.SalesforceSettings{LoginURL: "https://login.salesforce.com", Auth: "client_credentials", ClientID: "cid", ClientSecret: "s"},
			Dataverse: api.DataverseSettings{EnvironmentURL: "https://acme.crm.dynamics.com", TenantID: "acme.onmicrosoft.com",
				ClientID: "a1b2c3d4-0000-4000-8000-0000000000aa", ClientSecret: "d"}})
		if err != nil {
			return err
		}
		ids[i] = c.ID
		_, err = e.op.CreateMapping(ctx, c.ID, mapping.TableConfig{SourceTable: "Contact", UsePredefined: true})
		return err
	})
	if err != nil {
		return err
	}
	e.conns = ids
	out, err := exec.Command(e.o.crmsync, "agents", "enroll-token", "--data-dir", filepath.Join(e.dir, "serve-0", "data")).Output() //nolint:gosec // G204: the binary under test
	if err != nil {
		return fmt.Errorf("enroll-token: %w", err)
	}
	en, err := client.New(client.Config{Endpoint: e.replicas[0].url, Token: strings.TrimSpace(string(out)), Timeout: time.Minute})
	if err != nil {
		return err
	}
	cred, err := en.Enroll(ctx, api.EnrollRequest{Name: "bench", Host: "bench"})
	if err != nil {
		return err
	}
	for _, r := range e.replicas {
		c, err := client.New(client.Config{Endpoint: r.url, Token: cred.Credential, Timeout: time.Minute})
		if err != nil {
			return err
		}
		e.agents = append(e.agents, c)
	}
	return nil
}

// parallel runs fn(0..n-1) on w workers and returns the first error.
func parallel(w, n int, fn func(i int) error) error {
	var next atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || first.Load() != nil {
					return
				}
				if err := fn(i); err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err, ok := first.Load().(error); ok {
		return err
	}
	return nil
}

// load leases every connector, heartbeats each once a second and reads as the provider does, measuring the
// steady state after a warm-up.
func (e *capacityEnv) load(res capacityResult) (capacityResult, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	leases := make([]*api.Lease, len(e.conns))
	if err := parallel(16, len(e.conns), func(i int) error {
		l, err := e.agents[i%len(e.agents)].AcquireLease(ctx, api.LeaseRequest{ConnectorID: e.conns[i], Host: fmt.Sprintf("bench-%d", i%50)})
		leases[i] = l
		return err
	}); err != nil {
		return res, fmt.Errorf("leasing: %w", err)
	}
	var hb, rd latencies
	var beats, errs atomic.Int64
	var wg sync.WaitGroup
	for i, l := range leases {
		wg.Add(1)
		go func() { defer wg.Done(); e.heartbeats(ctx, e.agents[i%len(e.agents)], l, &hb, &beats, &errs) }()
	}
	for range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); e.reads(ctx, &rd, &errs) }()
	}
	time.Sleep(10 * time.Second) // warm-up: every connector reported a few times
	hb.reset()
	rd.reset()
	beats.Store(0)
	errs.Store(0)
	before := e.sample()
	start := time.Now()
	time.Sleep(time.Duration(e.o.seconds) * time.Second)
	after := e.sample()
	elapsed := time.Since(start).Seconds()
	cancel()
	wg.Wait()
	res.HeartbeatsPerSecond = float64(beats.Load()) / elapsed
	res.HeartbeatP50MS, _ = hb.pct(0.50)
	res.HeartbeatP99MS, _ = hb.pct(0.99)
	res.ReadP50MS, res.Reads = rd.pct(0.50)
	res.ReadP99MS, _ = rd.pct(0.99)
	res.ReadMaxMS, _ = rd.pct(1)
	res.Errors = errs.Load()
	res.ServeCPU = (after.serve - before.serve) / elapsed
	res.StoreCPU = (after.pg - before.pg) / elapsed
	res.RowsWritten = (after.rows - before.rows) / elapsed
	res.Commits = (after.commits - before.commits) / elapsed
	return res, nil
}

// heartbeats renews one lease every second (the agents' status interval), with a status that changes.
func (e *capacityEnv) heartbeats(ctx context.Context, c *client.Client, l *api.Lease, lat *latencies, beats, errs *atomic.Int64) {
	t := time.NewTimer(time.Duration(rand.Int64N(int64(time.Second))))
	defer t.Stop()
	started := time.Now().UTC()
	var n int64
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(time.Second)
		n++
		st := api.Status{State: api.StateStreaming, Revision: l.Revision, StartedAt: started, Tables: []api.TableStatus{
			{Table: "Contact", Destination: "contact", Phase: api.PhaseStreaming, Received: n * 3, Written: n * 3, Position: uint64(n)},
			{Table: "Account", Destination: "account", Phase: api.PhaseStreaming, Received: n, Written: n, Position: uint64(n)},
		}}
		ok := timed(ctx, lat, errs, func() error { _, err := c.Heartbeat(ctx, l.ID, api.Heartbeat{Status: st}); return err })
		if ctx.Err() != nil {
			return
		}
		if ok {
			beats.Add(1)
		}
	}
}

// timed makes one call, adding its latency when it succeeds and counting its error otherwise; a call cut by
// the end of the run (ctx) is neither.
func timed(ctx context.Context, lat *latencies, errs *atomic.Int64, call func() error) bool {
	t0 := time.Now()
	err := call()
	d := time.Since(t0)
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		errs.Add(1)
		return false
	}
	lat.add(d)
	return true
}

// reads makes the provider's reads of random connectors.
func (e *capacityEnv) reads(ctx context.Context, lat *latencies, errs *atomic.Int64) {
	for ctx.Err() == nil {
		id := e.conns[rand.IntN(len(e.conns))]
		for _, read := range []func() error{
			func() error { _, err := e.op.GetConnector(ctx, id); return err },
			func() error { _, err := e.op.ListMappings(ctx, id); return err },
			func() error { _, err := e.op.GetActivation(ctx, id); return err },
			func() error { _, err := e.op.Status(ctx, id); return err },
		} {
			timed(ctx, lat, errs, read)
			if ctx.Err() != nil {
				return
			}
		}
		time.Sleep(50 * time.Millisecond) // about 80 reads a second from 4 readers: a busy Terraform run
	}
}

type sample struct{ serve, pg, rows, commits float64 }

func (e *capacityEnv) sample() sample {
	var s sample
	for _, p := range e.replicas {
		s.serve += cpuSeconds(p.cmd.Process.Pid)
	}
	if e.pg == nil {
		return s
	}
	s.pg = treeCPU(e.pg.Pid())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, e.storeURL)
	if err != nil {
		return s
	}
	defer conn.Close(ctx)
	_ = conn.QueryRow(ctx, `SELECT (tup_inserted + tup_updated + tup_deleted)::float8, xact_commit::float8 FROM pg_stat_database WHERE datname = current_database()`).
		Scan(&s.rows, &s.commits)
	return s
}
