//go:build unix

package statedir

import (
	"errors"
	"os"
	"syscall"
)

const unixPermissions = true

var errWouldBlock = syscall.EWOULDBLOCK

// lockFile takes flock(2)'s exclusive lock without waiting. flock locks belong to the open file, so a second
// open of the same directory in one process is refused too, and the lock goes with the process.
func lockFile(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) //nolint:gosec // G115: a file descriptor fits an int
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}
