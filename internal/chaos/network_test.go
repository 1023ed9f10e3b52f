package chaos_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faultproxy"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
)

// networkScenario runs an agent behind fault proxies: faults are on from the start of the initial load and
// through rounds of CDC under a steady stream of changes; then they stop and every change must arrive.
func networkScenario(t *testing.T, name string, cfg faultproxy.Config, during func(e *env, round int)) {
	e := newEnv(t, name, envOptions{contacts: profile.Contacts, accounts: profile.Accounts, proxied: true})
	// Small batches and pages make many requests, each a chance for a fault.
	e.cfg.Tuning.BatchSize, e.cfg.Tuning.PageSize = 100, 1000
	setAll := func(c faultproxy.Config) {
		for _, p := range e.proxies {
			c.Seed = e.rng.Uint64() | 1
			p.Set(c)
		}
	}
	setAll(cfg)
	r := e.startAgent("")
	waitFor(t, 4*time.Minute, "the initial load to finish under faults", func() bool { return streaming(r.a.Status()) })
	cs := e.startChanges(100*time.Millisecond, 100_000)
	for round := 0; round < profile.Rounds; round++ {
		e.iterations++
		if during != nil {
			during(e, round)
		} else {
			time.Sleep(4 * time.Second) // changes flow through the faults
		}
	}
	cs.stop()
	setAll(faultproxy.Config{})
	e.faults += e.proxyFaults()
	s := e.settle(r, 3*time.Minute)
	reconciled(t, s)
	t.Logf("%d changes made; proxies: %s", cs.changes(), e.proxyCounts())
	if e.faults == 0 {
		t.Error("no fault was injected")
	}
	e.finish()
}

func (e *env) proxyCounts() string {
	var parts []string
	for name, p := range e.proxies {
		parts = append(parts, fmt.Sprintf("%s %+v", name, p.Counts()))
	}
	return strings.Join(parts, "; ")
}

// TestChaosConnectionsResetOrTruncatedMidResponseLoseNothing: 8 % of the responses of both services (REST,
// Bulk, tokens, the Web API, the Pub/Sub stream, TLS handshakes) are cut by a reset and 8 % cut short by a
// clean close, during the initial load and CDC.
func TestChaosConnectionsResetOrTruncatedMidResponseLoseNothing(t *testing.T) {
	networkScenario(t, "network/resets+truncations", faultproxy.Config{ResetRate: 0.08, TruncateRate: 0.08, CutWithin: 4096}, nil)
}

// TestChaosStallsLoseNothing: responses stall for a few seconds (longer than the agent's flush interval and
// the Pub/Sub keepalive slack, shorter than the clients' 2-minute timeouts) during the load and CDC. Stalls
// longer than the timeouts are TestChaosStallsPastTheClientTimeouts (long profile) and, with short client
// timeouts, faultproxy's TestRealClientsRecoverFromStallsPastTheirTimeouts.
func TestChaosStallsLoseNothing(t *testing.T) {
	networkScenario(t, "network/stalls", faultproxy.Config{StallRate: 0.02, Stall: 3 * time.Second, Limit: 40}, nil)
}

// TestChaosStallsPastTheClientTimeouts (long profile): responses are held until the client gives up (2 minutes
// for REST, Bulk and the Web API; the gRPC keepalive for the stream). The load runs under drawn stalls (5 % of
// the answers longer than 4,000–8,000 bytes: Bulk pages, the Web API's larger answers); then, under the steady
// stream of changes, the next answer of every listener that has not stalled yet is held, so the stream and
// the Web API each stall past their timeouts whatever the load drew (drawn alone, a run could inject nothing).
func TestChaosStallsPastTheClientTimeouts(t *testing.T) {
	if !profile.Long {
		t.Skip("long profile: stalls wait out the clients' 2-minute timeouts")
	}
	// Past the TLS handshake's first flight, so the stall holds an answer (headers or body), not a handshake
	// (which the transport gives up on after 10 s).
	networkScenario(t, "network/stalls-past-timeouts", faultproxy.Config{StallRate: 0.05, PassFirst: 4000, CutWithin: 4000, Limit: 1},
		func(e *env, round int) {
			if round != 0 {
				return
			}
			// Connections are kept alive under the stream, so the next answer is one on an open connection:
			// a few hundred bytes into it is past its first TLS record's header.
			for _, p := range e.proxies {
				if p.Counts().Stalls == 0 {
					p.Set(faultproxy.Config{StallRate: 1, PassFirst: 100, CutWithin: 200, Limit: 1, Seed: e.rng.Uint64() | 1})
				}
			}
			time.Sleep(150 * time.Second) // the clients' 2-minute timeouts play out under the steady stream
			for _, name := range []string{"pubsub", "dataverse"} {
				if e.proxies[name].Counts().Stalls == 0 {
					t.Errorf("no answer of %s was held under the stream of changes", name)
				}
			}
		})
}

