package chaos_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // the store's driver, for the integrity check
)

// disk is the control plane's data directory on a filesystem the test can fill and make read-only: a
// small tmpfs mounted in a user and mount namespace of its own (no privileges needed where unprivileged
// user namespaces are allowed), or, where mounting is refused, the real disk with write errors simulated
// by a file-size limit on the serve process (EFBIG), which cannot simulate a read-only disk.
type disk struct {
	t    *testing.T
	mode string // "tmpfs" or "simulated"
	dir  string // the data directory as serve sees it
	// tmpfs: the namespace holder, the prefix running a command inside its namespaces, and the directory
	// as the test sees it from outside.
	holder  *exec.Cmd
	wrap    []string
	outside string
}

func newDisk(t *testing.T, base string) *disk {
	t.Helper()
	d := &disk{t: t, dir: filepath.Join(base, "cp")}
	if err := os.MkdirAll(d.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Getenv("CHAOS_DISK") != "simulated" {
		if err := d.mountTmpfs(); err == nil {
			return d
		} else {
			t.Logf("mounting a tmpfs in a user namespace was refused (%v): simulating write errors instead", err)
		}
	}
	d.mode, d.outside = "simulated", d.dir
	return d
}

// mountTmpfs starts a process holding a user and mount namespace with a 32 MiB tmpfs on the data directory.
func (d *disk) mountTmpfs() error {
	cmd := exec.Command("unshare", "--user", "--map-root-user", "--mount", "--propagation", "private", "sh", "-c",
		`mount -t tmpfs -o size=32m,mode=0700 tmpfs "$1" && echo mounted && exec sleep 86400`, "sh", d.dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		ready <- sc.Scan() && sc.Text() == "mounted"
	}()
	select {
	case ok := <-ready:
		if !ok {
			_ = cmd.Wait()
			return fmt.Errorf("%s", strings.TrimSpace(stderr.String()))
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return errors.New("the namespace did not come up within 10 s")
	}
	d.t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	pid := strconv.Itoa(cmd.Process.Pid)
	d.mode, d.holder = "tmpfs", cmd
	d.wrap = []string{"nsenter", "--target", pid, "--user", "--mount", "--preserve-credentials"}
	d.outside = filepath.Join("/proc", pid, "root", d.dir)
	return nil
}

// fill takes every free byte of the filesystem (tmpfs), or limits the serve process's file sizes to what
// its files hold now (simulated). It returns how many bytes the filler took.
func (d *disk) fill(servePID int) int64 {
	d.t.Helper()
	if d.mode == "simulated" {
		var largest int64
		entries, _ := os.ReadDir(d.dir)
		for _, e := range entries {
			if fi, err := e.Info(); err == nil && fi.Size() > largest {
				largest = fi.Size()
			}
		}
		d.prlimit(servePID, strconv.FormatInt(largest, 10)+":unlimited")
		return 0
	}
	f, err := os.OpenFile(filepath.Join(d.outside, "filler"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 64<<10)
	var n int64
	for {
		w, err := f.Write(chunk)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			return n
		}
		if err != nil {
			d.t.Fatalf("filling the disk: %v", err)
		}
		if n > 64<<20 {
			d.t.Fatal("the filler passed 64 MiB on a 32 MiB tmpfs")
		}
	}
}

// free undoes fill.
func (d *disk) free(servePID int) {
	d.t.Helper()
	if d.mode == "simulated" {
		d.prlimit(servePID, "unlimited:unlimited")
		return
	}
	if err := os.Remove(filepath.Join(d.outside, "filler")); err != nil {
		d.t.Fatal(err)
	}
}

func (d *disk) prlimit(pid int, fsize string) {
	d.t.Helper()
	if out, err := exec.Command("prlimit", "--pid", strconv.Itoa(pid), "--fsize="+fsize).CombinedOutput(); err != nil {
		d.t.Fatalf("prlimit --fsize=%s: %v %s", fsize, err, out)
	}
}

// readOnly remounts the tmpfs read-only (true) or read-write (false).
func (d *disk) readOnly(ro bool) {
	d.t.Helper()
	opt := "remount,rw"
	if ro {
		opt = "remount,ro"
	}
	args := append(append([]string(nil), d.wrap...), "mount", "-o", opt, d.dir)
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		d.t.Fatalf("mount -o %s: %v %s", opt, err, out)
	}
}

// integrity runs SQLite's integrity check on the control plane's database (serve stopped).
func (d *disk) integrity() string {
	d.t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(d.outside, "control-plane.db"))
	if err != nil {
		d.t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRowContext(d.t.Context(), "PRAGMA integrity_check").Scan(&res); err != nil {
		d.t.Fatal(err)
	}
	return res
}

// TestChaosControlPlaneDiskFullOrReadOnly: the control plane's data directory runs out of space while an
// agent streams changes through it. Writes to the API (the agent's checkpoints and heartbeats included)
// fail loudly (an error answer and a log line naming the cause) instead of answering success, reads go on,
// nothing refused is stored, and once space is free the control plane accepts writes again without a
// restart. The database then passes SQLite's integrity check; on a read-only disk the control plane
// refuses to start, naming the cause, and starts once it is writable; Dataverse ends equal to Salesforce.
func TestChaosControlPlaneDiskFullOrReadOnly(t *testing.T) {
	skipShort(t)
	base := t.TempDir()
	d := newDisk(t, base)
	e := newCPEnv(t, "disk/full+read-only ("+d.mode+")", profile.Contacts/2, profile.Accounts/2, func(e *cpEnv) {
		e.dataDir, e.serveWrap = d.dir, d.wrap
	})
	t.Logf("control plane data directory on a %s disk", d.mode)
	e.createConnector(e.connectorSpec())
	e.runAgents()
	e.settle(3 * time.Minute)
	cs := startChanges(t, e.sb, e.seed, 150*time.Millisecond, 1_000_000)
	ctx := t.Context()
	faults := int64(0)

	// writeRefused checks that a write fails with an error answer, and that reads still work.
	writeRefused := func(what string) {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		spec := e.connectorSpec()
		spec.Name = "written-while-" + what
		if c, err := e.c.CreateConnector(cctx, spec); err == nil {
			t.Errorf("creating a connector on a %s disk answered success (%s)", what, c.ID)
		} else {
			t.Logf("create on a %s disk: %v", what, err)
		}
		m := e.maps["Contact"].TableConfig
		m.ExcludeColumns = []string{"fax"}
		if _, err := e.c.UpdateMapping(cctx, e.maps["Contact"].ID, m); err == nil {
			t.Errorf("updating a mapping on a %s disk answered success", what)
		}
		if _, err := e.c.GetConnector(cctx, e.conn.ID); err != nil {
			t.Errorf("reading a connector on a %s disk: %v", what, err)
		}
	}
	writeAccepted := func(what string) {
		t.Helper()
		spec := e.connectorSpec()
		spec.Name = "written-after-" + what
		waitFor(t, 30*time.Second, "a write to succeed once the disk recovered from "+what, func() bool {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, err := e.c.CreateConnector(cctx, spec)
			return err == nil
		})
	}

	// Full.
	e.mu.Lock()
	servePID := e.serve.Process.Pid
	e.mu.Unlock()
	took := d.fill(servePID)
	t.Logf("disk full (filler %d bytes)", took)
	faults++
	time.Sleep(3 * time.Second) // the agent's heartbeats and checkpoints hit the full disk meanwhile
	writeRefused("full")
	d.free(servePID)
	writeAccepted("full")

	log := readFile(t, e.logPath)
	if !containsAny(strings.ToLower(log), causeWords["full"]...) {
		t.Errorf("the control plane's log does not name the full disk (%v)", causeWords["full"])
	}

	// The state on disk is whole: stopped cleanly, the database passes the integrity check, and nothing
	// refused is stored.
	e.stopServe()
	if res := d.integrity(); res != "ok" {
		t.Errorf("integrity check of the control plane's database: %s", res)
	}
	if d.mode == "tmpfs" {
		// Read-only: the kernel refuses to remount a filesystem read-only while a file on it is open for
		// writing, so the disk turns read-only while the control plane is stopped (as after a reboot onto a
		// disk the kernel remounted read-only on errors). It refuses to start, naming the cause, and starts
		// once the disk is writable again. The changes go on meanwhile.
		d.readOnly(true)
		faults++
		cmd := e.serveCommand()
		out, err := runBounded(cmd, 20*time.Second)
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Errorf("crmsync serve on a read-only data directory: %v, want a non-zero exit\n%s", err, out)
		} else if !containsAny(strings.ToLower(out), causeWords["read"]...) {
			t.Errorf("crmsync serve on a read-only data directory exited without naming the cause:\n%s", out)
		} else {
			t.Logf("crmsync serve on a read-only data directory: %s", lastLine(out))
		}
		d.readOnly(false)
	}
	e.startServe()
	cs.stop()
	conns, err := e.c.ListConnectors(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, c := range conns {
		names[c.Name] = true
	}
	if names["written-while-full"] {
		t.Error("a connector was stored although its creation failed on the full disk")
	}
	if !names["written-after-full"] {
		t.Errorf("connectors created after the disk recovered are missing: %v", names)
	}
	m, err := e.c.GetMapping(ctx, e.maps["Contact"].ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.ExcludeColumns) != 0 {
		t.Errorf("a mapping update refused on a full disk was stored: %+v", m.TableConfig)
	}
	reconciledCP(t, e.settle(3*time.Minute))
	e.finish(int(faults), faults)
}

// causeWords are what a log line naming each cause says (SQLite's and the kernel's words).
var causeWords = map[string][]string{
	"full": {"disk is full", "no space left", "file too large", "database or disk is full", "disk i/o error"},
	"read": {"read-only", "readonly", "read only"},
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func containsAny(s string, words ...string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// runBounded runs cmd and returns its combined output, killing it after timeout.
func runBounded(cmd *exec.Cmd, timeout time.Duration) (string, error) {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(timeout):
		_ = cmd.Process.Kill()
		werr := <-done
		return out.String(), fmt.Errorf("still running after %s (killed: %w)", timeout, werr)
	}
}

// stopServe sends SIGTERM to the control plane and waits (bounded) for it to exit.
func (e *cpEnv) stopServe() {
	e.t.Helper()
	e.mu.Lock()
	cmd := e.serve
	e.mu.Unlock()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	deadline := time.Now().Add(45 * time.Second)
	for cmd.Process.Signal(syscall.Signal(0)) == nil {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			e.t.Error("crmsync serve did not stop within 45 s of SIGTERM")
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitExit(cmd)
}
