// Package pgtest starts private PostgreSQL clusters for tests: initdb into a fresh directory, the server on a
// free loopback port, owned and run by an unprivileged user when the test runs as root (initdb and postgres
// refuse root), stopped and removed at cleanup. Never a system-wide server.
//
// The binaries are found in $PG_BIN, else the newest /usr/lib/postgresql/*/bin (Debian's layout), else on
// PATH. Without them a test is skipped with a message saying how to install them; under CI (CI=true) it
// fails instead, since .ci/run installs Debian's postgresql package when they are missing.
//
// The server is the test process's child (postgres itself, not daemonized by pg_ctl) with a parent-death
// signal, so a test binary killed mid-run leaves no server behind. pg_ctl is not needed: stopping is
// SIGINT (PostgreSQL's "fast" shutdown) and a wait.
//
// Shared clusters: Database returns a fresh database on one cluster per test process (a database takes
// ~0.1 s, a cluster ~1.5 s); call Shutdown from TestMain to remove it at the end.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"
)

// Superuser is the cluster's superuser role.
const Superuser = "crmsync"

// Cluster is one running (or stopped) private PostgreSQL server.
type Cluster struct {
	Dir      string // the data directory's parent: data/, the password file and the server's log
	Port     int
	password string
	bin      string
	cred     *syscall.Credential // nil when the test process is not root

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// binDir finds the PostgreSQL server binaries ("" when there are none).
func binDir() string {
	if d := os.Getenv("PG_BIN"); d != "" {
		return d
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

func versionOf(dir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(dir)))
	return v
}

// Available reports whether the binaries are present (the directory, or why not).
func Available() (string, error) {
	d := binDir()
	if d == "" {
		return "", errors.New("no PostgreSQL server binaries (initdb, postgres): install Debian's postgresql package (apt-get install postgresql) or set PG_BIN")
	}
	for _, b := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(d, b)); err != nil {
			return "", fmt.Errorf("PostgreSQL binaries in %s: %w", d, err)
		}
	}
	return d, nil
}

// require skips (outside CI) or fails (in CI) a test when the binaries are missing.
func require(t testing.TB) string {
	t.Helper()
	d, err := Available()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (CI installs it in .ci/run)", err)
		}
		t.Skip(err.Error())
	}
	return d
}

// New starts a private cluster for one test; it is stopped and removed when the test ends.
func New(t testing.TB) *Cluster {
	t.Helper()
	c, err := start(require(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Remove(); err != nil {
			t.Error(err)
		}
	})
	return c
}

// StartCluster starts a private cluster outside a test (the benchmarks); the caller removes it (Remove).
func StartCluster() (*Cluster, error) {
	bin, err := Available()
	if err != nil {
		return nil, err
	}
	return start(bin)
}

// Pid is the running server's process ID (0 when stopped).
func (c *Cluster) Pid() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

