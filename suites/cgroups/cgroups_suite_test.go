// Package cgroups is the suite for cgroup enforcement (SPEC §5, seed 004):
// QoS placement, exact limit files, CFS throttling, OOM kills, the pids
// limit, huge pages and swap, read on the node for cgroup v1 and v2.
package cgroups

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/nodeconform/nodeconform/framework/e2e"
)

var env = e2e.RegisterSuite(e2e.WithNodeAccess())

func TestCgroups(t *testing.T) {
	RegisterFailHandler(Fail)
	e2e.RunSpecs(t, "cgroups")
}
