package statedir_test

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/statedir"
)

// TestHelperHolder is not a test: run as a child process by TestAnotherProcessHoldingTheDirectoryIsNamed, it
// holds STATEDIR_HOLD until its stdin closes.
func TestHelperHolder(t *testing.T) {
	dir := os.Getenv("STATEDIR_HOLD")
	if dir == "" {
		t.Skip("helper process only")
	}
	l, err := statedir.Acquire(dir, "test holder")
	if err != nil {
		fmt.Println("acquire:", err)
		os.Exit(2)
	}
	fmt.Println("held")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
	_ = l.Release()
	os.Exit(0)
}

// One owner per directory across processes: while another process holds it, Acquire is refused with
// ErrHeld, naming that process's PID and role; once it exits, the directory is free at once.
func TestAnotherProcessHoldingTheDirectoryIsNamed(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHolder$")
	cmd.Env = append(os.Environ(), "STATEDIR_HOLD="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "held" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("the holder did not take the lock: %q, %v", line, err)
	}
	_, err = statedir.Acquire(dir, "second")
	if !errors.Is(err, statedir.ErrHeld) || !strings.Contains(err.Error(), fmt.Sprintf("pid %d (test holder)", cmd.Process.Pid)) {
		t.Errorf("acquiring a held directory: %v; want ErrHeld naming pid %d", err, cmd.Process.Pid)
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("the holder: %v", err)
	}
	l, err := statedir.Acquire(dir, "second")
	if err != nil {
		t.Fatalf("after the holder exited: %v", err)
	}
	_ = l.Release()
}
