//go:build !linux

package main

import "os/exec"

// setParentDeathSignal does nothing where there is no parent death signal;
// the worker notices the end of lightbus run by its pipe alone.
func setParentDeathSignal(*exec.Cmd) {}
