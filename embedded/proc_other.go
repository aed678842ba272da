//go:build !linux && !windows

package embedded

import "syscall"

// childSysProcAttr puts the child in its own process group. Without
// Pdeathsig (Linux only) a redis-server can outlive a fenqi that is killed
// with SIGKILL.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
