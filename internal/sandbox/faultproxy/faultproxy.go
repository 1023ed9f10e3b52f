// Package faultproxy is an in-process TCP proxy that breaks the connections it carries, on demand, the way
// real networks do: a response cut by a reset partway through, a response cut by a clean close (a truncated
// body), a response that stalls for longer than the client waits, every open connection dropped at once (a
// gRPC stream lost with its connection), and the upstream unreachable for a while (every connection attempt
// reset). It works below TLS and HTTP/2, so the client and the server see exactly what a broken network
// would show them; the chaos suite puts one in front of every sandbox listener.
//
// A "response" is a run of bytes from the upstream that follows bytes from the client (or opens the
// connection): a TLS handshake flight, an HTTP answer, a gRPC message. Faults are decided per response by a
// seeded generator, so a run can be repeated.
package faultproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Config says which faults to inject into responses. The zero value forwards everything untouched.
type Config struct {
	// ResetRate is the fraction of responses cut by a TCP reset after a random part was forwarded.
	ResetRate float64 `json:"reset_rate,omitempty"`
	// TruncateRate is the fraction of responses cut by a clean close (FIN) after a random part was
	// forwarded: the client sees a short body.
	TruncateRate float64 `json:"truncate_rate,omitempty"`
	// StallRate is the fraction of responses held back for Stall before the rest is forwarded; a zero Stall
	// holds them until the connection closes (the client's timeout is the only way out).
	StallRate float64       `json:"stall_rate,omitempty"`
	Stall     time.Duration `json:"stall,omitempty"`
	// PassFirst bytes of a cut or stalled response always pass, then a uniform number in [0, CutWithin)
	// more (CutWithin is 512 when zero): PassFirst past the headers faults a body.
	PassFirst int `json:"pass_first,omitempty"`
	CutWithin int `json:"cut_within,omitempty"`
	// Limit caps the number of faults injected (resets, truncations, stalls); 0 means no cap. Faults drawn
	// while others are in flight may pass it by a few.
	Limit int `json:"limit,omitempty"`
	// Seed seeds the generator; 0 keeps the current one.
	Seed uint64 `json:"seed,omitempty"`
}

// Counts says what the proxy did since it started.
type Counts struct {
	Connections int64 `json:"connections"`
	// Responses counts the responses seen (each one a chance for a fault).
	Responses   int64 `json:"responses"`
	Resets      int64 `json:"resets"`
	Truncations int64 `json:"truncations"`
	Stalls      int64 `json:"stalls"`
	// Refused counts connection attempts reset while the upstream was unreachable.
	Refused int64 `json:"refused"`
	// Dropped counts open connections reset by DropConnections or by the upstream becoming unreachable.
	Dropped int64 `json:"dropped"`
}

// Faults is the number of faults of every kind.
func (c Counts) Faults() int64 { return c.Resets + c.Truncations + c.Stalls + c.Refused + c.Dropped }

// Proxy forwards every connection accepted on its address to the upstream address. Safe for concurrent use.
type Proxy struct {
	ln       net.Listener
	upstream atomic.Value // string

	mu       sync.Mutex
	cfg      Config
	rng      *rand.Rand
	used     int
	down     bool
	downTill time.Time
	conns    map[*pair]struct{}
	closed   bool

	counts struct {
		connections, responses, resets, truncations, stalls, refused, dropped atomic.Int64
	}
	wg sync.WaitGroup
}

// Listen starts a proxy on addr ("127.0.0.1:0" picks a free port) forwarding to upstream, which may be set
// later with SetUpstream (a connection accepted before is refused).
func Listen(ctx context.Context, addr, upstream string) (*Proxy, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("fault proxy on %s: %w", addr, err)
	}
	p := &Proxy{ln: ln, rng: rand.New(rand.NewPCG(1, 2)), conns: map[*pair]struct{}{}}
	p.upstream.Store(upstream)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's own address, the one clients dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetUpstream changes where new connections go.
func (p *Proxy) SetUpstream(addr string) { p.upstream.Store(addr) }

// Set replaces the fault configuration (the counts keep running).
func (p *Proxy) Set(cfg Config) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cfg = cfg
	p.used = 0
	if cfg.Seed != 0 {
		p.rng = rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	}
}

// Config returns the current fault configuration.
func (p *Proxy) Config() Config {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg
}

// Counts returns what the proxy did so far.
func (p *Proxy) Counts() Counts {
	return Counts{
		Connections: p.counts.connections.Load(), Responses: p.counts.responses.Load(), Resets: p.counts.resets.Load(), Truncations: p.counts.truncations.Load(),
		Stalls: p.counts.stalls.Load(), Refused: p.counts.refused.Load(), Dropped: p.counts.dropped.Load(),
	}
}

// SetReachable makes the upstream unreachable (false): every open connection is reset and every new
// connection attempt is reset at once, until SetReachable(true).
func (p *Proxy) SetReachable(reachable bool) {
	p.mu.Lock()
	p.down, p.downTill = !reachable, time.Time{}
	p.mu.Unlock()
	if !reachable {
		p.DropConnections()
	}
}

// Down makes the upstream unreachable for d, starting now (see SetReachable).
func (p *Proxy) Down(d time.Duration) {
	p.mu.Lock()
	p.down, p.downTill = true, time.Now().Add(d)
	p.mu.Unlock()
	p.DropConnections()
}

// Reachable reports whether new connections are forwarded now.
func (p *Proxy) Reachable() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return !p.isDown()
}

