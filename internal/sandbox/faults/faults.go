// Package faults injects failures into a sandbox emulator's HTTP and gRPC traffic: added latency, a rate
// of 5xx (or any status) answers, connections reset mid-request, truncated bodies, and dropped gRPC streams.
// Each emulator owns one Injector, configured through its admin API or from Go tests, and wraps its handlers
// with Middleware. Faults are drawn from a seeded generator so a run can be repeated.
package faults

import (
	"bufio"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Config says which faults to inject. The zero value injects nothing.
type Config struct {
	// Latency is added before every matching request is handled.
	Latency time.Duration `json:"latency,omitempty"`
	// ErrorRate is the fraction (0..1) of matching requests answered with ErrorStatus instead of being handled.
	ErrorRate float64 `json:"error_rate,omitempty"`
	// ErrorStatus is the status of injected errors; 503 when zero.
	ErrorStatus int `json:"error_status,omitempty"`
	// RetryAfter, when set, is sent as Retry-After (whole seconds) with injected errors.
	RetryAfter time.Duration `json:"retry_after,omitempty"`
	// ResetRate is the fraction of matching requests whose connection is closed without an answer.
	ResetRate float64 `json:"reset_rate,omitempty"`
	// TruncateRate is the fraction of matching requests whose answer is cut off after TruncateAfter bytes
	// (default 64) and the connection closed.
	TruncateRate  float64 `json:"truncate_rate,omitempty"`
	TruncateAfter int     `json:"truncate_after,omitempty"`
	// StreamDropRate is the fraction of gRPC stream messages after which the stream is dropped with
	// UNAVAILABLE (consulted by gRPC servers through DropStream).
	StreamDropRate float64 `json:"stream_drop_rate,omitempty"`
	// DuplicateRate is the fraction of delivered events that are delivered a second time (a redelivery), and
	// ReorderRate the fraction of event responses whose events are delivered in reverse order (consulted by
	// the Pub/Sub server through Duplicate and Reorder).
	DuplicateRate float64 `json:"duplicate_rate,omitempty"`
	ReorderRate   float64 `json:"reorder_rate,omitempty"`
	// PathPrefix limits HTTP faults to request paths with this prefix; empty matches every path.
	PathPrefix string `json:"path_prefix,omitempty"`
	// Limit caps the number of faults injected (errors, resets, truncations, drops); 0 means no cap.
	Limit int `json:"limit,omitempty"`
	// Seed seeds the fault generator; 0 keeps the current generator.
	Seed uint64 `json:"seed,omitempty"`
}

// Counts says how many faults of each kind were injected since the last Set or Reset.
type Counts struct {
	Delayed    int64 `json:"delayed"`
	Errors     int64 `json:"errors"`
	Resets     int64 `json:"resets"`
	Truncated  int64 `json:"truncated"`
	StreamDrop int64 `json:"stream_drops"`
	Duplicates int64 `json:"duplicates"`
	Reorders   int64 `json:"reorders"`
}

// ErrorWriter writes an injected error answer in the emulated service's own error shape.
type ErrorWriter func(w http.ResponseWriter, r *http.Request, status int)

// Injector is safe for concurrent use.
type Injector struct {
	mu     sync.Mutex
	cfg    Config
	rng    *rand.Rand
	counts Counts
	used   int
}

// New returns an Injector that injects nothing until Set is called.
func New() *Injector { return &Injector{rng: rand.New(rand.NewPCG(1, 2))} }

// Set replaces the configuration and zeroes the counts.
func (i *Injector) Set(cfg Config) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.cfg = cfg
	if cfg.Seed != 0 {
		i.rng = rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	}
	i.counts = Counts{}
	i.used = 0
}

// Reset removes every fault.
func (i *Injector) Reset() { i.Set(Config{}) }

// Config returns the current configuration.
func (i *Injector) Config() Config {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.cfg
}

// Counts returns the faults injected so far.
func (i *Injector) Counts() Counts {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.counts
}

type decision int

const (
	pass decision = iota
	injectError
	injectReset
	injectTruncate
)

