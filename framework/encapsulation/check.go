// Package encapsulation applies, observes and reverts mount-namespace
// encapsulation of kubelet and the container runtime (OpenShift's
// kubens.service, SPEC §1), and holds the pure rules that decide pass/fail.
package encapsulation

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
)

// NodeNamespaces is what one node says about the three mount namespaces.
type NodeNamespaces struct {
	Node       string `json:"node"`
	Systemd    string `json:"systemdMnt"`
	Kubelet    string `json:"kubeletMnt"`
	Runtime    string `json:"runtimeMnt"`
	KubeletPID int    `json:"kubeletPID"`
	RuntimePID int    `json:"runtimePID"`
	RuntimeCmd string `json:"runtime"`
}

// Check decides whether a node's namespaces match the wanted state. With
// encapsulation on, systemd's mount namespace differs from kubelet's and
// the runtime's, and kubelet's equals the runtime's; off, all three are
// equal.
func Check(want bool, o NodeNamespaces) error {
	if o.Systemd == "" || o.Kubelet == "" || o.Runtime == "" {
		return fmt.Errorf("node %s: incomplete observation %+v", o.Node, o)
	}
	if o.Kubelet != o.Runtime {
		return fmt.Errorf("node %s: kubelet (%s) and %s (%s) are in different mount namespaces: only one of them is encapsulated, so kubelet cannot see the runtime's mounts",
			o.Node, o.Kubelet, o.RuntimeCmd, o.Runtime)
	}
	on := o.Systemd != o.Kubelet
	switch {
	case want && !on:
		return fmt.Errorf("node %s: encapsulation expected, but kubelet and %s share systemd's mount namespace %s", o.Node, o.RuntimeCmd, o.Systemd)
	case !want && on:
		return fmt.Errorf("node %s: encapsulation expected off, but kubelet and %s are in %s while systemd is in %s", o.Node, o.RuntimeCmd, o.Kubelet, o.Systemd)
	}
	return nil
}

// RevertState is what a node shows of encapsulation after a revert.
type RevertState struct {
	Node          string   `json:"node"`
	UnitEnabled   string   `json:"kubensEnabled"` // systemctl is-enabled output
	UnitActive    string   `json:"kubensActive"`  // systemctl is-active output
	PinnedNSFile  bool     `json:"pinnedNamespaceExists"`
	DropIns       []string `json:"dropIns"`
	UnitFileFound bool     `json:"unitFileFound"`
}

// CheckReverted fails when anything of encapsulation is left on the node.
func CheckReverted(s RevertState) error {
	if left := Remnants(s); len(left) > 0 {
		return fmt.Errorf("node %s: encapsulation not fully reverted, left: %s", s.Node, strings.Join(left, ", "))
	}
	return nil
}

// Remnants names what of encapsulation is on the node (unit file, enabled
// or active unit, pinned namespace, drop-ins); none on a node without it.
func Remnants(s RevertState) []string {
	var left []string
	if s.UnitFileFound {
		left = append(left, "kubens.service unit file")
	}
	if e := strings.TrimSpace(s.UnitEnabled); e == "enabled" || e == "enabled-runtime" || e == "static" || e == "linked" {
		left = append(left, "kubens.service "+e)
	}
	if a := strings.TrimSpace(s.UnitActive); a == "active" || a == "activating" {
		left = append(left, "kubens.service "+a)
	}
	if s.PinnedNSFile {
		left = append(left, "/run/kubens/mnt")
	}
	for _, d := range s.DropIns {
		left = append(left, "drop-in "+d)
	}
	return left
}

var argvRe = regexp.MustCompile(`argv\[\]=([^;]*?)\s*;`)

// WrapExecStart turns `systemctl show -p ExecStart --value` output of a
// unit into the ExecStart line of a drop-in that runs the same command
// through kubensenter. Unexpanded $VARIABLES stay as systemd wrote them.
func WrapExecStart(show, kubensenter string) (string, error) {
	m := argvRe.FindAllStringSubmatch(show, -1)
	if len(m) != 1 {
		return "", fmt.Errorf("want exactly one ExecStart command, found %d in %q", len(m), show)
	}
	argv := strings.TrimSpace(m[0][1])
	if argv == "" {
		return "", fmt.Errorf("empty ExecStart in %q", show)
	}
	if strings.HasPrefix(argv, kubensenter+" ") {
		return "", fmt.Errorf("ExecStart already runs through %s: %q", kubensenter, argv)
	}
	return kubensenter + " " + argv, nil
}

