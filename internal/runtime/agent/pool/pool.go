// Package pool runs a pool agent: `crmsync agent --control-plane URL[,URL…]` without --connector. The
// process checks in with the control plane every few seconds (POST /v1/agent/pool), leases the connectors
// the answer offers, up to MaxConnectors, and runs each under package remote, as `crmsync agent --connector`
// would; it drains and releases the connectors the answer asks back, and all of them when it stops.
//
// One process, a goroutine set per connector (not a child process each): a connector's engine costs its
// clients, buffers and goroutines, not a Go runtime, and the lease's write fence (remote: every Dataverse
// write asks the lease first) keeps a connector whose lease is lost from writing while its goroutines wind
// down, which is what the process exit gave the one-connector agent. docs/scaling.md has the measurements.
//
// Contracts:
//   - No connector runs twice: every connector is leased (remote.Run with AcquireOnce), and a lease another
//     agent holds is skipped; the control plane's answer only steers.
//   - A connector whose run ends (deactivated, a new revision desired, its lease lost) frees its slot at
//     once and the agent checks in again at once, so a new revision restarts here or elsewhere within a
//     check-in. A run that fails otherwise is not taken again by this agent for a cool-down (Backoff).
//   - Cancelling Run's context drains: the agent checks in as draining (it takes nothing), every connector
//     drains, commits and releases its lease, then Run returns.
//   - A control plane that cannot be reached leaves the running connectors alone (their leases renew through
//     whichever replica answers); check-ins go on with backoff.
//
// Balancing (the control plane's side, controlplane.balance): each live member's fair share is the active
// connectors over the members, capped by MaxConnectors. This is Kafka Connect's incremental cooperative
// rebalancing in miniature: only the excess moves, and a member gives back only towards one with room.
package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/retry"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/remote"
)

// Options configures Run.
type Options struct {
	Client *client.Client
	// MaxConnectors is how many connectors this agent runs at most (1 when zero).
	MaxConnectors int
	// Host names this process to the control plane; the hostname when empty.
	Host string
	// Remote is the template of each connector's remote.Options (Client, ConnectorID, Host, AcquireOnce
	// and Logger are set per connector).
	Remote remote.Options
	// Run runs one connector; remote.Run when nil (tests replace it).
	Run func(ctx context.Context, o remote.Options) error
	// Backoff is how long a connector whose run failed is left alone; 30 s when zero.
	Backoff time.Duration
	// OnChange is called when a connector starts or stops running here (for /status and /metrics).
	OnChange func(connectorID string, running bool)
	Logger   *slog.Logger
}

// slot is one running connector.
type slot struct {
	cancel context.CancelFunc
	done   chan struct{}
}

type pool struct {
	o     Options
	log   *slog.Logger
	mu    sync.Mutex
	slots map[string]*slot
	cool  map[string]time.Time // connector → not before
	ended chan string          // a connector's run ended
	wg    sync.WaitGroup
}

// Run runs the pool agent until ctx ends, then drains (see the package comment).
func Run(ctx context.Context, o Options) error {
	if o.Client == nil {
		return errors.New("pool: a control plane client is required")
	}
	if o.MaxConnectors <= 0 {
		o.MaxConnectors = 1
	}
	if o.Host == "" {
		o.Host, _ = os.Hostname()
	}
	if o.Run == nil {
		o.Run = remote.Run
	}
	if o.Backoff <= 0 {
		o.Backoff = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	p := &pool{o: o, log: o.Logger.With("component", "pool", "host", o.Host), slots: map[string]*slot{},
		cool: map[string]time.Time{}, ended: make(chan string, o.MaxConnectors+1)}
	p.log.Info("pool agent started", "max_connectors", o.MaxConnectors, "control_plane", o.Client.Endpoints())
	err := p.loop(ctx)
	p.drain(context.WithoutCancel(ctx))
	return err
}

// loop checks in until ctx ends.
func (p *pool) loop(ctx context.Context) error {
	wait, failures, poll := time.Duration(0), 0, 5*time.Second
	for {
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case id := <-p.ended:
			t.Stop()
			p.reap(id)
		case <-t.C:
		}
		ans, err := p.checkIn(ctx, false)
		if err != nil {
			if ctx.Err() != nil {
				return nil //nolint:nilerr // stopped during a check-in: the drain follows
			}
			// Backoff up to one check-in interval: a check-in is cheap, and the agent must learn soon when
			// the control plane is back.
			failures++
			wait = retry.Policy{Base: 100 * time.Millisecond, Max: poll}.Delay(failures)
			if errors.Is(err, client.ErrUnauthenticated) || errors.Is(err, client.ErrForbidden) {
				return fmt.Errorf("the control plane refuses this agent's credential: %w", err)
			}
			p.log.Warn("pool check-in failed; the running connectors go on", "err", err, "retry_in", wait)
			continue
		}
		failures = 0
		p.apply(ctx, ans)
		if p := time.Duration(ans.PollSeconds * float64(time.Second)); p > 0 {
			poll = p
		}
		// Jitter spreads the members' check-ins.
		wait = retry.Policy{Base: poll, Jitter: 0.2}.Delay(0)
	}
}