// TestChaosDroppedStreamsLoseNothing: every connection to the Pub/Sub API is dropped (the gRPC stream dies
// with it) every one to three seconds under a steady stream of changes.
func TestChaosDroppedStreamsLoseNothing(t *testing.T) {
	networkScenario(t, "network/grpc-stream-dropped", faultproxy.Config{}, func(e *env, round int) {
		for i := 0; i < 4; i++ {
			time.Sleep(time.Duration(1000+e.rng.IntN(2000)) * time.Millisecond)
			e.proxies["pubsub"].DropConnections()
		}
	})
}

// TestChaosEachSideUnreachable: Salesforce (login, instance and Pub/Sub together) and then Dataverse
// (environment and authority) are unreachable for 1 s, 30 s and 10 min, under a steady stream of changes.
// The long outages move the sandbox clock on instead of waiting: with 5-minute tokens and a 5-minute event
// retention, a 10-minute outage expires every token and the stream's replay position, so the agent must
// refresh both sessions and re-sync in full (reporting it), still losing nothing.
func TestChaosEachSideUnreachable(t *testing.T) {
	e := newEnv(t, "network/unreachable-1s-30s-10m", envOptions{contacts: profile.Contacts, accounts: profile.Accounts, proxied: true,
		salesforce: salesforce.Config{TokenLifetime: 5 * time.Minute, Retention: 5 * time.Minute},
		dataverse:  dataverse.Config{TokenLifetime: 5 * time.Minute}})
	r := e.startAgent("")
	// The first outage hits the initial load.
	waitFor(t, 2*time.Minute, "the initial load to start", func() bool {
		done, total := loadProgress(r.a.Status())
		return total > 0 && done > 0
	})
	var cs *changeStream
	expired := false
	for i, o := range profile.Outages {
		for _, side := range []string{"salesforce", "dataverse"} {
			if i > 0 && cs == nil {
				waitFor(t, 3*time.Minute, "the initial load to finish", func() bool { return streaming(r.a.Status()) })
				cs = e.startChanges(100*time.Millisecond, 100_000)
			}
			e.iterations++
			t.Logf("%s unreachable for %s (clock +%s)", side, o.real, o.clock)
			for _, p := range e.side(side) {
				p.SetReachable(false)
			}
			if o.clock > 0 {
				time.Sleep(o.real / 2)
				e.sb.Clock.Advance(o.clock)
				time.Sleep(o.real - o.real/2)
			} else {
				time.Sleep(o.real)
			}
			for _, p := range e.side(side) {
				p.SetReachable(true)
			}
			expired = expired || o.clock >= 5*time.Minute
			// The next outage starts once the agent recovered from this one: every change made so far is
			// written.
			e.settle(r, 4*time.Minute)
		}
	}
	if cs != nil {
		cs.stop()
		t.Logf("%d changes made", cs.changes())
	}
	e.faults += e.proxyFaults()
	s := e.settle(r, 3*time.Minute)
	reconciled(t, s)
	if expired && !recovered(s, "replay ID rejected") {
		t.Errorf("a 10-minute outage past the 5-minute retention did not re-sync: %v", recoveries(s))
	}
	if expired {
		// Expired sessions were refreshed on both sides, not just retried.
		if n := e.sb.Dataverse.Counters()["unauthorized"]; n == 0 {
			t.Error("no Dataverse request met an expired token: the 10-minute outage did not outlive the 5-minute tokens")
		}
		if n := e.sb.Salesforce.Counters()["oauth.token"]; n < 2 {
			t.Errorf("%d Salesforce token requests: the expired session was not renewed", n)
		}
	}
	t.Logf("recoveries: %v; proxies: %s", recoveries(s), e.proxyCounts())
	e.finish()
}

func recoveries(s agent.Status) map[string][]string {
	out := map[string][]string{}
	for _, ts := range s.Tables {
		out[ts.Table] = ts.Recoveries
	}
	return out
}

// recovered reports whether some table's recoveries mention what.
func recovered(s agent.Status, what string) bool {
	for _, ts := range s.Tables {
		for _, r := range ts.Recoveries {
			if strings.Contains(r, what) {
				return true
			}
		}
	}
	return false
}