// draw decides the fault for one request, counting it.
func (i *Injector) draw(path string) (decision, Config) {
	i.mu.Lock()
	defer i.mu.Unlock()
	cfg := i.cfg
	if cfg.PathPrefix != "" && !strings.HasPrefix(path, cfg.PathPrefix) {
		return pass, cfg
	}
	if cfg.Latency > 0 {
		i.counts.Delayed++
	}
	if cfg.Limit > 0 && i.used >= cfg.Limit {
		return pass, cfg
	}
	x := i.rng.Float64()
	d := pass
	switch {
	case x < cfg.ResetRate:
		d, i.counts.Resets = injectReset, i.counts.Resets+1
	case x < cfg.ResetRate+cfg.ErrorRate:
		d, i.counts.Errors = injectError, i.counts.Errors+1
	case x < cfg.ResetRate+cfg.ErrorRate+cfg.TruncateRate:
		d, i.counts.Truncated = injectTruncate, i.counts.Truncated+1
	}
	if d != pass {
		i.used++
	}
	return d, cfg
}

// DropStream reports whether a gRPC stream should be dropped now; servers call it once per message sent.
func (i *Injector) DropStream() bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.cfg.StreamDropRate <= 0 || (i.cfg.Limit > 0 && i.used >= i.cfg.Limit) {
		return false
	}
	if i.rng.Float64() < i.cfg.StreamDropRate {
		i.used++
		i.counts.StreamDrop++
		return true
	}
	return false
}

// Duplicate reports whether one delivered event should be delivered again.
func (i *Injector) Duplicate() bool {
	return i.drawKind(func(c Config) float64 { return c.DuplicateRate }, &i.counts.Duplicates)
}

// Reorder reports whether a response's events should be delivered out of order.
func (i *Injector) Reorder() bool {
	return i.drawKind(func(c Config) float64 { return c.ReorderRate }, &i.counts.Reorders)
}

func (i *Injector) drawKind(rate func(Config) float64, count *int64) bool {
	i.mu.Lock()
	defer i.mu.Unlock()
	r := rate(i.cfg)
	if r <= 0 || (i.cfg.Limit > 0 && i.used >= i.cfg.Limit) {
		return false
	}
	if i.rng.Float64() < r {
		i.used++
		*count++
		return true
	}
	return false
}

// Latency returns the configured latency, for gRPC servers to apply per call.
func (i *Injector) Latency() time.Duration {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.cfg.Latency
}

// Middleware wraps next with the configured faults; errors are written by writeErr.
func (i *Injector) Middleware(next http.Handler, writeErr ErrorWriter) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d, cfg := i.draw(r.URL.Path)
		if cfg.Latency > 0 && (cfg.PathPrefix == "" || strings.HasPrefix(r.URL.Path, cfg.PathPrefix)) {
			t := time.NewTimer(cfg.Latency)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
		switch d {
		case injectReset:
			reset(w)
			return
		case injectError:
			status := cfg.ErrorStatus
			if status == 0 {
				status = http.StatusServiceUnavailable
			}
			if cfg.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int((cfg.RetryAfter+time.Second-1)/time.Second)))
			}
			writeErr(w, r, status)
			return
		case injectTruncate:
			n := cfg.TruncateAfter
			if n <= 0 {
				n = 64
			}
			tw := &truncatingWriter{ResponseWriter: w, left: n}
			next.ServeHTTP(tw, r)
			reset(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// reset closes the client connection abruptly (TCP RST where the platform allows it).
func reset(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // HTTP/2: abort the stream
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := underlyingTCP(conn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

func underlyingTCP(c net.Conn) (*net.TCPConn, bool) {
	type netConner interface{ NetConn() net.Conn }
	for {
		switch v := c.(type) {
		case *net.TCPConn:
			return v, true
		case netConner:
			c = v.NetConn()
		default:
			return nil, false
		}
	}
}

// truncatingWriter passes through the headers and the first left bytes of the body, then discards the rest.
type truncatingWriter struct {
	http.ResponseWriter
	left int
}

func (t *truncatingWriter) Write(p []byte) (int, error) {
	if t.left <= 0 {
		return len(p), nil
	}
	n := min(len(p), t.left)
	if _, err := t.ResponseWriter.Write(p[:n]); err != nil {
		return 0, err
	}
	t.left -= n
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	return len(p), nil
}

func (t *truncatingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return t.ResponseWriter.(http.Hijacker).Hijack()
}
