//go:build !unix && !windows

package statedir

import (
	"errors"
	"os"
)

const unixPermissions = false

var errWouldBlock = errors.New("locked")

// lockFile cannot lock on this platform; crmsync is built for Unix and Windows only.
func lockFile(*os.File) error { return errors.New("file locking is not supported on this platform") }

// OwnGroupOnly is false: no group ownership to check here.
func OwnGroupOnly(os.FileInfo) bool { return false }
