// Package cluster is the suite that proves the cluster under test is sound
// before any node-level check means anything: nodes Ready, pod traffic
// across nodes, Services through kube-proxy, and cluster DNS.
package cluster

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/nodeconform/nodeconform/framework/e2e"
)

var env = e2e.RegisterSuite(e2e.SharesCluster())

func TestCluster(t *testing.T) {
	RegisterFailHandler(Fail)
	e2e.RunSpecs(t, "cluster")
}
