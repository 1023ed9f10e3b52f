// Package supervisor deploys agents for `crmsync serve`: for every active connector without a live lease it
// starts a local `crmsync agent --control-plane URL --connector ID` process and restarts it with backoff when
// it dies.
//
// Contracts:
//   - The supervisor decides only whether a connector needs a process; the rollout is the agents' heartbeat
//     protocol (package remote). A deactivated connector's agent drains, commits and exits 0 after its next
//     heartbeat; an agent whose revision is older than the desired one does the same, and the supervisor
//     then starts the new revision at once (it is not a failure). The new agent resumes from the checkpoints
//     the old one committed, so a config change neither loses nor duplicates data.
//   - A connector whose lease is held by a live agent the supervisor did not start (one started by hand on
//     another host, or one left running by a control plane that was killed and restarted) gets no second
//     agent: the running one re-attaches by heartbeat.
//   - An agent that exits non-zero is restarted after a delay that doubles with each failure in a row (up
//     to MaxBackoff) and resets once a run lasted StableAfter.
//   - Each agent process gets an identity of its own, scoped to its connector (Credentials), through an
//     inherited pipe (--credential-fd): never on its command line, in its environment or in a file. The
//     operator token is not in its environment. The identity is revoked (Revoke) when the process exits.
//   - When Run's context ends, every agent it started gets SIGTERM (it drains and commits) and, after
//     StopTimeout, SIGKILL; Run returns once they have all exited.
//   - Changed never blocks; Run also converges every ConvergeInterval, so a missed notification (or a
//     lease that expired) is noticed anyway.
package supervisor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/retry"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
)

// Store is what the supervisor reads: the active connectors and their current leases.
type Store interface {
	store.Activations
	store.Leases
}

// Config configures a Supervisor.
type Config struct {
	Store Store
	// ControlPlaneURL is the API's base URL as agents on this host reach it, e.g. https://127.0.0.1:8787.
	ControlPlaneURL string
	// Credentials issues the agent credential of one agent process for a connector; Revoke ends it when the
	// process has exited.
	Credentials func(ctx context.Context, connectorID string) (api.AgentCredential, error)
	Revoke      func(ctx context.Context, agentID string)
	// CAFile is the CA agents trust for the control plane's TLS certificate (empty: the system roots).
	CAFile string
	// Binary is the crmsync executable; os.Executable() when empty.
	Binary string
	// AgentArgs are appended to each agent's command line (e.g. --log-format json).
	AgentArgs []string
	// Env is added to each agent's environment, after this process's own (secrets referenced by *_env are
	// resolved by the agent from it).
	Env []string
	// Environ filters this process's environment before it is given to an agent (crmsync serve keeps what
	// the reference policy allows); all of it when nil.
	Environ func([]string) []string
	// Logger receives the supervisor's logs; discarded when nil.
	Logger *slog.Logger
	// Output receives the agents' stdout and stderr; os.Stderr when nil.
	Output io.Writer
	// ConvergeInterval is how often the active connectors are re-read and the agents brought in line with
	// them (converge); 5 s when zero.
	ConvergeInterval time.Duration
	// StopTimeout bounds the agents' drain at shutdown before they are killed; 30 s when zero.
	StopTimeout time.Duration
	// Backoff is the first restart delay after a failure, doubling up to MaxBackoff; 1 s and 1 min when zero.
	Backoff, MaxBackoff time.Duration
	// StableAfter is how long a run must last for its failure count to reset; 1 min when zero.
	StableAfter time.Duration
}

// Supervisor starts and restarts local agent processes. Changed may be called from any goroutine.
type Supervisor struct {
	cfg     Config
	log     *slog.Logger
	changed chan struct{}
	exits   chan *child

	mu     sync.Mutex
	slots  map[string]*slot // by connector ID; owned by Run, read by Agents under mu
	closed chan struct{}    // closed when Run has returned (exit notifications stop)
}

// slot is one connector's local agent and its restart state.
type slot struct {
	child     *child
	failures  int
	nextStart time.Time
	starts    int
}

// child is one agent process.
type child struct {
	connectorID string
	cmd         *exec.Cmd
	started     time.Time
	done        chan struct{} // closed when the process has exited
	err         error         // the exit status, set before done is closed
}

// Agent describes a running agent process.
type Agent struct {
	ConnectorID string
	PID         int
	StartedAt   time.Time
	// Starts counts the processes started for the connector since the supervisor started.
	Starts int
}

