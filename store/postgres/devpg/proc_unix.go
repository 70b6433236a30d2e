//go:build unix

package devpg

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// sysProcAttr runs a child as acct (when not nil) in its own process group, so
// that a Ctrl-C meant for the caller does not reach the server.
func sysProcAttr(acct *account) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true}
	if acct != nil {
		attr.Credential = &syscall.Credential{Uid: acct.uid, Gid: acct.gid, Groups: acct.groups}
	}
	return attr
}

// fileOwner returns the owner of path.
func fileOwner(path string) (uid, gid uint32, ok bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return uint32(st.Uid), uint32(st.Gid), true
}

// checkTraversable returns an error naming the first directory above dir that
// acct may not enter.
func checkTraversable(dir string, acct *account) error {
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("devpg: %w", err)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && !canSearch(fi.Mode().Perm(), uint32(st.Uid), uint32(st.Gid), acct) {
			return fmt.Errorf("devpg: directory %s is not traversable by user %s (uid %d), which runs PostgreSQL; "+
				"make it traversable (chmod o+x %s) or choose a data directory elsewhere (LIGHTBUS_DEV_DATA_DIR)",
				d, acct.name, acct.uid, d)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// canSearch reports whether acct may enter a directory with the given mode and
// owner.
func canSearch(perm fs.FileMode, uid, gid uint32, acct *account) bool {
	switch {
	case uid == acct.uid:
		return perm&0o100 != 0
	case acct.inGroup(gid):
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}
