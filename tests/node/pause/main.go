// Command pause is the sandbox process of the test node's pods (containerd's `sandbox_image`):
// it holds the pod's namespaces, reaps the children re-parented to it and exits on SIGINT or
// SIGTERM, as Kubernetes' own pause does. No registry with that image is reachable here, so the
// node tests build this one (scripts/install-node.sh).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
