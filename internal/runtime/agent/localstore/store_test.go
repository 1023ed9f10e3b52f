//go:build unix

package localstore_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/localstore"
)

// Two standalone agents on one --state-dir both ran, each writing checkpoints into
// the same agent.db. The second open is refused and names the process that holds the directory.
func TestASecondOpenOfAStateDirIsRefusedNamingTheHoldersPID(t *testing.T) {
	dir := t.TempDir()
	first, err := localstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	second, err := localstore.Open(dir)
	if err == nil {
		second.Close()
		first.Close()
		t.Fatal("a second store opened on a state directory another one holds")
	}
	if want := fmt.Sprintf("pid %d", os.Getpid()); !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), dir) {
		t.Errorf("the refusal %q does not name the directory and the holder (%s)", err, want)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// Closed, the directory is free again.
	again, err := localstore.Open(dir)
	if err != nil {
		t.Fatalf("reopening after the holder closed: %v", err)
	}
	again.Close()
}

// agent.db (with -wal and -shm) was created 0644 while it holds dead-letter payloads
// with personal data. Every state file is 0600 and the directory 0700, whatever the umask.
func TestTheAgentsStateFilesAreReadableByTheOwnerOnly(t *testing.T) {
	old := syscall.Umask(0o022) // the common default, under which SQLite created 0644 files
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil { // as `crmsync agent` made it
		t.Fatal(err)
	}
	s, err := localstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if err := s.AddDeadLetters(t.Context(), []agent.DeadLetter{{Table: "Contact", RecordID: "003000000000001AAA", Operation: "upsert",
		Code: "x", Reason: "refused", Payload: `{"emailaddress1":"ada@example.com"}`, At: now, FirstAt: now}}); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(e.Name(), "agent.db") {
			seen++
		}
		if perm := fi.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %04o: readable by group or others", e.Name(), perm)
		}
	}
	if seen < 2 {
		t.Errorf("only %d agent.db files in %s (want the database and its WAL): %v", seen, dir, entries)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the state directory: %v, %v; want mode 0700", fi.Mode(), err)
	}
	s.Close()
}

// A state file or directory others can read (left by an older version, or made by hand) is refused at start,
// as the control plane refuses its secret.key, with the command that fixes it.
func TestAStateDirOpenToOthersIsRefusedAtStart(t *testing.T) {
	dir := t.TempDir()
	s, err := localstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := filepath.Join(dir, "agent.db")
	if err := os.Chmod(db, 0o644); err != nil {
		t.Fatal(err)
	}
	if s, err := localstore.Open(dir); err == nil {
		s.Close()
		t.Fatal("agent.db readable by others was accepted")
	} else if !strings.Contains(err.Error(), db) || !strings.Contains(err.Error(), "chmod") {
		t.Errorf("the refusal %q does not name the file and the fix", err)
	}
	if err := os.Chmod(db, 0o600); err != nil {
		t.Fatal(err)
	}
	// A directory others may enter is narrowed to the owner (its files were private already).
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err = localstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("the state directory after a start: %v, %v; want mode 0700", fi.Mode(), err)
	}
}
