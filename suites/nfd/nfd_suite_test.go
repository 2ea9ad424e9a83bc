// Package nfd is the suite for Node Feature Discovery (SPEC §4, seed 002):
// the kata eligibility label on exactly the nodes whose CPU flags and
// loaded modules satisfy the seed's rule, against ground truth read on
// each node, with a positive control rule so an NFD that labels nothing
// cannot pass.
package nfd

import (
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/nodeconform/nodeconform/framework/e2e"
)

var env = e2e.RegisterSuite(e2e.WithNodeAccess(), e2e.WithNFDImage(), e2e.SharesCluster())

func TestNFD(t *testing.T) {
	RegisterFailHandler(Fail)
	e2e.RunSpecs(t, "nfd")
}
