//go:build !unix

package main

import "os"

// ownGroupOnly: no group ownership to check.
func ownGroupOnly(os.FileInfo) bool { return false }
