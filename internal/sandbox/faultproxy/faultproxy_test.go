package faultproxy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faultproxy"
)

// body is what the test server answers: large enough to span several reads.
var body = bytes.Repeat([]byte("0123456789abcdef"), 8<<10)

func newProxy(t *testing.T) (*faultproxy.Proxy, string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	p, err := faultproxy.Listen(t.Context(), "127.0.0.1:0", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p, "http://" + p.Addr() + "/"
}

// get fetches url on a fresh connection with a bounded wait.
func get(t *testing.T, url string, timeout time.Duration) ([]byte, error) {
	t.Helper()
	c := http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

func TestWithoutFaultsEveryByteIsForwarded(t *testing.T) {
	p, url := newProxy(t)
	for i := 0; i < 3; i++ {
		got, err := get(t, url, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("got %d bytes, want the %d sent", len(got), len(body))
		}
	}
	if c := p.Counts(); c.Connections != 3 || c.Faults() != 0 {
		t.Errorf("counts %+v, want 3 connections and no fault", c)
	}
}

func TestAResetCutsTheResponseAndTheClientSeesAnError(t *testing.T) {
	p, url := newProxy(t)
	p.Set(faultproxy.Config{ResetRate: 1, CutWithin: 4096, Seed: 1})
	got, err := get(t, url, 5*time.Second)
	if err == nil {
		t.Fatalf("a reset response read without error (%d bytes)", len(got))
	}
	if c := p.Counts(); c.Resets != 1 {
		t.Errorf("counts %+v, want one reset", c)
	}
}

func TestATruncatedResponseIsShort(t *testing.T) {
	p, url := newProxy(t)
	// The first response of a plain HTTP connection is the answer itself: cut it after its headers.
	p.Set(faultproxy.Config{TruncateRate: 1, CutWithin: 1, Seed: 2})
	got, err := get(t, url, 5*time.Second)
	if err == nil && len(got) == len(body) {
		t.Fatal("a truncated response arrived whole")
	}
	if c := p.Counts(); c.Truncations != 1 {
		t.Errorf("counts %+v, want one truncation", c)
	}
}

func TestAStallLongerThanTheClientTimeoutFailsTheCallAndTheNextOneWorks(t *testing.T) {
	p, url := newProxy(t)
	p.Set(faultproxy.Config{StallRate: 1, Limit: 1, Seed: 3}) // one stall, held until the client gives up
	start := time.Now()
	if _, err := get(t, url, 300*time.Millisecond); err == nil {
		t.Fatal("a stalled call succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the client waited %s, past its own timeout", d)
	}
	got, err := get(t, url, 5*time.Second)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("after the stall: %d bytes, %v", len(got), err)
	}
	if c := p.Counts(); c.Stalls != 1 {
		t.Errorf("counts %+v, want one stall", c)
	}
}

func TestAShortStallDelaysButDeliversEverything(t *testing.T) {
	p, url := newProxy(t)
	p.Set(faultproxy.Config{StallRate: 1, Stall: 200 * time.Millisecond, Seed: 4})
	start := time.Now()
	got, err := get(t, url, 5*time.Second)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("stalled response: %d bytes, %v", len(got), err)
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("the response arrived after %s, before the stall ended", d)
	}
}

func TestAnUnreachableUpstreamRefusesUntilItIsBack(t *testing.T) {
	p, url := newProxy(t)
	p.SetReachable(false)
	if _, err := get(t, url, 2*time.Second); err == nil {
		t.Fatal("a call went through while the upstream was unreachable")
	}
	p.SetReachable(true)
	if _, err := get(t, url, 2*time.Second); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
	p.Down(300 * time.Millisecond)
	if p.Reachable() {
		t.Fatal("reachable during a timed outage")
	}
	deadline := time.Now().Add(2 * time.Second)
	for !p.Reachable() {
		if time.Now().After(deadline) {
			t.Fatal("the timed outage did not end")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if c := p.Counts(); c.Refused < 1 {
		t.Errorf("counts %+v, want refused connections", c)
	}
}

func TestDropConnectionsResetsLongLivedConnections(t *testing.T) {
	// An echo server keeps the connection open, as a gRPC stream does.
	var lc net.ListenConfig
	ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c) }()
		}
	}()
	p, err := faultproxy.Listen(t.Context(), "127.0.0.1:0", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	var d net.Dialer
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	c, err := d.DialContext(ctx, "tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo: %q, %v", buf, err)
	}
	if n := p.DropConnections(); n != 1 {
		t.Errorf("dropped %d connections, want 1", n)
	}
	_, err = c.Read(buf)
	if err == nil || (!errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset")) {
		t.Errorf("after the drop the client read %v, want a reset", err)
	}
}

func TestTheSameSeedInjectsTheSameFaults(t *testing.T) {
	run := func() []bool {
		p, url := newProxy(t)
		p.Set(faultproxy.Config{ResetRate: 0.5, Seed: 99})
		var out []bool
		for i := 0; i < 12; i++ {
			_, err := get(t, url, 5*time.Second)
			out = append(out, err != nil)
		}
		return out
	}
	a, b := run(), run()
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("runs with one seed differ: %v and %v", a, b)
		}
	}
}
