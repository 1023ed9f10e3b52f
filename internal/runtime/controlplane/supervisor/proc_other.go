//go:build !unix

package supervisor

import (
	"os"
	"os/exec"
)

func configure(*exec.Cmd) {}

// terminate stops an agent; without SIGTERM there is no drain request, so it is killed (its checkpoints
// still hold: at most the in-flight window is written again).
func terminate(p *os.Process) error { return p.Kill() }
