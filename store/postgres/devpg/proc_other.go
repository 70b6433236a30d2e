//go:build !unix

package devpg

import "syscall"

// sysProcAttr returns nil: switching users is only supported on unix.
func sysProcAttr(*account) *syscall.SysProcAttr { return nil }

// fileOwner is unknown outside unix.
func fileOwner(string) (uid, gid uint32, ok bool) { return 0, 0, false }

// checkTraversable has nothing to check outside unix.
func checkTraversable(string, *account) error { return nil }
