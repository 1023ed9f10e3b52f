//go:build linux

package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/crmsync/terraform-provider-crmsync/internal/testenv"
)

// TestMain makes this test process a child subreaper: a process the demo leaves behind (its parent gone) is
// re-parented to the test, which can then see it.
func TestMain(m *testing.M) {
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "PR_SET_CHILD_SUBREAPER:", err)
		os.Exit(1)
	}
	code := m.Run()
	testenv.RemoveBinaries()
	os.Exit(code)
}

// buffer collects output while a process runs.
type buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// demoSetup builds the demo and what it runs, and returns the command line and environment of a demo run
// with a private HOME.
type demoSetup struct {
	root, dir, home string
	args, env       []string
}

func newDemo(t *testing.T) demoSetup {
	t.Helper()
	if testing.Short() {
		t.Skip("the demo runs the whole product")
	}
	tf := os.Getenv("TF_ACC_TERRAFORM_PATH")
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if tf == "" {
		tf = filepath.Join(root, "bin", "terraform")
	}
	if _, err := os.Stat(tf); err != nil {
		t.Skipf("no Terraform CLI (TF_ACC_TERRAFORM_PATH or bin/terraform, which make tools builds): %v", err)
	}
	bin := t.TempDir()
	for name, src := range map[string]string{
		"crmsync": testenv.Crmsync(t), "terraform-provider-crmsync": testenv.Binary(t, "."), "terraform": tf,
	} {
		if err := os.Symlink(src, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	demo := testenv.Binary(t, "scripts/demo")
	s := demoSetup{root: root, dir: filepath.Join(t.TempDir(), "demo"), home: t.TempDir()}
	s.args = []string{demo, "--dir", s.dir, "--bin", bin, "--contacts", "20000", "--accounts", "1000", "--timeout", "5m"}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "HOME", k == "CHECKPOINT_DISABLE", strings.HasPrefix(k, "TF_"), strings.HasPrefix(k, "CRMSYNC_"):
			continue // the demo sets what it needs; HOME is the test's, to see what is written there
		}
		s.env = append(s.env, kv)
	}
	s.env = append(s.env, "HOME="+s.home)
	return s
}

// descendants lists the live processes below this test process (orphans included: the test is their
// subreaper), reaping the dead ones.
func descendants(t *testing.T) []string {
	t.Helper()
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if pid <= 0 || err != nil {
			break
		}
	}
	parent := map[int]int{}
	cmdline := map[int]string{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after its closing parenthesis.
		rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 || f[0] == "Z" {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		parent[pid] = ppid
		cl, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		cmdline[pid] = strings.TrimSpace(strings.ReplaceAll(string(cl), "\x00", " "))
	}
	self := os.Getpid()
	var out []string
	for pid := range parent {
		for p, n := parent[pid], 0; p > 1 && n < 64; p, n = parent[p], n+1 {
			if p == self {
				out = append(out, fmt.Sprintf("%d %s", pid, cmdline[pid]))
				break
			}
		}
	}
	return out
}

