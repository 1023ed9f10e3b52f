package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

func sampleStatus(now time.Time) api.ConnectorStatus {
	return api.ConnectorStatus{
		ConnectorID: "con_0123456789abcdef0123456789abcdef", Name: "salesforce-prod", Active: true,
		State: api.StateInitialLoad, LatestRevision: 3, DeployedRevision: 2, DeadLetters: 1, LagSeconds: 0.4,
		Agent:     &api.AgentInfo{ID: "lease_1", Host: "box", PID: 42, Revision: 2, HeartbeatAt: now.Add(-2 * time.Second), StartedAt: now.Add(-10 * time.Second)},
		UpdatedAt: now.Add(-time.Second),
		Tables: []api.ConnectorTableStatus{
			{TableStatus: api.TableStatus{Table: "Account", Destination: "account", Phase: api.PhaseStreaming, Received: 100, Written: 99, DeadLettered: 1,
				ReplayAt: now.Add(-80 * time.Hour)}, ReplayAgeSeconds: (80 * time.Hour).Seconds(), RetentionSeconds: (72 * time.Hour).Seconds()},
			{TableStatus: api.TableStatus{Table: "Contact", Destination: "contact", Phase: api.PhaseInitialLoad, LoadDone: 5000, LoadTotal: 10000}},
		},
		LastErrors: []api.ErrorEntry{{At: now.Add(-time.Minute), Table: "Account", Message: "writing account: HTTP 400"}},
	}
}

func TestConnectorViewShowsProgressCountersReplayAgeAndErrors(t *testing.T) {
	now := time.Now()
	var b bytes.Buffer
	renderConnector(&b, sampleStatus(now), map[string]float64{"Contact": 1000}, now)
	out := b.String()
	t.Log("\n" + out)
	for _, want := range []string{
		"2 deployed, 3 latest",
		"[███████████████░░░░░░░░░░░░░░░]", "5,000 / 10,000", " 50%", "1,000 rec/s", "~5s left",
		"Account  account", "80h of 72h (expired: re-sync)",
		"Last errors", "Account: writing account: HTTP 400",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the view lacks %q", want)
		}
	}
}

func TestListShowsDeployedAgainstLatestRevision(t *testing.T) {
	now := time.Now()
	var b bytes.Buffer
	renderList(&b, []api.ConnectorStatus{sampleStatus(now)}, now)
	out := b.String()
	for _, want := range []string{"NAME", "salesforce-prod", "initial_load", "2/3 (behind)", "0.4s"} {
		if !strings.Contains(out, want) {
			t.Errorf("the list lacks %q:\n%s", want, out)
		}
	}
}

func TestStatusJSONIsTheAPIsDocument(t *testing.T) {
	now := time.Now().UTC().Truncate(time.Second)
	st := sampleStatus(now)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		switch r.URL.Path {
		case "/v1/connectors/" + st.ConnectorID:
			_ = json.NewEncoder(w).Encode(api.Connector{ID: st.ConnectorID})
		case "/v1/connectors/" + st.ConnectorID + "/status":
			_ = json.NewEncoder(w).Encode(st)
		default:
			t.Errorf("unexpected request %s", r.URL)
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	t.Setenv("CRMSYNC_TOKEN", "tok")
	t.Setenv("CRMSYNC_ENDPOINT", srv.URL)
	cmd := newStatusCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{st.ConnectorID, "--json"})
	if err := cmd.ExecuteContext(t.Context()); err != nil {
		t.Fatal(err)
	}
	var got api.ConnectorStatus
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("--json printed something that is not a status document: %v\n%s", err, out.String())
	}
	if got.Name != st.Name || len(got.Tables) != 2 || got.Tables[1].LoadDone != 5000 {
		t.Errorf("--json printed %+v", got)
	}
}

func TestWatchRedrawsEverySecondUntilInterrupted(t *testing.T) {
	now := time.Now().UTC()
	st := sampleStatus(now)
	var calls int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/connectors":
			_ = json.NewEncoder(w).Encode(api.ConnectorList{Connectors: []api.Connector{{ID: st.ConnectorID}}})
		case "/v1/connectors/" + st.ConnectorID + "/status":
			calls++
			_ = json.NewEncoder(w).Encode(st)
		default:
			t.Errorf("unexpected request %s", r.URL)
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer srv.Close()
	t.Setenv("CRMSYNC_TOKEN", "tok")
	ctx, cancel := context.WithTimeout(t.Context(), 2500*time.Millisecond)
	defer cancel()
	cmd := newStatusCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--watch", "--endpoint", srv.URL})
	if err := cmd.ExecuteContext(ctx); err != nil {
		t.Fatalf("--watch ended with %v when interrupted, want nil", err)
	}
	if frames := strings.Count(out.String(), "NAME"); frames < 2 || frames > 4 {
		t.Errorf("%d frames in 2.5 s, want one a second:\n%s", frames, out.String())
	}
}

// The agent measures a load's rate over Dataverse's 5-minute service-protection window; the view uses it
// rather than the average since the agent started, which a budget-bound or resumed load makes read high.
func TestLoadRateIsTheAgentsMeasureWhenItReportsOne(t *testing.T) {
	now := time.Now()
	st := sampleStatus(now)
	v := &statusView{history: map[string][]progressSample{}}
	if got := v.rates(st)["Contact"]; got < 400 {
		t.Fatalf("rate without the agent's measure = %.0f, want the average since the start (about 555)", got)
	}
	st.Tables[1].LoadRate = 200
	if got := v.rates(st)["Contact"]; got != 200 {
		t.Errorf("rate = %.0f, want the agent's 200", got)
	}
	var b bytes.Buffer
	renderConnector(&b, st, v.rates(st), now)
	if !strings.Contains(b.String(), "200 rec/s  ~25s left") {
		t.Errorf("the view lacks the agent's rate and the time left:\n%s", b.String())
	}
}

// With several Dataverse application users the view shows each one's share and budget left.
func TestConnectorViewShowsEachApplicationUser(t *testing.T) {
	now := time.Now()
	st := sampleStatus(now)
	left := 1190.5
	st.ApplicationUsers = []api.ApplicationUserStatus{
		{ClientID: "1b2c3d4e-5f60-4718-9a0b-c1d2e3f40516", Requests: 120, Throttled: 2, Concurrency: 4, RemainingExecutionSeconds: &left},
		{ClientID: "2c3d4e5f-6071-4829-8a0b-c1d2e3f40527", Requests: 118, Concurrency: 8, ThrottledForSeconds: 12},
	}
	var b bytes.Buffer
	renderConnector(&b, st, nil, now)
	out := b.String()
	t.Log("\n" + out)
	for _, want := range []string{
		"2 Dataverse application users",
		"1b2c3d4e-5f60-4718-9a0b-c1d2e3f40516  120 requests (throttled 2), 4 concurrent, ",
		"2c3d4e5f-6071-4829-8a0b-c1d2e3f40527  118 requests (throttled 0), 8 concurrent, budget not known yet, held ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the view lacks %q", want)
		}
	}
}
