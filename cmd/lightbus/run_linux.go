package main

import (
	"os/exec"
	"syscall"
)

// setParentDeathSignal has the kernel send the worker SIGTERM when the
// thread that starts it exits: when lightbus run dies, even of SIGKILL.
// The worker runtime stops gracefully on SIGTERM, deregistering.
func setParentDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
