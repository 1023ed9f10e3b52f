package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/client"
)

// benchToken is the operator token of the benchmark's control planes; a test value.
const benchToken = "scale-bench-token-0123456789abcdef" //nolint:gosec // G101: a test value, not a credential

// proc is one crmsync process of the benchmark.
type proc struct {
	args []string
	cmd  *exec.Cmd
	done chan struct{}
	url  string
	log  string
}

func startProc(bin, logPath string, args ...string) (*proc, error) {
	p := &proc{args: args, log: logPath}
	return p, p.start(bin)
}

func (p *proc) start(bin string) error {
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	p.cmd = exec.Command(bin, p.args...) //nolint:gosec // G204: the binary under test
	p.cmd.Env = append(os.Environ(), "CRMSYNC_TOKEN="+benchToken)
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	if err := p.cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	p.done = make(chan struct{})
	done := p.done
	go func() { _ = p.cmd.Wait(); logf.Close(); close(done) }()
	return nil
}

// stop sends sig and waits (bounded) for the process to exit.
func (p *proc) stop(sig syscall.Signal) {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// cpuSeconds is the user+system CPU a process and its children have used, from /proc (0 elsewhere).
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// The fields after the command (which may hold spaces) start after the last ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 15 {
		return 0
	}
	var ticks float64
	for _, i := range []int{11, 12} { // utime, stime (fields 14 and 15)
		v, _ := strconv.ParseFloat(f[i], 64)
		ticks += v
	}
	return ticks / 100 // USER_HZ
}

// treeCPU is the CPU of a process and every live descendant (PostgreSQL's backends are the postmaster's
// children).
func treeCPU(root int) float64 {
	entries, _ := os.ReadDir("/proc")
	children := map[int][]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if len(f) > 1 {
			ppid, _ := strconv.Atoi(f[1])
			children[ppid] = append(children[ppid], pid)
		}
	}
	total, queue := 0.0, []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		total += cpuSeconds(pid)
		queue = append(queue, children[pid]...)
	}
	return total
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startServe starts one serve process and waits for /healthz.
func startServe(bin, dir string, extra ...string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--data-dir", filepath.Join(dir, "data"), "--listen", addr, "--local-agents=false", "--log-level", "warn"}, extra...)
	p, err := startProc(bin, filepath.Join(dir, "serve.log"), args...)
	if err != nil {
		return nil, err
	}
	p.url = "http://" + addr
	c, err := client.New(client.Config{Endpoint: p.url, Token: benchToken, Timeout: time.Second})
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.Health(ctx)
		cancel()
		if err == nil {
			return p, nil
		}
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.log)
			return nil, fmt.Errorf("serve exited at start:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("serve did not answer within 60 s: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
