// Command bench runs crmsync's benchmark scenarios against the sandbox and publishes their figures: `make
// bench` runs it with small default sizes; flags give larger runs. Every scenario runs in a process of its
// own (this command re-executes itself with -scenario), the agent under test runs as a separate `crmsync
// agent` process so its resident memory can be read, and the ceiling's trivial clients run in a process of
// their own as well (-clients, clients.go). Results go to bench/results/ as results.json,
// results.md and load.svg (memory and throughput against table size).
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"
)

type options struct {
	Scenario   string `json:"-"`
	Crmsync    string `json:"crmsync"`
	Out        string `json:"out"`
	Sizes      []int  `json:"sizes"`
	CDCRates   []int  `json:"cdc_rates"`
	CDCSeconds int    `json:"cdc_seconds"`
	Backlog    int    `json:"backlog"`
	Throttled  int    `json:"throttled"`
	// Users are the numbers of application users of the budget-bound load (scenario users), of UsersLoad
	// contacts.
	Users     []int  `json:"users"`
	UsersLoad int    `json:"users_load"`
	Only      string `json:"only,omitempty"`
	// Latency, when set, is added to every Salesforce and Dataverse request of the "-lat" scenarios: a
	// modelled network round trip, which the zero-latency sandbox otherwise lacks.
	Latency time.Duration `json:"latency"`
	Param   int           `json:"-"`
	// Pairs is how many times the relay and the load of the largest size run, alternately, in one
	// invocation: the ratio is taken within each pair and its median published.
	Pairs int `json:"pairs"`
	// AgentCPUProfile, with -scenario load, is where a CPU profile of the agent's first 20 s goes.
	AgentCPUProfile string `json:"-"`
}

func main() {
	if ok, err := clientsMain(os.Args[1:], os.Stdin, os.Stdout); ok {
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	var o options
	var sizes, rates, users string
	flag.StringVar(&o.Scenario, "scenario", "", "run one scenario in this process and print its result as JSON (used by the harness)")
	flag.IntVar(&o.Param, "param", 0, "the scenario's size or rate")
	flag.StringVar(&o.Crmsync, "crmsync", "bin/crmsync", "the crmsync binary whose agent is measured")
	flag.StringVar(&o.Out, "out", "bench/results", "directory for results.json, results.md and load.svg")
	flag.StringVar(&sizes, "sizes", "10000,100000", "initial-load sizes (contacts; accounts are a fifth of that)")
	flag.StringVar(&rates, "cdc-rates", "10,100,1000", "CDC rates in changes per second")
	flag.IntVar(&o.CDCSeconds, "cdc-seconds", 20, "how long each CDC rate runs (the published figures use 60)")
	flag.IntVar(&o.Backlog, "backlog", 50000, "changes accumulated while the agent is stopped")
	flag.IntVar(&o.Throttled, "throttled", 100000, "contacts loaded under a small Dataverse budget")
	flag.StringVar(&users, "users", "1,2,4", "numbers of Dataverse application users of the budget-bound load scenario")
	flag.IntVar(&o.UsersLoad, "users-load", 40000, "contacts of the budget-bound load with several application users (accounts are a fifth of that)")
	flag.StringVar(&o.Only, "only", "", "comma-separated scenarios to run (load, ceiling, cdc, backlog, throttled, users, plan); all when empty")
	flag.DurationVar(&o.Latency, "latency", 20*time.Millisecond, "modelled round trip added to every request in the ceiling scenarios' second run (0 skips it)")
	flag.IntVar(&o.Pairs, "pairs", 3, "with load and ceiling: how many times the relay and the largest load run, alternately (the published ratio is the median of the pairs')")
	flag.StringVar(&o.AgentCPUProfile, "agent-cpuprofile", "", "with -scenario load: write a CPU profile of the agent process's first 20 seconds to this file")
	cpuProfile := flag.String("cpuprofile", "", "with -scenario: write a CPU profile of the scenario's process (the sandbox and the harness, not the agent) to this file")
	flag.Parse()
	o.Sizes, o.CDCRates, o.Users = ints(sizes), ints(rates), ints(users)

	if o.Scenario != "" {
		if *cpuProfile != "" {
			f, err := os.Create(*cpuProfile)
			if err == nil {
				err = pprof.StartCPUProfile(f)
			}
			if err != nil {
				fmt.Fprintln(os.Stderr, "bench:", err)
				os.Exit(1)
			}
			defer f.Close()
		}
		res, err := runScenario(o)
		pprof.StopCPUProfile()
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		_ = json.NewEncoder(os.Stdout).Encode(res)
		return
	}
	if err := orchestrate(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func ints(s string) []int {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "bench: %q is not a positive number\n", f)
			os.Exit(2)
		}
		out = append(out, n)
	}
	return out
}

// Result is one scenario run's figures.
type Result struct {
	Scenario string             `json:"scenario"`
	Param    int                `json:"param"`
	Seconds  float64            `json:"seconds"`
	Figures  map[string]float64 `json:"figures"`
	Notes    []string           `json:"notes,omitempty"`
}

