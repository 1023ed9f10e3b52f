package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/harness"
)

// The ceiling's trivial clients (intake, output, relay) run in a process of their own, as the agent does:
// this command re-executed with -clients, reading the sandbox's sandbox.json and CA file as the agent's
// configuration does, and talking to it over the same loopback TLS HTTP. In the sandbox's own process,
// their garbage (decompressed pages, response buffers) would set off the collector of the sandbox's large
// heap, and the two would share one Go scheduler: the ceiling would then measure a different arrangement
// from the load's, which it bounds.

// clientsFlag is the hidden first argument of the trivial clients' process.
const clientsFlag = "-clients"

// clientsResult is what the trivial clients' process prints once done.
type clientsResult struct {
	Records    int     `json:"records"`
	Seconds    float64 `json:"seconds"`
	CPUSeconds float64 `json:"cpu_seconds"`
}

// clientsMain runs the trivial clients' process when args (without the program name) start with
// -clients, and reports whether it did. The process prepares its clients (untimed), prints "ready", waits
// for a line on in, then runs mode timed and prints a clientsResult as JSON.
func clientsMain(args []string, in io.Reader, out io.Writer) (bool, error) {
	if len(args) == 0 || args[0] != clientsFlag {
		return false, nil
	}
	fs := flag.NewFlagSet("bench -clients", flag.ContinueOnError)
	info := fs.String("sandbox-info", "", "the sandbox's sandbox.json")
	usage := "usage: bench -clients intake|output|relay -sandbox-info FILE"
	if len(args) < 2 {
		return true, errors.New(usage)
	}
	if err := fs.Parse(args[2:]); err != nil {
		return true, fmt.Errorf("%s: %w", usage, err)
	}
	return true, runClients(args[1], *info, in, out)
}

func runClients(mode, infoFile string, in io.Reader, out io.Writer) error {
	info, err := sandbox.ReadInfo(infoFile)
	if err != nil {
		return err
	}
	t, err := newTrivial(info)
	if err != nil {
		return err
	}
	run, err := prepareClients(t, mode)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(out, "ready"); err != nil {
		return err
	}
	if _, err := bufio.NewReader(in).ReadString('\n'); err != nil {
		return fmt.Errorf("waiting for the start: %w", err)
	}
	cpu0, err := harness.CPUTime(os.Getpid())
	if err != nil {
		return err
	}
	start := time.Now()
	n, err := run()
	elapsed := time.Since(start)
	if err != nil {
		return err
	}
	cpu, err := harness.CPUTime(os.Getpid())
	if err != nil {
		return err
	}
	return json.NewEncoder(out).Encode(clientsResult{Records: n, Seconds: elapsed.Seconds(), CPUSeconds: (cpu - cpu0).Seconds()})
}

// prepareClients does the untimed part of mode and returns its timed part.
func prepareClients(t *trivial, mode string) (func() (int, error), error) {
	if mode == "output" {
		sf, err := t.sfLogin()
		if err != nil {
			return nil, err
		}
		soql, err := t.loadSOQL()
		if err != nil {
			return nil, err
		}
		return func() (int, error) { return sf.output(soql) }, nil
	}
	if mode != "intake" && mode != "relay" {
		return nil, fmt.Errorf("unknown trivial clients %q", mode)
	}
	c, err := prepareCeiling(t)
	if err == nil {
		err = c.prepareBodies()
	}
	if err != nil {
		return nil, err
	}
	if mode == "intake" {
		return c.intake, nil
	}
	return c.relay, nil
}

// scenarioClients runs a sandbox of n contacts and n/5 accounts in this process and mode's trivial clients
// in another (self, this command): the clients' rate on their own clock, and the CPU of both processes over
// the timed part.
func scenarioClients(o options, n int, mode, self string) (*Result, error) {
	e, err := newEnv(o, n, n/5, budgetNoExecutionTime)
	if err != nil {
		return nil, err
	}
	defer e.close()
	cmd := exec.Command(self, clientsFlag, mode, "-sandbox-info", filepath.Join(e.dir, "sandbox", "sandbox.json")) //nolint:gosec // G204: this program re-executing itself
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	res, err := timeClients(stdin, bufio.NewReader(stdout))
	if err != nil {
		_ = cmd.Process.Kill()
	}
	if werr := cmd.Wait(); err == nil && werr != nil {
		err = fmt.Errorf("the trivial clients' process: %w", werr)
	}
	if err != nil {
		return nil, err
	}
	recs := float64(res.Records)
	return &Result{Figures: map[string]float64{
		"records":                 recs,
		"records_per_second":      recs / res.Seconds,
		"clients_cpu_ms_per_1000": res.CPUSeconds * 1000 / recs * 1000,
		"clients_cpu_cores":       res.CPUSeconds / res.Seconds,
		"sandbox_cpu_ms_per_1000": res.sandboxCPU * 1000 / recs * 1000,
		"sandbox_cpu_cores":       res.sandboxCPU / res.Seconds,
		// All the CPU the ceiling costs, as the load's sandbox plus agent.
		"cpu_ms_per_1000": (res.CPUSeconds + res.sandboxCPU) * 1000 / recs * 1000,
	}}, nil
}

// timedClients is the clients' result with the sandbox process's CPU over the same span.
type timedClients struct {
	clientsResult
	sandboxCPU float64
}

// timeClients waits until the clients are ready, collects this process's garbage (the sandbox served the
// clients' untimed reads, as it did when the clients ran here and collected before the clock started),
// starts them and reads their result, taking the sandbox's CPU over the timed part.
func timeClients(start io.WriteCloser, out *bufio.Reader) (*timedClients, error) {
	defer start.Close()
	line, err := out.ReadString('\n')
	if err != nil || line != "ready\n" {
		return nil, errors.Join(errors.New("the trivial clients' process did not get ready"), err)
	}
	runtime.GC()
	cpu0, err := harness.CPUTime(os.Getpid())
	if err != nil {
		return nil, err
	}
	if _, err := io.WriteString(start, "go\n"); err != nil {
		return nil, err
	}
	var res timedClients
	if err := json.NewDecoder(out).Decode(&res.clientsResult); err != nil {
		return nil, fmt.Errorf("the trivial clients' process printed no result: %w", err)
	}
	cpu, err := harness.CPUTime(os.Getpid())
	if err != nil {
		return nil, err
	}
	res.sandboxCPU = (cpu - cpu0).Seconds()
	return &res, nil
}
