// Package versions pins every version nodeconform builds or deploys, in one place.
//
// The node image pipeline, the kind provider and the Makefile all read these
// values (the Makefile through `nodeconform version`), so bumping Kubernetes is
// a one-line change here.
package versions

// Kubernetes is the default Kubernetes release built into the node image:
// the newest minor. From v1.35 the kubelet refuses cgroup v1 hosts unless
// failCgroupV1 is false, which the kind provider sets on such hosts. etcd,
// CoreDNS and pause are built at the versions this release's kubeadm names
// (read from its constants), so they are not pinned here.
const Kubernetes = "v1.37.2"

// Containerd is the containerd release built from the Go module proxy for
// the node image (and copied onto VM nodes): kind v0.33's base image pins
// the same.
const Containerd = "v2.3.4"

// Runc is the runc release built (static, with seccomp) beside containerd.
const Runc = "v1.4.3"

// GVisor is the gVisor pseudo-version (of its go branch, which builds
// with the go command) whose runsc the node image carries: the module
// has no tagged releases.
const GVisor = "v0.0.0-20260905035102-160fafc42237"

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
