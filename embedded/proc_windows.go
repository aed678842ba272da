//go:build windows

package embedded

import "syscall"

func childSysProcAttr() *syscall.SysProcAttr { return nil }