// start initializes and starts a cluster in a new directory.
func start(bin string) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "crmsync-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{Dir: dir, bin: bin}
	if err := c.init(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	if err := c.Start(); err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

// init runs initdb as the unprivileged owner with a random superuser password (SCRAM on loopback TCP; no
// Unix socket, so nothing else on the machine reaches it without the password).
func (c *Cluster) init() error {
	if os.Geteuid() == 0 {
		cred, err := unprivileged()
		if err != nil {
			return err
		}
		c.cred = cred
		if err := os.Chown(c.Dir, int(cred.Uid), int(cred.Gid)); err != nil {
			return err
		}
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	c.password = hex.EncodeToString(b)
	pwfile := filepath.Join(c.Dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.password+"\n"), 0o600); err != nil {
		return err
	}
	if c.cred != nil {
		if err := os.Chown(pwfile, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
			return err
		}
	}
	out, err := c.command(context.Background(), "initdb", "--pgdata", filepath.Join(c.Dir, "data"), "--username", Superuser,
		"--pwfile", pwfile, "--auth", "scram-sha-256", "--encoding", "UTF8", "--locale", "C", "--no-sync").CombinedOutput()
	_ = os.Remove(pwfile)
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	return nil
}

// unprivileged returns the user the cluster runs as under root: nobody.
func unprivileged() (*syscall.Credential, error) {
	u, err := user.Lookup("nobody")
	if err != nil {
		return nil, fmt.Errorf("running PostgreSQL as root is refused and there is no user nobody: %w", err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, name), args...) //nolint:gosec // G204: the PostgreSQL binaries, with arguments of this package
	cmd.Dir = c.Dir
	// The server dies with the test process, whatever kills it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Pdeathsig: syscall.SIGKILL, Setpgid: true}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// Start starts the server (again, after Stop) on the cluster's port (a free one the first time) and waits
// until it accepts connections.
func (c *Cluster) Start() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd != nil {
		return errors.New("pgtest: the cluster is running")
	}
	if c.Port == 0 {
		p, err := freePort()
		if err != nil {
			return err
		}
		c.Port = p
	}
	logf, err := os.OpenFile(filepath.Join(c.Dir, "postgres.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := c.command(context.Background(), "postgres", "-D", filepath.Join(c.Dir, "data"), "-p", strconv.Itoa(c.Port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=", "-c", "max_connections=300",
		"-c", "shared_buffers=32MB",
		// fsync off: a killed server (Kill) loses nothing the kernel has; only a machine crash would. Commits
		// stay synchronous, so a committed transaction survives Kill.
		"-c", "fsync=off", "-c", "full_page_writes=off")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	c.cmd, c.done = cmd, done
	return c.waitReady(done)
}

func (c *Cluster) waitReady(done chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			_ = conn.Close(ctx)
			cancel()
			return nil
		}
		cancel()
		select {
		case <-done:
			return fmt.Errorf("postgres exited at start: %s", c.LogTail())
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections within 30 s: %w\n%s", err, c.LogTail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server (fast shutdown: open sessions are ended) and waits for it; a stopped cluster is a
// no-op.
func (c *Cluster) Stop() error { return c.stop(syscall.SIGINT) }

// Kill stops the server abruptly (SIGKILL of the postmaster's process group: a crash; the next Start
// recovers from the WAL).
func (c *Cluster) Kill() error { return c.stop(syscall.SIGKILL) }

func (c *Cluster) stop(sig syscall.Signal) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cmd == nil {
		return nil
	}
	pid := c.cmd.Process.Pid
	if sig == syscall.SIGKILL {
		// The postmaster's children (backends, checkpointer, walwriter...) each call setsid, so the
		// postmaster's process group holds the postmaster alone: a crash kills them one by one.
		_ = syscall.Kill(-pid, sig)
		for _, child := range childrenOf(pid) {
			_ = syscall.Kill(child, sig)
		}
	} else {
		_ = c.cmd.Process.Signal(sig)
	}
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-c.done
	}
	c.cmd, c.done = nil, nil
	return c.waitDetached()
}

// waitDetached waits until no process is attached to the shared memory segment a killed server left behind.
// The postmaster is reaped before its children have exited; a server started while one of them is still
// attached refuses to run ("pre-existing shared memory block ... is still in use"), which is the check this
// waits for. A cleanly stopped server removed its segment and its postmaster.pid.
func (c *Cluster) waitDetached() error {
	id, ok := c.segment()
	if !ok {
		return nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		var desc unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err != nil {
			return nil //nolint:nilerr // the segment is gone (EINVAL/EIDRM): nothing is attached
		}
		if desc.Nattch == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgtest: %d processes of the killed server are still attached to its shared memory after 30 s", desc.Nattch)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// segment returns the ID of the System V shared memory segment recorded in the data directory's
// postmaster.pid (line 7: key and ID), if the file is there.
func (c *Cluster) segment() (int, bool) {
	b, err := os.ReadFile(filepath.Join(c.Dir, "data", "postmaster.pid"))
	if err != nil {
		return 0, false
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 7 {
		return 0, false
	}
	f := strings.Fields(lines[6])
	if len(f) != 2 {
		return 0, false
	}
	id, err := strconv.Atoi(f[1])
	return id, err == nil
}

// childrenOf lists the processes whose parent is pid (from /proc).
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

// Remove stops the server and deletes its directory.
func (c *Cluster) Remove() error {
	if err := c.Kill(); err != nil {
		return err
	}
	// A killed server's segment outlives it (PostgreSQL removes it at a clean shutdown or reuses it at the
	// next start): remove it, or every removed cluster leaks one.
	if id, ok := c.segment(); ok {
		_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	}
	return os.RemoveAll(c.Dir)
}

// URL is the connection URL of a database of the cluster, as the superuser.
func (c *Cluster) URL(database string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(Superuser, c.password),
		Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port)), Path: "/" + database, RawQuery: "sslmode=disable"}
	return u.String()
}

// CreateDatabase creates a fresh database and returns its URL.
func (c *Cluster) CreateDatabase(ctx context.Context, name string) (string, error) {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	return c.URL(name), nil
}

// LogTail returns the end of the server's log, for failure messages.
func (c *Cluster) LogTail() string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "postgres.log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

var (
	sharedMu  sync.Mutex
	shared    *Cluster
	sharedErr error
	databases int
)

// Database creates a fresh database on the test process's shared cluster (started on first use) and
// returns its URL. The database is dropped when the test ends.
func Database(t testing.TB) string {
	t.Helper()
	bin := require(t)
	sharedMu.Lock()
	if shared == nil && sharedErr == nil {
		shared, sharedErr = start(bin)
	}
	c, err := shared, sharedErr
	databases++
	name := fmt.Sprintf("t%d_%s", databases, sanitize(t.Name()))
	sharedMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	u, err := c.CreateDatabase(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err != nil {
			return // the cluster is gone; Shutdown removes it
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	})
	return u
}

func sanitize(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 40 {
			break
		}
	}
	return b.String()
}

// Shutdown stops and removes the shared cluster; TestMain calls it after the tests ran.
func Shutdown() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	if shared != nil {
		if err := shared.Remove(); err != nil {
			fmt.Fprintln(os.Stderr, "pgtest:", err)
		}
		shared = nil
	}
	sharedErr = nil
}
