//go:build unix

package supervisor

import (
	"os"
	"os/exec"
	"syscall"
)

// configure puts the agent in its own process group, so a Ctrl-C in serve's terminal reaches serve alone and
// the agents stop in the supervisor's order (drain, then kill after the timeout).
func configure(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// terminate asks an agent to drain and exit.
func terminate(p *os.Process) error { return p.Signal(syscall.SIGTERM) }
