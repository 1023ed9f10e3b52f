package dataverse_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
)

// Writes ask the fence and carry its tag; reads and token requests do not; a refused write is not sent and
// not retried.
func TestWritesAskTheFenceAndCarryItsTag(t *testing.T) {
	var mu sync.Mutex
	var seen []string // "METHOD tag"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "oauth2") {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"tok","token_type":"Bearer","expires_in":3600}`))
			return
		}
		mu.Lock()
		seen = append(seen, r.Method+" "+r.Header.Get(dataverse.FenceHeader))
		mu.Unlock()
		if r.Method == http.MethodGet {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"contactid":"00000000-0000-0000-0000-000000000001"}`))
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	refuse := errors.New("the lease is not surely ours")
	var allow bool
	c, err := dataverse.New(dataverse.Config{EnvironmentURL: srv.URL, AuthorityURL: srv.URL, TenantID: "t", ClientID: "c", ClientSecret: "s",
		Fence: func() (string, error) {
			if !allow {
				return "", refuse
			}
			return "tag-1", nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	id := "00000000-0000-0000-0000-000000000001"
	if _, err := c.Get(t.Context(), "contacts", id, "contactid"); err != nil {
		t.Fatal(err)
	}
	if err := c.Patch(t.Context(), "contacts", id, dataverse.Row{"firstname": "A"}, ""); !errors.Is(err, refuse) {
		t.Errorf("a write the fence refuses: %v", err)
	}
	allow = true
	if err := c.Patch(t.Context(), "contacts", id, dataverse.Row{"firstname": "A"}, ""); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, ",") != "GET ,PATCH tag-1" {
		t.Errorf("requests seen: %q, want the read untagged, the refused write not sent, the allowed one tagged", seen)
	}
}
