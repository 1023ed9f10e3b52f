// Package statedir guards the directories crmsync keeps state in: the control plane's --data-dir and the
// standalone agent's --state-dir.
//
// Contracts:
//   - One owner per directory. Acquire takes an exclusive, non-blocking lock on DIR/crmsync.lock and writes
//     the holder's PID and role into it; a second process (or a second open in the same process) is refused
//     with an error naming the directory and the holder's PID. The operating system drops the lock when the
//     holder exits, however it exits, so a crash never leaves a stale lock behind.
//   - Owner-only access. The directory is created 0700, and an existing one group or others can enter is
//     narrowed to 0700 at start (refused when this process cannot change it). Every state file named to
//     CheckPrivate that group or others can access is refused at start with the chmod that fixes it, as the
//     control plane has always refused a readable secret.key: a file that was readable may have been read,
//     so the operator decides. Files are created 0600 by CreatePrivate
//     before SQLite opens them (SQLite would create them with the umask, and gives its -wal and -shm files the
//     database file's mode).
//
// Permission checks apply where Unix permissions exist; on Windows the directory's ACL is the operator's.
package statedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// LockFile is the lock file's name inside a state directory.
const LockFile = "crmsync.lock"

// ErrHeld is wrapped by Acquire's error when another process holds the directory.
var ErrHeld = errors.New("state directory in use")

// Lock is a held state directory; Release lets it go.
type Lock struct {
	f   *os.File
	dir string
}

// Acquire creates dir (0700) when missing, makes it owner-only when it is not, and takes the
// directory's lock for this process. role names the holder in the lock file ("crmsync serve").
func Acquire(dir, role string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := checkDir(dir); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) //nolint:gosec // inside the operator's state directory
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := CheckPrivate(path); err != nil {
		_ = f.Close()
		return nil, err
	}
	if err := lockFile(f); err != nil {
		holder := holderOf(path)
		_ = f.Close()
		if errors.Is(err, errWouldBlock) {
			return nil, fmt.Errorf("%w: %s is held by %s; one process per directory (stop it, or give this one another directory)", ErrHeld, dir, holder)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	// The lock is ours: say who holds it, for the next process that is refused.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"+role+"\n"), 0)
		_ = f.Sync()
	}
	return &Lock{f: f, dir: dir}, nil
}

// Release lets the directory go (closing the file drops the lock). Safe on a nil Lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// holderOf reads who holds a lock: "pid N (role)", or "another process" when the file does not say yet (the
// holder has just taken it).
func holderOf(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "another process"
	}
	lines := strings.SplitN(strings.TrimSpace(string(b)), "\n", 2)
	pid, err := strconv.Atoi(strings.TrimSpace(lines[0]))
	if err != nil || pid <= 0 {
		return "another process"
	}
	if len(lines) == 2 && strings.TrimSpace(lines[1]) != "" {
		return fmt.Sprintf("pid %d (%s)", pid, strings.TrimSpace(lines[1]))
	}
	return fmt.Sprintf("pid %d", pid)
}

// AcquireDB takes dir for role (Acquire) and readies the SQLite database DIR/name in it: the database and
// its -wal and -shm files must be owner-only (CheckPrivate), and the database is created 0600 before SQLite
// opens it (SQLite would use the umask). It returns the lock, to release when the database is closed, and
// the database's path; on error nothing is held.
func AcquireDB(dir, role, name string) (*Lock, string, error) {
	lock, err := Acquire(dir, role)
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, name)
	err = CheckPrivate(path, path+"-wal", path+"-shm")
	if err == nil {
		err = CreatePrivate(path)
	}
	if err != nil {
		_ = lock.Release()
		return nil, "", err
	}
	return lock, path, nil
}

// CreatePrivate creates path with mode 0600 when it does not exist, so a database opened on it afterwards is
// never created with the umask's mode; an existing file is left as it is (CheckPrivate judges it).
func CreatePrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600) //nolint:gosec // inside the operator's state directory
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	return f.Close()
}

// CheckPrivate refuses any of the files that exists with access for group or others, naming it and the fix.
// Missing files are fine (SQLite creates -wal and -shm with the database's mode).
func CheckPrivate(paths ...string) error {
	if !unixPermissions {
		return nil
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("checking %s: %w", p, err)
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			return fmt.Errorf("%s has mode %04o: it holds crmsync state and must be readable by its owner only (chmod 600 %s)", p, perm, p)
		}
	}
	return nil
}

// checkDir makes an existing directory owner-only: a directory this process owns that group or others can
// enter is narrowed to 0700 (its files are 0600 already, so only their names were visible); one it cannot
// change (owned by another user) is refused.
func checkDir(dir string) error {
	if !unixPermissions {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("checking %s: %w", dir, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil { //nolint:gosec // G302: 0700 is the narrowing
			return fmt.Errorf("%s has mode %04o and cannot be made owner-only (%w): a state directory must be accessible by its owner only (chmod 700 %s)", dir, perm, err, dir)
		}
	}
	return nil
}
