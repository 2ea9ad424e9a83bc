// Command nodeconform proves that a Kubernetes cluster's node-level isolation
// and tuning really work. See the README for the commands.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/nodeconform/nodeconform/framework/capfix"
)

func main() {
	// Installed under the wrapper name, this binary is dockerd's (or
	// containerd's) runc: see framework/capfix.
	if filepath.Base(os.Args[0]) == capfix.WrapperName {
		err := capfix.RunWrapper(os.Args)
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(execute(os.Args[1:]))
}
