// Package encapsulation is the suite for mount-namespace encapsulation of
// kubelet and the container runtime (SPEC §1, seeds 000/001): it applies
// kubens.service on every systemd node, checks namespaces, kubensenter and
// the mount propagation matrix before and after, and reverts.
package encapsulation

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/nodeconform/nodeconform/framework/e2e"
)

var env = e2e.RegisterSuite(e2e.WithNodeAccess())

func TestEncapsulation(t *testing.T) {
	RegisterFailHandler(Fail)
	e2e.RunSpecs(t, "encapsulation")
}
