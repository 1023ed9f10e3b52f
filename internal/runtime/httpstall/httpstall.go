// Package httpstall bounds how long an HTTP response body may stall. http.Transport's
// ResponseHeaderTimeout bounds the wait for the headers only: a body that stops arriving halfway (a peer or
// a middlebox that keeps the connection open and sends nothing more) blocks its reader until the request's
// context ends, which for a sync that runs for months is never. Transport fails such a read once no byte
// arrived for the idle limit and aborts the exchange, so the caller sees an error it can retry.
package httpstall

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// ErrStalled is matched (errors.Is) by the error of a body read that waited longer than the idle limit.
var ErrStalled = errors.New("the response stalled")

// Transport wraps base: every read of a response body that waits longer than idle for data fails with
// ErrStalled, and the exchange is aborted (its connection closed or its HTTP/2 stream reset). Time spent
// between reads, while the caller processes what it read, does not count.
func Transport(base http.RoundTripper, idle time.Duration) http.RoundTripper {
	return &transport{base: base, idle: idle}
}

type transport struct {
	base http.RoundTripper
	idle time.Duration
}

func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		cancel(nil)
		return nil, err
	}
	resp.Body = &body{rc: resp.Body, idle: t.idle, cancel: cancel}
	return resp, nil
}

// body is a response body whose reads are bounded; like any body, it is read by one goroutine at a time.
type body struct {
	rc      io.ReadCloser
	idle    time.Duration
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	stalled atomic.Bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.stalled.Load() {
		return 0, b.err()
	}
	if b.timer == nil {
		b.timer = time.AfterFunc(b.idle, b.fire)
	} else {
		b.timer.Reset(b.idle)
	}
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if err != nil && b.stalled.Load() {
		return n, b.err()
	}
	return n, err
}

func (b *body) fire() {
	b.stalled.Store(true)
	b.cancel(ErrStalled)
}

func (b *body) err() error { return fmt.Errorf("%w: no data for %s", ErrStalled, b.idle) }

func (b *body) Close() error {
	if b.timer != nil {
		b.timer.Stop()
	}
	err := b.rc.Close()
	b.cancel(nil)
	return err
}