// DropIn renders a drop-in that starts a unit inside the pinned namespace.
func DropIn(execStart string) string {
	return "# Written by nodeconform: run this unit in kubens.service's mount namespace.\n" +
		"[Unit]\nAfter=kubens.service\nRequires=kubens.service\n\n" +
		"[Service]\nExecStart=\nExecStart=" + execStart + "\n"
}

// Observer is a process or container whose mount table is read.
type Observer string

// The observers of the mount propagation matrix (seeds 000/001).
const (
	Systemd    Observer = "systemd"
	HostProc   Observer = "host-process"
	Kubelet    Observer = "kubelet"
	Runtime    Observer = "runtime"
	Container1 Observer = "container1-bidirectional"
	Container2 Observer = "container2-hosttocontainer"
	Container3 Observer = "container3-none"
	// Container4 names no mountPropagation: the API's default, None.
	Container4 Observer = "container4-default"
)

// Observers in report order.
var Observers = []Observer{Systemd, HostProc, Kubelet, Runtime, Container1, Container2, Container3, Container4}

// NodeMount is the matrix row of the mount made on the node itself, in
// the host (systemd's) mount namespace, after the pod started.
const NodeMount = "node"

// Matrix says, per mount ("a" by container 1, "b" by 2, "c" by 3, "d" by
// 4, NodeMount by the node), which observers see it.
type Matrix map[string]map[Observer]bool

// ExpectedMatrix is the seeds' diagram, with upstream's two further
// properties (test/e2e/node/mount_propagation.go): the default
// propagation is None, and a mount made on the node reaches containers.
// Container 1 (Bidirectional) mounts a, container 2 (HostToContainer) b,
// container 3 (None) c, container 4 (no propagation named) d. a reaches
// systemd and host processes only without encapsulation; it always
// reaches kubelet, the runtime and container 2. b, c and d stay in their
// containers. The node's mount reaches kubelet, the runtime and the
// Bidirectional and HostToContainer containers in both columns (kubens'
// namespace is a slave of the host's), never the None and default ones.
func ExpectedMatrix(encapsulated bool) Matrix {
	only := func(o Observer) map[Observer]bool {
		m := map[Observer]bool{}
		for _, x := range Observers {
			m[x] = x == o
		}
		return m
	}
	return Matrix{
		"a":       {Systemd: !encapsulated, HostProc: !encapsulated, Kubelet: true, Runtime: true, Container1: true, Container2: true, Container3: false, Container4: false},
		"b":       only(Container2),
		"c":       only(Container3),
		"d":       only(Container4),
		NodeMount: {Systemd: true, HostProc: true, Kubelet: true, Runtime: true, Container1: true, Container2: true, Container3: false, Container4: false},
	}
}

// Compare lists every cell where observed differs from expected.
func Compare(expected, observed Matrix) []string {
	var out []string
	for _, mnt := range sortedKeys(expected) {
		for _, o := range Observers {
			want, got := expected[mnt][o], observed[mnt][o]
			if _, seen := observed[mnt][o]; !seen {
				out = append(out, fmt.Sprintf("mount %s: %s not observed", mnt, o))
				continue
			}
			if want != got {
				out = append(out, fmt.Sprintf("mount %s: %s sees it=%v, want %v", mnt, o, got, want))
			}
		}
	}
	return out
}

func sortedKeys(m Matrix) []string {
	var k []string
	for x := range m {
		k = append(k, x)
	}
	sort.Strings(k)
	return k
}

// Relation names a node's encapsulation state as a profile declares it:
// "on" (kubelet = runtime ≠ systemd), "off" (all three equal), or the
// broken states "kubelet-only", "runtime-only" and "split" (kubelet and
// the runtime each in a namespace of its own).
func Relation(o NodeNamespaces) string {
	switch {
	case o.Systemd == "" || o.Kubelet == "" || o.Runtime == "":
		return "(not observed)"
	case o.Kubelet == o.Runtime && o.Kubelet == o.Systemd:
		return "off"
	case o.Kubelet == o.Runtime:
		return "on"
	case o.Runtime == o.Systemd:
		return "kubelet-only"
	case o.Kubelet == o.Systemd:
		return "runtime-only"
	}
	return "split"
}