// New returns a Supervisor; it starts nothing until Run.
func New(cfg Config) *Supervisor {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Output == nil {
		cfg.Output = os.Stderr
	}
	if cfg.ConvergeInterval <= 0 {
		cfg.ConvergeInterval = 5 * time.Second
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 30 * time.Second
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = time.Minute
	}
	if cfg.StableAfter <= 0 {
		cfg.StableAfter = time.Minute
	}
	return &Supervisor{
		cfg: cfg, log: cfg.Logger.With("component", "supervisor"),
		changed: make(chan struct{}, 1), exits: make(chan *child),
		slots: map[string]*slot{}, closed: make(chan struct{}),
	}
}

// Changed tells the supervisor that a connector's desired state may have changed (activated, deactivated,
// a new revision). It implements controlplane.Deployer and never blocks.
func (s *Supervisor) Changed(connectorID string) {
	s.log.Debug("connector changed", "connector_id", connectorID)
	select {
	case s.changed <- struct{}{}:
	default: // a convergence is already pending; it reads every connector
	}
}

// Agents lists the agent processes running now, by connector ID.
func (s *Supervisor) Agents() []Agent {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Agent
	for id, sl := range s.slots {
		if sl.child != nil {
			out = append(out, Agent{ConnectorID: id, PID: sl.child.cmd.Process.Pid, StartedAt: sl.child.started, Starts: sl.starts})
		}
	}
	slices.SortFunc(out, func(a, b Agent) int { return strings.Compare(a.ConnectorID, b.ConnectorID) })
	return out
}

// Run supervises until ctx ends, then stops the agents it started (see the package comment).
func (s *Supervisor) Run(ctx context.Context) error {
	if s.cfg.Store == nil || s.cfg.ControlPlaneURL == "" || s.cfg.Credentials == nil {
		return errors.New("supervisor: a store, the control plane URL and a credential issuer are required")
	}
	if s.cfg.Binary == "" {
		bin, err := os.Executable()
		if err != nil {
			return fmt.Errorf("supervisor: finding the crmsync binary: %w", err)
		}
		s.cfg.Binary = bin
	}
	defer close(s.closed)
	tick := time.NewTicker(s.cfg.ConvergeInterval)
	defer tick.Stop()
	// wake fires when the earliest restart delay has passed.
	wake := time.NewTimer(0)
	defer wake.Stop()
	for {
		if next := s.converge(ctx); !next.IsZero() {
			wake.Reset(max(0, time.Until(next)))
		}
		select {
		case <-ctx.Done():
			s.stopAll()
			return nil
		case <-s.changed:
		case <-tick.C:
		case <-wake.C:
		case c := <-s.exits:
			s.exited(c)
		}
	}
}

// converge starts an agent for every active connector that has none, unless a live agent holds its lease or
// its restart delay has not passed. It returns the earliest pending restart (zero: none).
func (s *Supervisor) converge(ctx context.Context) time.Time {
	acts, err := s.cfg.Store.ListActive(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("listing active connectors", "err", err)
		}
		return time.Time{}
	}
	var next time.Time
	now := time.Now()
	for _, act := range acts {
		id := act.ConnectorID
		if b := act.Backup; b != nil && b.Blocking && b.State != api.BackupComplete && b.State != api.BackupCancelled {
			// The first activation's backup runs before any write; the API says when it is done.
			s.log.Debug("backing up before the first sync; not starting the agent yet", "connector_id", id, "backup_id", b.ID)
			continue
		}
		s.mu.Lock()
		sl := s.slots[id]
		if sl == nil {
			sl = &slot{}
			s.slots[id] = sl
		}
		running, due := sl.child != nil, sl.nextStart
		s.mu.Unlock()
		if running {
			continue
		}
		if now.Before(due) {
			if next.IsZero() || due.Before(next) {
				next = due
			}
			continue
		}
		lease, err := s.cfg.Store.CurrentLease(ctx, id)
		switch {
		case err == nil && lease.ExpiresAt.After(now):
			s.log.Debug("a live agent holds the lease; not starting another", "connector_id", id, "agent_id", lease.AgentID)
			continue
		case err != nil && !errors.Is(err, store.ErrNotFound):
			s.log.Error("reading the lease", "connector_id", id, "err", err)
			continue
		}
		s.start(ctx, id)
	}
	return next
}

// credentialFD is the descriptor an agent reads its credential from: the first of exec.Cmd.ExtraFiles.
const credentialFD = 3

