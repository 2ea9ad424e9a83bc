// Package runtimeclass is the suite for sandboxed runtimes (SPEC §3, seed
// 002): the kata RuntimeClass's overhead from admission through the
// scheduler to the pod cgroup, RuntimeClass scheduling, unknown handlers,
// isolation from the node's kernel where the handler is a sandbox (a VM or
// gVisor), and memory enforcement.
package runtimeclass

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/nodeconform/nodeconform/framework/e2e"
)

var env = e2e.RegisterSuite(e2e.WithNodeAccess())

func TestRuntimeClass(t *testing.T) {
	RegisterFailHandler(Fail)
	e2e.RunSpecs(t, "runtimeclass")
}
