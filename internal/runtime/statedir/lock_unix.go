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

// OwnGroupOnly accepts a secret file that root owns and only this process's own group may also read (mode
// 0440 or 0400, nothing for others): a Kubernetes Secret mounted with the pod's fsGroup, which cannot be made
// the process's own file.
func OwnGroupOnly(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && fi.Mode().Perm()&0o027 == 0 && int(st.Gid) == os.Getegid() && st.Uid == 0
}
