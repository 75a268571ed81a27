// Command pause is the sandbox ("pause") container of Odin's Kubernetes test node: it holds the pod's namespaces
// open, reaps orphaned children and exits on SIGINT/SIGTERM. No registry is reachable from the test machine, so the
// upstream pause image cannot be pulled; this is built locally by tools/images/build.sh.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	children := make(chan os.Signal, 16)
	signal.Notify(children, syscall.SIGCHLD)
	for {
		select {
		case <-stop:
			os.Exit(0)
		case <-children:
			for {
				var status syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
		}
	}
}