// start launches one agent process for a connector, with an identity of its own.
func (s *Supervisor) start(ctx context.Context, connectorID string) {
	log := s.log.With("connector_id", connectorID)
	s.mu.Lock()
	sl := s.slots[connectorID]
	s.mu.Unlock()
	failed := func(msg string, err error) {
		log.Error(msg, "err", err, "binary", s.cfg.Binary)
		s.mu.Lock()
		sl.failures++
		sl.nextStart = time.Now().Add(s.backoff(sl.failures))
		s.mu.Unlock()
	}
	cred, err := s.cfg.Credentials(ctx, connectorID)
	if err != nil {
		failed("issuing an agent credential", err)
		return
	}
	revoke := func() {
		if s.cfg.Revoke != nil {
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			s.cfg.Revoke(rctx, cred.AgentID)
		}
	}
	// The credential goes through a pipe the agent inherits: it reads it once and the pipe is gone.
	r, w, err := os.Pipe()
	if err != nil {
		revoke()
		failed("creating the credential pipe", err)
		return
	}
	args := []string{"agent", "--control-plane", s.cfg.ControlPlaneURL, "--connector", connectorID, "--credential-fd", strconv.Itoa(credentialFD)}
	if s.cfg.CAFile != "" {
		args = append(args, "--ca-file", s.cfg.CAFile)
	}
	args = append(args, s.cfg.AgentArgs...)
	cmd := exec.Command(s.cfg.Binary, args...) //nolint:gosec // our own binary, arguments we built
	env := os.Environ()
	if s.cfg.Environ != nil {
		env = s.cfg.Environ(env)
	}
	// Nothing of the operator's credential reaches an agent.
	cmd.Env = append(withoutVar(env, "CRMSYNC_TOKEN"), s.cfg.Env...)
	cmd.ExtraFiles = []*os.File{r}
	cmd.Stdout, cmd.Stderr = s.cfg.Output, s.cfg.Output
	configure(cmd)
	err = cmd.Start()
	_ = r.Close() // the child has its copy
	if err != nil {
		_ = w.Close()
		revoke()
		failed("starting an agent", err)
		return
	}
	// A pipe holds far more than a credential: the write does not wait for the agent to read.
	_, werr := io.WriteString(w, cred.Credential+"\n")
	if cerr := w.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		log.Error("handing the agent its credential", "err", werr)
	}
	c := &child{connectorID: connectorID, cmd: cmd, started: time.Now(), done: make(chan struct{})}
	s.mu.Lock()
	sl.child = c
	sl.starts++
	s.mu.Unlock()
	log.Info("agent started", "pid", cmd.Process.Pid, "agent_id", cred.AgentID)
	go func() {
		c.err = cmd.Wait()
		revoke() // the process is gone: so is its identity (and any lease it still held)
		close(c.done)
		select {
		case s.exits <- c:
		case <-s.closed:
		}
	}()
}

// exited records an agent's exit and schedules its restart.
func (s *Supervisor) exited(c *child) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sl := s.slots[c.connectorID]
	if sl == nil || sl.child != c {
		return
	}
	sl.child = nil
	ran := time.Since(c.started)
	log := s.log.With("connector_id", c.connectorID, "pid", c.cmd.Process.Pid, "ran", ran.Round(time.Millisecond))
	if c.err == nil {
		// Drained on the control plane's word (deactivated, or a newer revision to start): not a failure.
		sl.failures, sl.nextStart = 0, time.Time{}
		log.Info("agent exited")
		return
	}
	if ran >= s.cfg.StableAfter {
		sl.failures = 0
	}
	sl.failures++
	d := s.backoff(sl.failures)
	sl.nextStart = time.Now().Add(d)
	log.Warn("agent died; restarting after a delay", "err", c.err, "failures", sl.failures, "delay", d)
}

func (s *Supervisor) backoff(failures int) time.Duration {
	return retry.Policy{Base: s.cfg.Backoff, Max: s.cfg.MaxBackoff}.Delay(failures - 1)
}

// stopAll asks every agent to drain (SIGTERM) and kills those still running after StopTimeout.
func (s *Supervisor) stopAll() {
	s.mu.Lock()
	var children []*child
	for _, sl := range s.slots {
		if sl.child != nil {
			children = append(children, sl.child)
		}
	}
	s.mu.Unlock()
	if len(children) == 0 {
		return
	}
	s.log.Info("stopping agents", "count", len(children), "timeout", s.cfg.StopTimeout)
	for _, c := range children {
		if err := terminate(c.cmd.Process); err != nil {
			s.log.Warn("signalling an agent", "connector_id", c.connectorID, "err", err)
		}
	}
	deadline := time.NewTimer(s.cfg.StopTimeout)
	defer deadline.Stop()
	for _, c := range children {
		select {
		case <-c.done:
		case <-deadline.C:
			s.log.Warn("agent did not stop in time; killing it", "connector_id", c.connectorID, "pid", c.cmd.Process.Pid)
			_ = c.cmd.Process.Kill()
			<-c.done
			// The deadline has fired: the remaining agents get no more time either.
			deadline.Reset(0)
		}
	}
	s.mu.Lock()
	for _, sl := range s.slots {
		sl.child = nil
	}
	s.mu.Unlock()
}

func withoutVar(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}