// isDown reports whether the upstream is unreachable now. Caller holds mu.
func (p *Proxy) isDown() bool {
	if p.down && !p.downTill.IsZero() && !time.Now().Before(p.downTill) {
		p.down, p.downTill = false, time.Time{}
	}
	return p.down
}

// DropConnections resets every open connection (both sides see a reset) and returns how many there were.
func (p *Proxy) DropConnections() int {
	p.mu.Lock()
	open := make([]*pair, 0, len(p.conns))
	for c := range p.conns {
		open = append(open, c)
	}
	p.mu.Unlock()
	for _, c := range open {
		c.close(true)
	}
	p.counts.dropped.Add(int64(len(open)))
	return len(open)
}

// Close stops accepting, resets every open connection and waits for the proxy's goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	already := p.closed
	p.closed = true
	p.mu.Unlock()
	if already {
		return nil
	}
	err := p.ln.Close()
	p.DropConnections()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refuse := p.isDown() || p.closed
		p.mu.Unlock()
		up, _ := p.upstream.Load().(string)
		if refuse || up == "" {
			p.counts.refused.Add(1)
			resetConn(c)
			continue
		}
		p.counts.connections.Add(1)
		p.wg.Add(1)
		go p.serve(c, up)
	}
}

// pair is one proxied connection.
type pair struct {
	client, server net.Conn
	once           sync.Once
	done           chan struct{}
	// clientSpoke is set when the client sent bytes since the last response began.
	clientSpoke atomic.Bool
}

// close ends both sides, with a reset when hard.
func (c *pair) close(hard bool) {
	c.once.Do(func() {
		if hard {
			resetConn(c.client)
			resetConn(c.server)
		} else {
			_ = c.client.Close()
			_ = c.server.Close()
		}
		close(c.done)
	})
}

func (p *Proxy) serve(client net.Conn, upstream string) {
	defer p.wg.Done()
	d := net.Dialer{Timeout: 5 * time.Second}
	server, err := d.Dial("tcp", upstream)
	if err != nil {
		p.counts.refused.Add(1)
		resetConn(client)
		return
	}
	c := &pair{client: client, server: server, done: make(chan struct{})}
	c.clientSpoke.Store(true) // the first server bytes open a response
	p.mu.Lock()
	if p.closed || p.isDown() {
		p.mu.Unlock()
		c.close(true)
		return
	}
	p.conns[c] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
	}()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.upstreamToClient(c)
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := client.Read(buf)
		if n > 0 {
			c.clientSpoke.Store(true)
			if _, werr := server.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			// The client closed its side: pass the close on so the server finishes.
			if errors.Is(err, io.EOF) {
				if tc, ok := server.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
					wg.Wait()
				}
			}
			break
		}
	}
	c.close(false)
	wg.Wait()
}

type fault int

const (
	none fault = iota
	cutReset
	cutClose
	stall
)

// decide draws the fault of one response and how many of its bytes pass first.
func (p *Proxy) decide() (fault, int, time.Duration) {
	p.counts.responses.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	cfg := p.cfg
	if cfg.Limit > 0 && p.used >= cfg.Limit {
		return none, 0, 0
	}
	x := p.rng.Float64()
	var f fault
	switch {
	case x < cfg.ResetRate:
		f = cutReset
	case x < cfg.ResetRate+cfg.TruncateRate:
		f = cutClose
	case x < cfg.ResetRate+cfg.TruncateRate+cfg.StallRate:
		f = stall
	default:
		return none, 0, 0
	}
	within := cfg.CutWithin
	if within <= 0 {
		within = 512
	}
	return f, cfg.PassFirst + p.rng.IntN(within), cfg.Stall
}

// fired counts a fault against Limit; a fault drawn for a response shorter than its cut never fires.
func (p *Proxy) fired() {
	p.mu.Lock()
	p.used++
	p.mu.Unlock()
}

// upstreamToClient forwards the server's bytes, applying the fault drawn for each response.
func (p *Proxy) upstreamToClient(c *pair) {
	buf := make([]byte, 32<<10)
	var (
		f    fault
		left int // bytes of the current response that pass before its fault
		wait time.Duration
	)
	for {
		n, err := c.server.Read(buf)
		if n > 0 {
			if c.clientSpoke.Swap(false) {
				f, left, wait = p.decide()
			}
			chunk := buf[:n]
			if f != none {
				pass := min(left, len(chunk))
				if pass > 0 {
					if _, werr := c.client.Write(chunk[:pass]); werr != nil {
						c.close(true)
						return
					}
					left -= pass
					chunk = chunk[pass:]
				}
				if left == 0 && len(chunk) > 0 {
					p.fired()
					switch f {
					case cutReset:
						p.counts.resets.Add(1)
						c.close(true)
						return
					case cutClose:
						p.counts.truncations.Add(1)
						c.close(false)
						return
					case stall:
						p.counts.stalls.Add(1)
						f = none
						if !c.sleep(wait) {
							return
						}
					}
				}
			}
			if len(chunk) > 0 {
				if _, werr := c.client.Write(chunk); werr != nil {
					c.close(true)
					return
				}
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if tc, ok := c.client.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
					return
				}
			}
			c.close(!errors.Is(err, io.EOF))
			return
		}
	}
}

// sleep waits d (forever when zero) unless the connection closes first; it reports whether it is open.
func (c *pair) sleep(d time.Duration) bool {
	if d <= 0 {
		<-c.done
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.done:
		return false
	}
}

// resetConn closes c with a TCP reset (SO_LINGER 0) rather than a clean close.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