func (p *pool) checkIn(ctx context.Context, draining bool) (*api.PoolAnswer, error) {
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	return p.o.Client.PoolCheckIn(cctx, api.PoolRequest{Host: p.o.Host, MaxConnectors: p.o.MaxConnectors,
		Running: p.running(), Draining: draining})
}

func (p *pool) running() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	ids := make([]string, 0, len(p.slots))
	for id := range p.slots {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// apply releases what the answer asks back and starts what it offers, within MaxConnectors.
func (p *pool) apply(ctx context.Context, ans *api.PoolAnswer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range ans.Release {
		if s, ok := p.slots[id]; ok {
			p.log.Info("giving a connector back for balance", "connector_id", id, "members", ans.Members)
			s.cancel()
		}
	}
	now := time.Now()
	for _, id := range ans.Take {
		if len(p.slots) >= p.o.MaxConnectors {
			break
		}
		if _, ok := p.slots[id]; ok || now.Before(p.cool[id]) {
			continue
		}
		p.start(ctx, id)
	}
}

// start runs one connector in its goroutine set; p.mu is held.
func (p *pool) start(ctx context.Context, id string) {
	rctx, cancel := context.WithCancel(ctx)
	s := &slot{cancel: cancel, done: make(chan struct{})}
	p.slots[id] = s
	o := p.o.Remote
	o.Client, o.ConnectorID, o.Host, o.AcquireOnce = p.o.Client, id, p.o.Host, true
	o.Logger = p.o.Logger
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(s.done)
		if p.o.OnChange != nil {
			p.o.OnChange(id, true)
		}
		err := p.o.Run(rctx, o)
		if p.o.OnChange != nil {
			p.o.OnChange(id, false)
		}
		p.finished(id, err)
		select {
		case p.ended <- id:
		default: // a check-in is due anyway
		}
	}()
}

// finished records how a connector's run ended.
func (p *pool) finished(id string, err error) {
	switch {
	case err == nil:
		p.log.Info("connector stopped here", "connector_id", id)
	case errors.Is(err, remote.ErrHeld):
		p.log.Debug("another agent took the connector first", "connector_id", id)
	case errors.Is(err, remote.ErrLeaseLost):
		p.log.Warn("the connector's lease was lost: it stopped here and runs elsewhere", "connector_id", id, "err", err)
	default:
		p.log.Error("the connector's run failed; leaving it to other agents for a while", "connector_id", id, "err", err, "backoff", p.o.Backoff)
		p.mu.Lock()
		p.cool[id] = time.Now().Add(p.o.Backoff)
		p.mu.Unlock()
	}
}

// reap frees the slot of a connector whose run ended.
func (p *pool) reap(id string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s, ok := p.slots[id]; ok {
		select {
		case <-s.done:
			delete(p.slots, id)
		default:
		}
	}
	for cid, s := range p.slots { // runs that ended while ended was full
		select {
		case <-s.done:
			delete(p.slots, cid)
		default:
		}
	}
}

// drain tells the control plane this agent is leaving, stops every connector (each drains, commits and
// releases its lease) and waits for them.
func (p *pool) drain(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := p.checkIn(ctx, true); err != nil {
		p.log.Warn("telling the control plane this agent drains", "err", err)
	}
	p.mu.Lock()
	n := len(p.slots)
	for _, s := range p.slots {
		s.cancel()
	}
	p.mu.Unlock()
	p.log.Info("pool agent draining", "connectors", n)
	p.wg.Wait()
	p.log.Info("pool agent stopped")
}
