// Package kindconfigs holds the kind cluster configurations nodeconform
// creates, embedded so the binary works outside the source tree.
package kindconfigs

import (
	"embed"
	"fmt"
)

//go:embed *.yaml
var files embed.FS

// Default is the name of the default configuration.
const Default = "default"

// Get returns the embedded configuration called name (without .yaml).
func Get(name string) ([]byte, error) {
	data, err := files.ReadFile(name + ".yaml")
	if err != nil {
		return nil, fmt.Errorf("no embedded kind config %q", name)
	}
	return data, nil
}