// waitNoDescendants waits until nothing the test started is left.
func waitNoDescendants(t *testing.T, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		left := descendants(t)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("processes left behind %s after the demo's end:\n%s", within, strings.Join(left, "\n"))
			for _, l := range left {
				if pid, err := strconv.Atoi(strings.Fields(l)[0]); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func waitOutput(t *testing.T, out func() string, within time.Duration, want string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !strings.Contains(out(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %s; output:\n%s", want, within, out())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkHome fails when anything was written in the demo's HOME (Terraform's checkpoint signature was).
func checkHome(t *testing.T, home string) {
	t.Helper()
	var written []string
	_ = filepath.WalkDir(home, func(p string, d os.DirEntry, err error) error {
		if err == nil && p != home {
			written = append(written, p)
		}
		return nil
	})
	if len(written) > 0 {
		t.Errorf("the demo wrote outside its directory, in HOME: %v", written)
	}
}

// In a terminal, one Ctrl-C made Terraform print "Two interrupts received … data loss may have
// occurred" (it got the terminal's interrupt and the demo's) and the demo reported `terraform apply: exit
// status 1`. One Ctrl-C during the apply: Terraform gets one interrupt, the demo stops everything it started
// and says it was interrupted.
func TestDemoCtrlCInATerminal(t *testing.T) {
	s := newDemo(t)
	cmd := exec.Command(s.args[0], s.args[1:]...) //nolint:gosec // the demo this test built
	cmd.Dir, cmd.Env = s.root, s.env
	tty, err := pty.Start(cmd) // a session of its own with the pty as controlling terminal: Ctrl-C reaches its foreground group
	if err != nil {
		t.Fatal(err)
	}
	defer tty.Close()
	out := &buffer{}
	copied := make(chan struct{})
	go func() { _, _ = io.Copy(out, tty); close(copied) }()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	waitOutput(t, out.String, 3*time.Minute, "crmsync_activation.sandbox: Creating...")
	if _, err := tty.Write([]byte{0x03}); err != nil { // Ctrl-C, as a person types it
		t.Fatal(err)
	}
	var exitErr error
	select {
	case exitErr = <-done:
	case <-time.After(3 * time.Minute):
		_ = cmd.Process.Kill()
		t.Fatalf("the demo did not end within 3 minutes of Ctrl-C; output:\n%s", out.String())
	}
	select {
	case <-copied:
	case <-time.After(5 * time.Second):
	}
	text := out.String()
	apply, _ := os.ReadFile(filepath.Join(s.dir, "terraform-apply.log"))
	t.Logf("demo output after Ctrl-C:\n%s", tail(text, 40))
	var ee *exec.ExitError
	if !errors.As(exitErr, &ee) || ee.ExitCode() != 130 {
		t.Errorf("the demo ended with %v, want exit status 130 (interrupted)", exitErr)
	}
	for _, bad := range []string{"Two interrupts received", "terraform apply: exit status"} {
		if strings.Contains(text, bad) || strings.Contains(string(apply), bad) {
			t.Errorf("the output says %q", bad)
		}
	}
	for _, want := range []string{"Stopping everything the demo started", "demo interrupted"} {
		if !strings.Contains(text, want) {
			t.Errorf("the output lacks %q", want)
		}
	}
	waitNoDescendants(t, 30*time.Second)
	checkHome(t, s.home)
}

// With `make demo | tee log`, Ctrl-C killed tee, the demo died of SIGPIPE on its next write and
// left the sandbox, the control plane and the agent running. The terminal's interrupt reaches the whole
// pipeline; the demo still stops everything it started.
func TestDemoCtrlCPipedThroughTee(t *testing.T) {
	s := newDemo(t)
	log := filepath.Join(t.TempDir(), "log")
	cmd := exec.Command("bash", append([]string{"-c", `"$0" "$@" 2>&1 | tee "$DEMO_LOG"`}, s.args...)...) //nolint:gosec // the demo this test built
	cmd.Dir, cmd.Env = s.root, append(s.env, "DEMO_LOG="+log)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // the pipeline is one job, as a shell runs it
	out := &buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	waitOutput(t, out.String, 3*time.Minute, "crmsync_activation.sandbox: Creating...")
	// Ctrl-C in the terminal: SIGINT to the foreground job, the shell, the demo and tee alike.
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		t.Logf("the pipeline ended: %v", err) // its status is tee's or the shell's, not the demo's
	case <-time.After(3 * time.Minute):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("the pipeline did not end within 3 minutes of Ctrl-C; output:\n%s", out.String())
	}
	apply, _ := os.ReadFile(filepath.Join(s.dir, "terraform-apply.log"))
	if strings.Contains(string(apply), "Two interrupts received") {
		t.Error("Terraform got two interrupts")
	}
	waitNoDescendants(t, 90*time.Second)
	checkHome(t, s.home)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
