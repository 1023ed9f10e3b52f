package agent_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/faults"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/harness"
	"github.com/crmsync/terraform-provider-crmsync/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveBinaries()
	os.Exit(code)
}

// proc is an agent running as its own process.
type proc struct {
	cmd  *exec.Cmd
	addr string
}

func (e *env) startProcess(t testing.TB, stateDir string) *proc {
	t.Helper()
	cfg := e.cfg
	cfg.Dataverse.ClientSecret, cfg.Dataverse.ClientSecretEnv = "", "TEST_DV_SECRET"
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(e.dir, "agent.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := testenv.FreeAddr(t)
	args := append([]string{"agent", "--config", cfgFile, "--state-dir", stateDir, "--listen", addr, "--log-level", "warn"}, harness.AllowHostArgs(cfg)...)
	cmd := exec.Command(testenv.Crmsync(t), args...)
	cmd.Env = append(os.Environ(), "TEST_DV_SECRET="+e.cfg.Dataverse.ClientSecret)
	if testing.Verbose() {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return &proc{cmd: cmd, addr: addr}
}

func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}

func (p *proc) status() (agent.Status, bool) {
	var s agent.Status
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + p.addr + "/status")
	if err != nil {
		return s, false
	}
	defer resp.Body.Close()
	return s, json.NewDecoder(resp.Body).Decode(&s) == nil
}

// TestKilledAgentLosesNothing kills the agent process with SIGKILL at random moments, ten times during the
// initial load and ten times while it streams under a steady flow of changes, restarting it each time; at
// the end Dataverse must equal Salesforce exactly.
func TestKilledAgentLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills processes")
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("kill timing seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	e := newEnv(t, 40000, 5000)
	// Small pages and batches and a slow Dataverse stretch the load over enough seconds for ten kills, and
	// make it checkpoint often enough that every run shows progress.
	e.cfg.Tuning.PageSize, e.cfg.Tuning.BatchSize = 2000, 200
	e.sb.Dataverse.Faults().Set(faults.Config{Latency: 100 * time.Millisecond, PathPrefix: "/api/data/"})
	// Kills make the agent write rows again (the pages after the last checkpoint): past one application user's
	// first window, the default budget would pace the test, which is about losing nothing.
	e.liftExecutionBudget()
	stateDir := filepath.Join(e.dir, "state")
	deadline := time.Now().Add(4 * time.Minute)

	kills, loadKills := 0, 0
	var lastDone int64
	for loadKills < 10 && time.Now().Before(deadline) {
		p := e.startProcess(t, stateDir)
		// Wait until it loads (it reports its tables), then kill it at a random moment.
		for i := 0; i < 100; i++ {
			if s, ok := p.status(); ok && len(s.Tables) > 0 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(time.Duration(100+rng.IntN(700)) * time.Millisecond)
		s, ok := p.status()
		p.kill()
		kills++
		if !ok || len(s.Tables) == 0 {
			continue // killed before it reported its tables
		}
		loading := false
		var done int64
		for _, ts := range s.Tables {
			done += ts.LoadDone
			if ts.Phase != agent.PhaseStreaming {
				loading = true
			}
		}
		if !loading {
			break
		}
		loadKills++
		lastDone = done
	}
	t.Logf("%d kills during the initial load (progress at the last one: %d rows)", loadKills, lastDone)
	e.sb.Dataverse.Faults().Reset()

	// A steady flow of changes, bounded in count and time.
	ctx, stopChanges := context.WithCancel(t.Context())
	var changes sync.WaitGroup
	changes.Add(1)
	go func() {
		defer changes.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 600; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			obj := "Contact"
			if i%4 == 0 {
				obj = "Account"
			}
			if _, err := e.sb.Salesforce.Mutate(obj, 10, ""); err != nil {
				t.Error(err)
				return
			}
			if i%10 == 0 {
				if _, err := e.sb.Salesforce.Generate("Contact", 3, ""); err != nil {
					t.Error(err)
					return
				}
			}
		}
	}()
	cdcKills := 0
	for cdcKills < 10 && time.Now().Before(deadline) {
		p := e.startProcess(t, stateDir)
		time.Sleep(time.Duration(300+rng.IntN(900)) * time.Millisecond)
		p.kill()
		kills++
		cdcKills++
	}
	stopChanges()
	changes.Wait()
	t.Logf("%d kills while streaming, %d in all", cdcKills, kills)
	if loadKills+cdcKills < 20 {
		t.Errorf("only %d kills landed before the deadline", loadKills+cdcKills)
	}

	r := e.start(t, stateDir)
	e.settle(t, r, 2*time.Minute)
	e.compareAll(t, nil)
	// Restarts resumed the load instead of starting it over: one Bulk job per table (plus one per table for
	// a kill between creating a job and storing its Id).
	if jobs := e.sb.Salesforce.Counters()["bulk.create_job"]; jobs > 4 {
		t.Errorf("%d Bulk jobs were created for 2 tables across %d restarts: loads started over", jobs, kills)
	}
}
