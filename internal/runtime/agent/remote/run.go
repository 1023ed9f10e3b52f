// Package remote runs the sync engine under a control plane: `crmsync agent --control-plane URL --connector
// ID`. It reaches the control plane only through its HTTP API (package client), so an agent started by hand
// on another host works exactly like one the supervisor of `crmsync serve` starts.
//
// Contract of Run:
//   - It acquires the connector's lease, retrying with backoff while another live agent holds it or the
//     control plane cannot be reached, and runs the agent at the lease's revision and configuration, with
//     checkpoints, dead letters and status going through the API in the lease's name (Stores).
//   - It heartbeats every TTL/3 (and soon after each status report, at most once per MinHeartbeatGap) with
//     the agent's status. An answer saying the connector is inactive, or that a revision above the agent's
//     own is desired, drains the agent (it writes what it received and commits its position), releases the
//     lease and returns nil. Cancelling ctx does the same.
//   - A lease the control plane says is lost (another agent holds it now, or the connector is gone), or one
//     that could not be renewed before it expired, trips a fence: every store call fails from then on and Run
//     returns an error wrapping ErrLeaseLost at once, without waiting for the agent; the process is expected
//     to exit, so a stale agent never writes over its successor.
//   - Every Dataverse write of the default engine asks the lease first (agent.WithWriteFence): it is refused
//     once the fence tripped or the lease's local deadline (counted from when the granting or renewing
//     request left, so never later than the control plane's) is less than a margin away. A process that
//     runs several connectors (the agent pool) therefore never writes under a lease another agent may hold,
//     even before Run returns. Each write carries LeaseTag(lease ID) in dataverse.FenceHeader.
//   - An agent that cannot run (its configuration does not fit the live schemas, a secret reference cannot
//     be resolved on this host) keeps its lease and heartbeats a failed status with the reason, until the
//     control plane asks for a new revision or deactivation: status then says why nothing is synced, and
//     the supervisor does not restart it in a loop.
package remote

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/retry"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
)

// Engine is the sync engine as the runner drives it; *agent.Agent is one.
type Engine interface {
	Run(ctx context.Context) error
	Status() api.Status
}

// NewEngineFunc builds an engine for a lease's configuration.
type NewEngineFunc func(cfg api.Config, stores agent.Stores, log *slog.Logger) (Engine, error)

// NewAgent is the default NewEngineFunc: the real sync engine.
func NewAgent(cfg api.Config, stores agent.Stores, log *slog.Logger) (Engine, error) {
	return agent.New(cfg, stores, log)
}

// Options configures Run.
type Options struct {
	Client      *client.Client
	ConnectorID string
	// AgentID is the agent's identity, which its credential says already (empty: the control plane takes it
	// from the credential).
	AgentID string
	// Host and PID describe the agent in status; the hostname and this process when empty.
	Host string
	PID  int
	// Logger receives structured logs; discarded when nil.
	Logger *slog.Logger
	// NewEngine builds the engine; when nil, agent.New with the lease's policy and AgentOptions.
	NewEngine NewEngineFunc
	// AgentOptions are passed to agent.New by the default NewEngine.
	AgentOptions []agent.Option
	// OnStart is called with the engine once it is built (to serve /status and /metrics).
	OnStart func(Engine)
	// MinHeartbeatGap is the least time between two heartbeats; 1 s when zero. Status reports trigger a
	// heartbeat sooner than TTL/3 so the control plane's view stays fresh, never more often than this.
	MinHeartbeatGap time.Duration
	// AcquireBackoffMax caps the wait between lease attempts; 15 s when zero.
	AcquireBackoffMax time.Duration
	// AcquireOnce gives up at once (ErrHeld) when another live agent holds the lease, instead of waiting for
	// it: a pool agent moves on to other work.
	AcquireOnce bool
}

// ErrHeld is Run's error with AcquireOnce when another live agent holds the connector.
var ErrHeld = errors.New("another agent holds the connector's lease")

// LeaseTag is what a lease's Dataverse writes carry in dataverse.FenceHeader: a digest of the lease ID
// (which stays between the agent and the control plane).
func LeaseTag(leaseID string) string {
	sum := sha256.Sum256([]byte(leaseID))
	return hex.EncodeToString(sum[:8])
}

