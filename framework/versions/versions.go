// Package versions pins every version nodeconform builds or deploys, in one place.
//
// The node image pipeline, the kind provider and the Makefile all read these
// values (the Makefile through `nodeconform version`), so bumping Kubernetes is
// a one-line change here.
package versions

// Kubernetes is the default Kubernetes release built into the node image.
// v1.34 is the newest line that still runs on cgroup v1 hosts without
// opting in, and it pairs with kind v0.30.
const Kubernetes = "v1.34.4"

// Etcd is the etcd server module version built for the control plane.
const Etcd = "v3.6.5"

// CoreDNS is the CoreDNS module version built for cluster DNS.
const CoreDNS = "v1.12.1"

// DebianSuite is the Debian release debootstrapped as the node root filesystem.
const DebianSuite = "bookworm"

// NodeImageRepository is the local repository node images are tagged into.
const NodeImageRepository = "nodeconform/node"

// ProbeImageRepository is the local repository of the probe image.
const ProbeImageRepository = "nodeconform/probe"

// NFD is the Node Feature Discovery release the nfd suite builds from the
// Go module proxy and deploys where a cluster has no NFD of its own.
const NFD = "v0.17.3"

// NFDImageRepository is the local repository of the NFD image.
const NFDImageRepository = "nodeconform/nfd"

// Registry is the distribution (CNCF Distribution) release of the local
// registry the production-like target pulls its probe image from.
const Registry = "v3.1.2"

// RegistryImageRepository is the local repository of the registry image.
const RegistryImageRepository = "nodeconform/registry"
