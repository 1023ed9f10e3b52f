package supervisor_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/supervisor"
)

// The test binary doubles as the agent: with FAKE_AGENT_DIR set it records how it was started and behaves
// as FAKE_AGENT_MODE says.
func TestMain(m *testing.M) {
	if dir := os.Getenv("FAKE_AGENT_DIR"); dir != "" {
		os.Exit(fakeAgent(dir, os.Getenv("FAKE_AGENT_MODE")))
	}
	os.Exit(m.Run())
}

type startRecord struct {
	Args       []string  `json:"args"`
	Token      string    `json:"token"`      // CRMSYNC_TOKEN in its environment
	Credential string    `json:"credential"` // what it read from the descriptor --credential-fd names
	Env        []string  `json:"env"`
	At         time.Time `json:"at"`
	PID        int       `json:"pid"`
}

// readCredentialFD reads what the supervisor wrote into the descriptor --credential-fd names.
func readCredentialFD(args []string) string {
	for i, a := range args {
		if a == "--credential-fd" && i+1 < len(args) {
			var fd int
			if _, err := fmt.Sscan(args[i+1], &fd); err != nil {
				return "bad fd: " + err.Error()
			}
			f := os.NewFile(uintptr(fd), "credential")
			b, err := io.ReadAll(f)
			_ = f.Close()
			if err != nil {
				return "read: " + err.Error()
			}
			return strings.TrimSpace(string(b))
		}
	}
	return ""
}

func fakeAgent(dir, mode string) int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	rec := startRecord{Args: os.Args[1:], Token: os.Getenv("CRMSYNC_TOKEN"), Credential: readCredentialFD(os.Args), Env: os.Environ(),
		At: time.Now(), PID: os.Getpid()}
	b, _ := json.Marshal(rec)
	connector := ""
	for i, a := range os.Args {
		if a == "--connector" && i+1 < len(os.Args) {
			connector = os.Args[i+1]
		}
	}
	_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("start-%s-%d.json", connector, os.Getpid())), b, 0o600)
	switch mode {
	case "die":
		return 1
	case "drain-after":
		// Runs a moment, then exits 0 as an agent told to move to a new revision does.
		time.Sleep(200 * time.Millisecond)
		return 0
	case "ignore-term":
		signal.Ignore(syscall.SIGTERM)
		time.Sleep(time.Minute)
		return 0
	}
	select { // run until SIGTERM, then "drain"
	case <-term:
		_ = os.WriteFile(filepath.Join(dir, fmt.Sprintf("drained-%s-%d", connector, os.Getpid())), nil, 0o600)
		return 0
	case <-time.After(time.Minute):
		return 2
	}
}

// fakeStore answers the two reads the supervisor makes; any other call panics (nil embedded interface).
type fakeStore struct {
	store.Store
	mu     sync.Mutex
	active []string
	leases map[string]api.Lease
	lists  int // ListActive calls: one per convergence
}

func (f *fakeStore) ListActive(context.Context) ([]api.Activation, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	var out []api.Activation
	for _, id := range f.active {
		out = append(out, api.Activation{ConnectorID: id, Active: true, DesiredRevision: 1})
	}
	return out, nil
}

func (f *fakeStore) CurrentLease(_ context.Context, id string) (api.Lease, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.leases[id]; ok {
		return l, nil
	}
	return api.Lease{}, store.ErrNotFound
}

func (f *fakeStore) set(fn func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn()
}

// fakeCredentials issues one agent credential per start and records revocations.
type fakeCredentials struct {
	mu      sync.Mutex
	n       int
	issued  map[string]string // credential → agent ID
	revoked map[string]bool
}

func (f *fakeCredentials) issue(_ context.Context, connectorID string) (api.AgentCredential, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	id := fmt.Sprintf("agt_%032x", f.n)
	if f.issued == nil {
		f.issued = map[string]string{}
	}
	cred := fmt.Sprintf("%s.secret-of-%s-%d", id, connectorID, f.n)
	f.issued[cred] = id
	return api.AgentCredential{AgentID: id, Credential: cred, ConnectorID: connectorID}, nil
}

func (f *fakeCredentials) revoke(_ context.Context, agentID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked[agentID] = true
}

func (f *fakeCredentials) state(cred string) (issued, revoked bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	id, ok := f.issued[cred]
	return ok, f.revoked[id]
}

type harness struct {
	dir   string
	creds *fakeCredentials
	store *fakeStore
	sup   *supervisor.Supervisor
	stop  context.CancelFunc
	done  chan error
}