// Run acquires the lease and runs the agent under it until told to stop (see the package comment).
func Run(ctx context.Context, o Options) error {
	if o.Client == nil || o.ConnectorID == "" {
		return errors.New("remote: a control plane client and a connector ID are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	defaultEngine := o.NewEngine == nil
	if o.MinHeartbeatGap <= 0 {
		o.MinHeartbeatGap = time.Second
	}
	if o.AcquireBackoffMax <= 0 {
		o.AcquireBackoffMax = 15 * time.Second
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if o.PID == 0 {
		o.PID = os.Getpid()
	}
	log := o.Logger.With("connector_id", o.ConnectorID)

	lease, sent, err := acquire(ctx, o, log)
	if err != nil {
		if ctx.Err() != nil {
			return nil //nolint:nilerr // stopped while waiting for the lease: nothing to drain, a clean stop
		}
		return err
	}
	log = log.With("agent_id", lease.AgentID, "revision", lease.Revision)
	log.Info("lease acquired", "ttl_seconds", lease.TTLSeconds)
	r := &runner{o: o, log: log, lease: lease, fence: newFence(), tag: LeaseTag(lease.ID)}
	r.stores = newStores(o.Client, lease.ID, r.fence)
	r.setExpires(sent.Add(r.ttl()))
	if defaultEngine {
		// The agent keeps to the control plane's destination and reference policy, which comes with the lease
		// (the defaults when an older control plane sends none), and writes only while the lease is its own.
		opts := append([]agent.Option{agent.WithPolicy(policy.FromAPI(lease.Policy)), agent.WithWriteFence(r.mayWrite)}, o.AgentOptions...)
		r.o.NewEngine = func(cfg api.Config, stores agent.Stores, log *slog.Logger) (Engine, error) {
			return agent.New(cfg, stores, log, opts...)
		}
	}
	return r.run(ctx)
}

// acquire asks for the lease until it is granted. It returns ctx's error when ctx ends first, and an error
// for refusals that waiting cannot change (unknown connector, bad token). sent is when the granting request
// left, the safe start of the lease's lifetime on this host's clock.
func acquire(ctx context.Context, o Options, log *slog.Logger) (*api.Lease, time.Time, error) {
	req := api.LeaseRequest{ConnectorID: o.ConnectorID, AgentID: o.AgentID, Host: o.Host, PID: o.PID}
	// 500 to 750 ms, doubling up to AcquireBackoffMax (and half of it more at random).
	backoff := retry.Policy{Base: 750 * time.Millisecond, Max: o.AcquireBackoffMax * 3 / 2, Jitter: 1.0 / 3}
	for attempt := 1; ; attempt++ {
		sent := time.Now()
		// The request is not cancelled with ctx: a lease granted while the agent was told to stop would stay
		// held until it expired. The run that follows sees ctx ended and releases it at once.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		lease, err := o.Client.AcquireLease(actx, req)
		cancel()
		if err == nil {
			return lease, sent, nil
		}
		if ctx.Err() != nil {
			return nil, time.Time{}, ctx.Err()
		}
		switch {
		case errors.Is(err, client.ErrConflict) && o.AcquireOnce:
			return nil, time.Time{}, fmt.Errorf("connector %s: %w (%w)", o.ConnectorID, ErrHeld, err)
		case errors.Is(err, client.ErrConflict):
			if attempt == 1 {
				log.Info("another agent holds the connector's lease; waiting for it", "err", err)
			}
		case transient(err):
			log.Warn("cannot reach the control plane for a lease; retrying", "err", err, "attempt", attempt)
		default:
			return nil, time.Time{}, fmt.Errorf("acquiring the lease of connector %s: %w", o.ConnectorID, err)
		}
		if err := retry.Sleep(ctx, backoff.Delay(attempt-1)); err != nil {
			return nil, time.Time{}, err
		}
	}
}

type runner struct {
	o      Options
	log    *slog.Logger
	lease  *api.Lease
	fence  *fence
	stores *Stores

	tag string // LeaseTag of the lease

	engine  Engine
	failed  *api.Status  // the status reported when the engine could not be built or stopped on its own
	expires atomic.Int64 // local-clock deadline of the lease (Unix ns): renewed by each successful heartbeat
	lastHB  time.Time
}

func (r *runner) setExpires(t time.Time) { r.expires.Store(t.UnixNano()) }

func (r *runner) deadline() time.Time { return time.Unix(0, r.expires.Load()) }

// mayWrite is the engine's write fence: the lease must not be lost and its local deadline must be more than
// a margin away (a tenth of the TTL, at most 2 s: the time a write may take to arrive).
func (r *runner) mayWrite() (string, error) {
	if err := r.fence.check(); err != nil {
		return "", err
	}
	margin := min(r.ttl()/10, 2*time.Second)
	if time.Until(r.deadline()) < margin {
		return "", fmt.Errorf("%w: its renewal is overdue (it expires at %s)", ErrLeaseLost, r.deadline().Format(time.RFC3339Nano))
	}
	return r.tag, nil
}

func (r *runner) ttl() time.Duration {
	ttl := time.Duration(r.lease.TTLSeconds * float64(time.Second))
	if ttl <= 0 {
		ttl = 30 * time.Second
	}
	return ttl
}

func (r *runner) run(ctx context.Context) error {
	// The agent's context is ours to cancel: a signal to this process drains it, but so does a heartbeat
	// answer, and the heartbeats must go on while it drains.
	agentCtx, cancelAgent := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelAgent()
	l := &runLoop{r: r, ctx: ctx, cancelAgent: cancelAgent, engineDone: r.startEngine(agentCtx)}
	defer l.stopGap()
	tick := time.NewTicker(r.ttl() / 3)
	defer tick.Stop()
	done := ctx.Done()
	for {
		kick, gap := l.waits()
		select {
		case <-done:
			done = nil
			l.stop("signal")
			if l.engineDone == nil {
				return r.release(ctx, l.why)
			}
			continue
		case <-r.fence.lost:
			return r.lost(cancelAgent, errors.New("a store call was refused"))
		case err := <-l.engineDone:
			if end, ret := l.engineEnded(err); end {
				return ret
			}
			continue
		case <-kick:
			if time.Since(r.lastHB) < r.o.MinHeartbeatGap {
				l.pending = true
				continue
			}
		case <-gap:
		case <-tick.C:
		}
		l.pending = false
		if end, ret := l.beat(); end {
			return ret
		}
	}
}

// startEngine builds the agent at the lease's revision and runs it; the channel gets what Run returned. An
// agent that cannot be built is reported failed (nil channel) until the configuration changes.
func (r *runner) startEngine(ctx context.Context) chan error {
	cfg := r.lease.Config
	cfg.Revision = r.lease.Revision
	eng, err := r.o.NewEngine(cfg, r.stores.AgentStores(), r.log)
	if err != nil {
		r.log.Error("the agent cannot start; reporting it until the configuration changes", "err", err)
		r.failed = &api.Status{State: api.StateFailed, Reason: err.Error(), Revision: r.lease.Revision, StartedAt: time.Now().UTC()}
		return nil
	}
	r.engine = eng
	if r.o.OnStart != nil {
		r.o.OnStart(eng)
	}
	done := make(chan error, 1)
	go func() { done <- eng.Run(ctx) }()
	return done
}

// runLoop is run's state: the agent's end (nil once it ended or when it never started), whether it drains
// and why, and a status report waiting for MinHeartbeatGap to pass since the last heartbeat.
type runLoop struct {
	r           *runner
	ctx         context.Context // the run's, for the heartbeats and the release
	cancelAgent context.CancelFunc
	engineDone  chan error
	draining    bool
	why         string
	pending     bool
	gapTimer    *time.Timer
}

// stop drains the agent (once).
func (l *runLoop) stop(reason string) {
	if !l.draining {
		l.draining, l.why = true, reason
		l.r.log.Info("stopping the agent: draining and committing", "why", reason)
		l.cancelAgent()
	}
}

func (l *runLoop) stopGap() {
	if l.gapTimer != nil {
		l.gapTimer.Stop()
		l.gapTimer = nil
	}
}

// waits are what the loop waits for besides the ticker: the stores' kick, or the end of the gap before a
// pending report.
func (l *runLoop) waits() (kick <-chan struct{}, gap <-chan time.Time) {
	l.stopGap()
	if l.pending {
		l.gapTimer = time.NewTimer(max(0, l.r.o.MinHeartbeatGap-time.Since(l.r.lastHB)))
		return nil, l.gapTimer.C
	}
	return l.r.stores.kick, nil
}

// engineEnded handles the agent's end: drained (the final status is sent and the lease released: the run
// ends), or stopped on its own (its mappings do not fit the live schemas: the lease is kept and the reason
// reported until the configuration changes).
func (l *runLoop) engineEnded(err error) (end bool, ret error) {
	l.engineDone = nil
	if l.draining {
		_, _ = l.r.heartbeat(l.ctx)
		return true, l.r.release(l.ctx, l.why)
	}
	st := l.r.engine.Status()
	if err != nil && st.Reason == "" {
		st.State, st.Reason = api.StateFailed, err.Error()
	}
	l.r.failed = &st
	l.r.log.Error("the agent stopped; reporting it until the configuration changes", "err", err)
	return false, nil
}

// beat sends a heartbeat and acts on the answer: a lost lease stops at once; an answer saying to stop drains.
func (l *runLoop) beat() (end bool, ret error) {
	r := l.r
	reason, err := r.heartbeat(l.ctx)
	if err != nil {
		if errors.Is(err, ErrLeaseLost) {
			return true, r.lost(l.cancelAgent, err)
		}
		if time.Now().After(r.deadline()) {
			// Another agent may hold the connector by now: stop before writing anything more.
			return true, r.lost(l.cancelAgent, fmt.Errorf("the lease expired at %s without renewal (%w)", r.deadline().Format(time.RFC3339), err))
		}
		r.log.Warn("heartbeat failed; retrying", "err", err, "lease_expires", r.deadline())
		return false, nil
	}
	if reason != "" {
		l.stop(reason)
		if l.engineDone == nil {
			return true, r.release(l.ctx, l.why)
		}
	}
	return false, nil
}

// heartbeat renews the lease with the current status. It returns why the agent should stop when the
// answer says so (deactivated, or a newer revision desired), and trips the fence when the lease is lost.
func (r *runner) heartbeat(ctx context.Context) (string, error) {
	hctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), max(r.ttl()/3, 2*time.Second))
	defer cancel()
	sent := time.Now()
	r.lastHB = sent
	resp, err := r.o.Client.Heartbeat(hctx, r.lease.ID, api.Heartbeat{Status: r.status()})
	if err != nil {
		if errors.Is(err, ErrLeaseLost) {
			r.fence.trip()
		}
		return "", err
	}
	r.setExpires(sent.Add(leaseLeft(r.ttl(), resp.ExpiresInSeconds)))
	if rq, ok := r.engine.(interface{ RequestReconcile(id int64) }); ok && resp.ReconcileRequestID > 0 {
		rq.RequestReconcile(resp.ReconcileRequestID) // carried out in the background; never blocks
	}
	switch {
	case !resp.Active:
		return "the connector was deactivated", nil
	case resp.DesiredRevision > r.lease.Revision:
		return fmt.Sprintf("revision %d is desired (this agent runs %d)", resp.DesiredRevision, r.lease.Revision), nil
	}
	return "", nil
}

// leaseLeft is how long the lease lasts from when its heartbeat was sent: what the answer says is left when
// it says (a control plane that renews only when due), else the TTL (one that renewed it); never more than
// the TTL. Counting it from the sending, not the answer, keeps the local deadline before the store's.
func leaseLeft(ttl time.Duration, expiresIn float64) time.Duration {
	if expiresIn <= 0 {
		return ttl
	}
	return min(ttl, time.Duration(expiresIn*float64(time.Second)))
}

func (r *runner) status() api.Status {
	if r.failed != nil {
		return *r.failed
	}
	if r.engine != nil {
		return r.engine.Status()
	}
	st, _ := r.stores.lastStatus()
	return st
}

// release gives the lease back so the next agent starts without waiting for it to expire.
func (r *runner) release(ctx context.Context, why string) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.o.Client.ReleaseLease(rctx, r.lease.ID); err != nil && !errors.Is(err, ErrLeaseLost) && !isNotFound(err) {
		r.log.Warn("releasing the lease failed; it will expire on its own", "err", err)
	}
	r.log.Info("agent stopped", "why", why)
	return nil
}

func (r *runner) lost(cancelAgent context.CancelFunc, cause error) error {
	r.fence.trip()
	cancelAgent()
	r.log.Error("the lease is lost: stopping at once", "err", cause)
	if errors.Is(cause, ErrLeaseLost) {
		return fmt.Errorf("connector %s: %w", r.o.ConnectorID, cause)
	}
	return fmt.Errorf("connector %s: %w: %w", r.o.ConnectorID, ErrLeaseLost, cause)
}

func isNotFound(err error) bool {
	var ce *client.Error
	return errors.As(err, &ce) && ce.Status == http.StatusNotFound
}