// run is one scenario to execute in its own process.
type run struct {
	scenario string
	param    int
}

func orchestrate(o options) error {
	if _, err := os.Stat(o.Crmsync); err != nil {
		return fmt.Errorf("the crmsync binary %s is missing (make build): %w", o.Crmsync, err)
	}
	want := func(s string) bool { return o.Only == "" || strings.Contains(","+o.Only+",", ","+s+",") }
	var runs []run
	largest := o.Sizes[len(o.Sizes)-1]
	paired := want("load") && want("ceiling")
	if want("load") {
		for _, n := range o.Sizes {
			if !paired || n != largest { // the largest load runs in the pairs below
				runs = append(runs, run{"load", n})
			}
		}
	}
	if want("ceiling") {
		n := largest
		runs = append(runs, run{"intake", n}, run{"output", n})
		// The relay and the load alternate, so both sides of each ratio see the same moment of a shared
		// machine; a single relay run lasts about a second and varies more than the load does.
		for i := 0; i < max(1, o.Pairs); i++ {
			runs = append(runs, run{"relay", n})
			if paired {
				runs = append(runs, run{"load", n})
			}
		}
		runs = append(runs, run{"naive", min(n, 3000)})
		if o.Latency > 0 {
			runs = append(runs, run{"load-lat", n}, run{"intake-lat", n}, run{"naive-lat", min(n, 300)})
		}
	}
	if want("cdc") {
		for _, r := range o.CDCRates {
			runs = append(runs, run{"cdc", r})
		}
	}
	if want("backlog") {
		runs = append(runs, run{"backlog", o.Backlog})
	}
	if want("throttled") {
		runs = append(runs, run{"throttled", o.Throttled})
	}
	if want("users") {
		for _, u := range o.Users {
			runs = append(runs, run{"users", u})
		}
	}
	if want("plan") {
		runs = append(runs, run{"plan", 50})
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	started := time.Now()
	var results []Result
	for _, r := range runs {
		load := loadAverage()
		fmt.Fprintf(os.Stderr, "bench: %s %d (load average %.2f) ...\n", r.scenario, r.param, load)
		args := []string{"-scenario", r.scenario, "-param", strconv.Itoa(r.param), "-crmsync", o.Crmsync,
			"-cdc-seconds", strconv.Itoa(o.CDCSeconds), "-latency", o.Latency.String(), "-users-load", strconv.Itoa(o.UsersLoad)}
		cmd := exec.Command(self, args...) //nolint:gosec // G204: this program re-executing itself for one scenario
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, os.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("scenario %s %d: %w", r.scenario, r.param, err)
		}
		var res Result
		if err := json.Unmarshal(out.Bytes(), &res); err != nil {
			return fmt.Errorf("scenario %s %d printed no result: %w", r.scenario, r.param, err)
		}
		if load >= 0 {
			res.Figures["load_average"] = load
		}
		fmt.Fprintf(os.Stderr, "bench: %s %d: %v\n", r.scenario, r.param, res.Figures)
		results = append(results, res)
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil { //nolint:gosec // G301: results are meant to be read
		return err
	}
	report := Report{
		Command: "go run ./bench " + strings.Join(os.Args[1:], " "),
		Machine: machine(), Started: started.UTC(), Seconds: time.Since(started).Seconds(), Options: o, Results: results,
	}
	b, _ := json.MarshalIndent(report, "", "  ")
	if err := os.WriteFile(filepath.Join(o.Out, "results.json"), append(b, '\n'), 0o644); err != nil { //nolint:gosec // G306: published figures
		return err
	}
	md := markdown(report)
	if err := os.WriteFile(filepath.Join(o.Out, "results.md"), []byte(md), 0o644); err != nil { //nolint:gosec // G306: published figures
		return err
	}
	if svg := loadPlot(results); svg != "" {
		if err := os.WriteFile(filepath.Join(o.Out, "load.svg"), []byte(svg), 0o644); err != nil { //nolint:gosec // G306: published figures
			return err
		}
	}
	fmt.Print(md)
	return nil
}

// Report is results.json.
type Report struct {
	Command string    `json:"command"`
	Machine string    `json:"machine"`
	Started time.Time `json:"started"`
	Seconds float64   `json:"seconds"`
	Options options   `json:"options"`
	Results []Result  `json:"results"`
}

// loadAverage is the machine's 1-minute load average (-1 where /proc/loadavg is missing): the figures of a
// shared machine are read beside it.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

func machine() string {
	cpu := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(line, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(line, ":", 2)[1])
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
		if len(f) >= 2 {
			if kb, err := strconv.ParseFloat(f[1], 64); err == nil {
				mem = fmt.Sprintf(", %.0f GiB memory", kb/(1<<20))
			}
		}
	}
	return fmt.Sprintf("%s, %d cores%s, %s %s/%s", cpu, runtime.NumCPU(), mem, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