func start(t *testing.T, mode string, active []string, tweak func(*supervisor.Config)) *harness {
	t.Helper()
	dir := t.TempDir()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	fs := &fakeStore{active: active, leases: map[string]api.Lease{}}
	creds := &fakeCredentials{revoked: map[string]bool{}}
	cfg := supervisor.Config{
		Store: fs, ControlPlaneURL: "http://127.0.0.1:1", Credentials: creds.issue, Revoke: creds.revoke, Binary: bin,
		Env: []string{"FAKE_AGENT_DIR=" + dir, "FAKE_AGENT_MODE=" + mode}, Logger: slog.New(slog.DiscardHandler),
		ConvergeInterval: 50 * time.Millisecond, Backoff: 100 * time.Millisecond, MaxBackoff: time.Second,
		StopTimeout: 5 * time.Second,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	h := &harness{dir: dir, store: fs, creds: creds, sup: supervisor.New(cfg), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(t.Context())
	h.stop = cancel
	go func() { h.done <- h.sup.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-h.done:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(15 * time.Second):
			t.Error("the supervisor did not stop within 15 s")
		}
	})
	return h
}

// starts returns the recorded starts of a connector's agents, oldest first.
func (h *harness) starts(t *testing.T, connector string) []startRecord {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(h.dir, "start-"+connector+"-*.json"))
	var out []startRecord
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var r startRecord
		if err := json.Unmarshal(b, &r); err != nil {
			continue // being written
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b startRecord) int { return a.At.Compare(b.At) })
	return out
}

// converged waits until the supervisor has converged n more times: whatever it would start, it has
// started by then (a bound on "nothing happened" without a bare sleep).
func (h *harness) converged(t *testing.T, n int) {
	t.Helper()
	var from int
	h.store.set(func() { from = h.store.lists })
	waitFor(t, 10*time.Second, fmt.Sprintf("%d convergences", n), func() bool {
		var now int
		h.store.set(func() { now = h.store.lists })
		return now >= from+n
	})
}

func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Local agents get their credential without it crossing the command line or a file: each process
// gets an identity of its own, scoped to its connector, through an inherited pipe; the operator token is not
// in its environment; the identity is revoked when the process exits.
func TestLocalAgentsGetTheirCredentialThroughAPipe(t *testing.T) {
	t.Setenv("CRMSYNC_TOKEN", "operator-token-of-serve")
	h := start(t, "run", []string{"c1", "c2"}, nil)
	waitFor(t, 10*time.Second, "two agents", func() bool {
		return len(h.sup.Agents()) == 2 && len(h.starts(t, "c1")) == 1 && len(h.starts(t, "c2")) == 1
	})
	seen := map[string]bool{}
	for _, c := range []string{"c1", "c2"} {
		r := h.starts(t, c)[0]
		want := []string{"agent", "--control-plane", "http://127.0.0.1:1", "--connector", c}
		if !slices.Equal(r.Args[:len(want)], want) {
			t.Errorf("agent args %q, want them to start with %q", r.Args, want)
		}
		if issued, _ := h.creds.state(r.Credential); !issued || !strings.Contains(r.Credential, "-of-"+c+"-") {
			t.Errorf("agent of %s read %q from its descriptor; want a credential issued for it", c, r.Credential)
		}
		if seen[r.Credential] {
			t.Errorf("two agents share the credential %q", r.Credential)
		}
		seen[r.Credential] = true
		if strings.Contains(strings.Join(r.Args, " "), r.Credential) || strings.Contains(strings.Join(r.Env, " "), r.Credential) {
			t.Errorf("the credential is on the agent's command line or in its environment: %q", r.Args)
		}
		if r.Token != "" {
			t.Errorf("the agent's environment holds the operator token (CRMSYNC_TOKEN=%q)", r.Token)
		}
	}
	// An agent that exits has its identity revoked.
	h.stop()
	for cred := range seen {
		waitFor(t, 10*time.Second, "the identity to be revoked", func() bool { _, revoked := h.creds.state(cred); return revoked })
	}
}

func TestStartsOneAgentPerActiveConnectorAndNoDuplicate(t *testing.T) {
	h := start(t, "run", []string{"c1", "c2"}, nil)
	waitFor(t, 10*time.Second, "two agents", func() bool {
		return len(h.sup.Agents()) == 2 && len(h.starts(t, "c1")) == 1 && len(h.starts(t, "c2")) == 1
	})
	// Converging again (notifications and ticks) starts no duplicate.
	h.sup.Changed("c1")
	h.converged(t, 3)
	if n := len(h.starts(t, "c1")); n != 1 {
		t.Errorf("%d agents were started for one running connector", n)
	}
}

