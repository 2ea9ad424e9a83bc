// Package primitives is the suite for the Linux primitives behind pods
// (SPEC §5, seed 004): containers are node processes isolated by pid, net,
// mnt, uts and ipc namespaces; hostPath, resolv.conf bind mounts and
// kube-proxy's iptables rules are what the node shows.
package primitives

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/nodeconform/nodeconform/framework/e2e"
)

var env = e2e.RegisterSuite(e2e.WithNodeAccess(), e2e.SharesCluster())

func TestPrimitives(t *testing.T) {
	RegisterFailHandler(Fail)
	e2e.RunSpecs(t, "primitives")
}
