//go:build unix

package main

import (
	"os"
	"syscall"
)

// ownGroupOnly accepts a file readable by its group when that group is this process's own and others get
// nothing: a Kubernetes Secret mounted with fsGroup (root:fsGroup, mode 0440) is readable by the pod's
// processes only, and cannot be made the process's own file.
func ownGroupOnly(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && fi.Mode().Perm()&0o027 == 0 && int(st.Gid) == os.Getegid() && st.Uid == 0
}