func TestRestartsADeadAgentWithGrowingDelays(t *testing.T) {
	h := start(t, "die", []string{"c1"}, nil)
	waitFor(t, 15*time.Second, "four starts", func() bool { return len(h.starts(t, "c1")) >= 4 })
	rs := h.starts(t, "c1")
	var gaps []time.Duration
	for i := 1; i < len(rs); i++ {
		gaps = append(gaps, rs[i].At.Sub(rs[i-1].At))
	}
	// Backoff 100 ms doubling: at least 100, 200, 400 ms between starts.
	for i, g := range gaps[:3] {
		if floor := 100 * time.Millisecond << i; g < floor {
			t.Errorf("restart %d came %s after the previous start, want at least %s (gaps %v)", i+1, g, floor, gaps)
		}
	}
}

func TestStartsTheNextRevisionAtOnceWhenTheOldAgentExitsCleanly(t *testing.T) {
	h := start(t, "drain-after", []string{"c1"}, func(c *supervisor.Config) {
		c.Backoff = 5 * time.Second // a clean exit must not wait for this
		c.ConvergeInterval = time.Minute
	})
	waitFor(t, 5*time.Second, "a second agent right after the first exited 0", func() bool { return len(h.starts(t, "c1")) >= 2 })
}

func TestLeavesAConnectorAloneWhileALiveAgentHoldsItsLease(t *testing.T) {
	h := start(t, "run", nil, nil)
	h.store.set(func() {
		h.store.leases["c1"] = api.Lease{ID: "L", ConnectorID: "c1", AgentID: "elsewhere", ExpiresAt: time.Now().Add(time.Hour)}
		h.store.active = []string{"c1"}
	})
	h.sup.Changed("c1")
	h.converged(t, 3)
	if n := len(h.starts(t, "c1")); n != 0 {
		t.Fatalf("%d agents started while another live agent held the lease", n)
	}
	// The other agent died: its lease expires and a local agent takes over.
	h.store.set(func() {
		h.store.leases["c1"] = api.Lease{ID: "L", ConnectorID: "c1", ExpiresAt: time.Now().Add(-time.Second)}
	})
	waitFor(t, 5*time.Second, "an agent once the lease expired", func() bool { return len(h.starts(t, "c1")) == 1 })
}

func TestDeactivatedConnectorGetsNoAgent(t *testing.T) {
	h := start(t, "drain-after", []string{"c1"}, nil)
	waitFor(t, 5*time.Second, "the first agent", func() bool { return len(h.starts(t, "c1")) == 1 })
	h.store.set(func() { h.store.active = nil })
	h.sup.Changed("c1")
	waitFor(t, 5*time.Second, "the agent to exit", func() bool { return len(h.sup.Agents()) == 0 })
	h.converged(t, 3)
	if n := len(h.starts(t, "c1")); n != 1 {
		t.Errorf("%d agents were started for a deactivated connector", n)
	}
}

func TestShutdownDrainsAgentsWithSIGTERM(t *testing.T) {
	h := start(t, "run", []string{"c1", "c2"}, nil)
	waitFor(t, 10*time.Second, "two agents", func() bool { return len(h.starts(t, "c1")) == 1 && len(h.starts(t, "c2")) == 1 })
	h.stop()
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of shutdown")
	}
	for _, c := range []string{"c1", "c2"} {
		if m, _ := filepath.Glob(filepath.Join(h.dir, "drained-"+c+"-*")); len(m) != 1 {
			t.Errorf("the agent of %s did not drain on SIGTERM", c)
		}
	}
	h.done <- nil // for the cleanup
}

func TestShutdownKillsAnAgentThatDoesNotStopInTime(t *testing.T) {
	h := start(t, "ignore-term", []string{"c1"}, func(c *supervisor.Config) { c.StopTimeout = 300 * time.Millisecond })
	waitFor(t, 10*time.Second, "the agent", func() bool { return len(h.starts(t, "c1")) == 1 })
	pid := h.starts(t, "c1")[0].PID
	began := time.Now()
	h.stop()
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10 s of shutdown")
	}
	if el := time.Since(began); el > 3*time.Second {
		t.Errorf("shutdown took %s with a 300 ms stop timeout", el)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("agent %d still runs after shutdown", pid)
	}
	h.done <- nil
}
