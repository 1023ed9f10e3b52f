package httpstall_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/httpstall"
)

// TestABodyThatStallsHalfwayFailsAfterTheIdleLimit: the server sends half an answer and then nothing,
// keeping the connection open; the read fails with ErrStalled after the idle limit instead of hanging.
func TestABodyThatStallsHalfwayFailsAfterTheIdleLimit(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("x", 1000))
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := &http.Client{Transport: httpstall.Transport(http.DefaultTransport, 300*time.Millisecond)}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start := time.Now()
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, httpstall.ErrStalled) {
		t.Fatalf("read %d bytes, then %v; want ErrStalled", len(b), err)
	}
	if len(b) != 1000 {
		t.Errorf("read %d bytes before the stall, want the 1000 sent", len(b))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the stalled read failed after %s", d)
	}
}

// TestTimeBetweenReadsDoesNotCount: a caller that pauses between reads longer than the idle limit (as the
// Bulk load does while its writers are busy) reads the whole body.
func TestTimeBetweenReadsDoesNotCount(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, strings.Repeat("y", 64<<10))
	}))
	defer srv.Close()
	c := &http.Client{Transport: httpstall.Transport(http.DefaultTransport, 100*time.Millisecond)}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 16<<10)
	total := 0
	for {
		n, err := resp.Body.Read(buf)
		total += n
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d bytes: %v", total, err)
		}
		time.Sleep(150 * time.Millisecond)
	}
	if total != 64<<10 {
		t.Errorf("read %d bytes, want %d", total, 64<<10)
	}
}
