// Package sysctl is the suite for pod sysctls (SPEC §2, seed 003): safe
// sysctls everywhere, unsafe ones only where the kubelet allowlists them,
// Pod Security admission, missing kernel sysctls, workload templates and
// strict validation of the seed's mistyped manifest.
package sysctl

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/nodeconform/nodeconform/framework/e2e"
)

var env = e2e.RegisterSuite(e2e.WithNodeAccess(), e2e.SharesCluster())

func TestSysctl(t *testing.T) {
	RegisterFailHandler(Fail)
	e2e.RunSpecs(t, "sysctl")
}
