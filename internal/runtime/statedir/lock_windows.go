//go:build windows

package statedir

import (
	"os"

	"golang.org/x/sys/windows"
)

const unixPermissions = false

var errWouldBlock = windows.ERROR_LOCK_VIOLATION

// lockFile takes an exclusive byte-range lock of the whole file without waiting; it goes with the handle.
func lockFile(f *os.File) error {
	ol := new(windows.Overlapped)
	return windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, ol)
}

// OwnGroupOnly is false: no group ownership to check here.
func OwnGroupOnly(os.FileInfo) bool { return false }
