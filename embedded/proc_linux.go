//go:build linux

package embedded

import "syscall"

// childSysProcAttr puts the child in its own process group (a Ctrl-C in
// the terminal reaches fenqi, which then stops redis-server in order) and
// has the kernel SIGTERM it if fenqi dies without closing it.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
