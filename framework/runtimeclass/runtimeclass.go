// Package runtimeclass holds the rules a sandboxed RuntimeClass must obey
// (SPEC §3, seed 002): its declared overhead, what admission copies into a
// pod, what the scheduler counts and what the kubelet writes into the pod
// cgroup. The arithmetic is the one the scheduler and the kubelet use
// (k8s.io/component-helpers), so specs compare exact values.
package runtimeclass

import (
	"fmt"
	"path"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	resourcehelper "k8s.io/component-helpers/resource"

	"github.com/nodeconform/nodeconform/framework/cgroups"
)

// ParseOverhead turns configured quantities ({cpu: 500m, memory: 500Mi})
// into a ResourceList, naming the bad entry on error.
func ParseOverhead(m map[string]string) (corev1.ResourceList, error) {
	out := corev1.ResourceList{}
	for name, v := range m {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return nil, fmt.Errorf("runtimeClass.overhead.%s %q: %w", name, v, err)
		}
		out[corev1.ResourceName(name)] = q
	}
	return out, nil
}

// CompareOverhead returns one message per resource where got differs from
// want, including resources only one side has. Quantities compare by
// value, so 0.5 and 500m are equal.
func CompareOverhead(want, got corev1.ResourceList) []string {
	names := map[corev1.ResourceName]bool{}
	for n := range want {
		names[n] = true
	}
	for n := range got {
		names[n] = true
	}
	var out []string
	for n := range names {
		w, inW := want[n]
		g, inG := got[n]
		switch {
		case !inG:
			out = append(out, fmt.Sprintf("%s: no overhead, want %s", n, w.String()))
		case !inW:
			out = append(out, fmt.Sprintf("%s: overhead %s, want none", n, g.String()))
		case w.Cmp(g) != 0:
			out = append(out, fmt.Sprintf("%s: overhead %s, want %s", n, g.String(), w.String()))
		}
	}
	sort.Strings(out)
	return out
}

// PodFixed is a RuntimeClass's overhead.podFixed (nil when it declares none).
func PodFixed(rc *nodev1.RuntimeClass) corev1.ResourceList {
	if rc.Overhead == nil {
		return nil
	}
	return rc.Overhead.PodFixed
}

// PodRequests is what the scheduler charges a pod against a node's
// allocatable: containers, init containers and spec.overhead.
func PodRequests(p *corev1.Pod) corev1.ResourceList {
	return resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})
}

// ExpectedPodCgroup is what the kubelet writes into a pod-level cgroup
// (ResourceConfigForPod in pkg/kubelet/cm): shares from the summed
// requests, quota and memory limit from the summed limits, each including
// spec.overhead. A Burstable pod gets a quota or memory limit only when
// every container declares one; a BestEffort pod gets neither. cfsQuota
// false is a kubelet that writes no quota.
func ExpectedPodCgroup(p *corev1.Pod, cfsQuota bool) cgroups.Expected {
	cpuDeclared, memDeclared := true, true
	reqs := resourcehelper.PodRequests(p, resourcehelper.PodResourcesOptions{})
	limits := resourcehelper.PodLimits(p, resourcehelper.PodResourcesOptions{})
	// As the kubelet does: a limit counts only when every container,
	// init containers included, declares it, or the pod-level resources do.
	for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
		if c.Resources.Limits.Cpu().IsZero() {
			cpuDeclared = false
		}
		if c.Resources.Limits.Memory().IsZero() {
			memDeclared = false
		}
	}
	if r := p.Spec.Resources; r != nil {
		if !r.Limits.Cpu().IsZero() {
			cpuDeclared = true
		}
		if !r.Limits.Memory().IsZero() {
			memDeclared = true
		}
	}
	var e cgroups.Expected
	switch p.Status.QOSClass {
	case corev1.PodQOSGuaranteed:
		cpuDeclared, memDeclared = true, true
	case corev1.PodQOSBestEffort:
		return cgroups.Expected{CPURequestMilli: 0}
	}
	e.CPURequestMilli = reqs.Cpu().MilliValue()
	if cpuDeclared && cfsQuota {
		e.CPULimitMilli = limits.Cpu().MilliValue()
	}
	if memDeclared {
		e.MemoryLimit = limits.Memory().Value()
	}
	return e
}

// SandboxFailure finds the event the kubelet records when it cannot create
// a pod's sandbox because the runtime has no such handler: reason
// FailedCreatePodSandBox with the handler's name in the message.
func SandboxFailure(events []corev1.Event, handler string) (corev1.Event, bool) {
	for _, e := range events {
		if e.Reason == "FailedCreatePodSandBox" && strings.Contains(e.Message, handler) {
			return e, true
		}
	}
	return corev1.Event{}, false
}

// Insufficient finds the scheduler's FailedScheduling event that names an
// insufficient resource ("Insufficient cpu", "Insufficient memory").
func Insufficient(events []corev1.Event, res corev1.ResourceName) (corev1.Event, bool) {
	for _, e := range events {
		if e.Reason == "FailedScheduling" && strings.Contains(e.Message, "Insufficient "+string(res)) {
			return e, true
		}
	}
	return corev1.Event{}, false
}

// Kernel identifies the kernel a process runs on. A pod in a VM has its
// own boot_id and usually its own kernel command line; a runc pod shares
// the node's.
type Kernel struct {
	BootID  string `json:"bootID"`
	Cmdline string `json:"cmdline"`
	Version string `json:"version"`
}

// Sandbox kinds, as Classify decides them.
const (
	// SharedKernel: the pod runs on the node's kernel (runc, crun).
	SharedKernel = "shared-kernel"
	// VMSandbox: the pod runs on a guest kernel in a VM (Kata).
	VMSandbox = "vm"
	// UserSpaceKernel: the pod's system calls are served by a kernel in
	// user space on the node (gVisor's sentry).
	UserSpaceKernel = "user-space-kernel"
)

// VMProcesses are the host-side processes of a VM-backed sandbox: the
// Kata shim and the hypervisors it drives.
var VMProcesses = []string{"containerd-shim-kata-v2", "qemu", "qemu-kvm", "qemu-system-x86_64", "cloud-hypervisor", "firecracker", "virtiofsd"}

// GVisorProcesses are gVisor's sandbox and file proxy on the node; runsc
// names them in argv[0]. Its shim alone proves no sandbox and is left out.
var GVisorProcesses = []string{"runsc-sandbox", "runsc-gofer"}

// Isolation is what Classify decided and why.
type Isolation struct {
	Kind string `json:"kind"`
	// Processes are the recognised sandbox processes on the node.
	Processes []string `json:"sandboxProcessesOnNode"`
	// Evidence says, in words, what decided Kind.
	Evidence string `json:"evidence"`
	// Problem, when set, is evidence that contradicts itself (an own
	// kernel with no sandbox process on the node): a failure, whatever the
	// kind was meant to be.
	Problem string `json:"problem,omitempty"`
}

// Classify decides from a pod's and its node's kernel identity and the
// node's command lines (`ps -e -o args=`) whether the pod shares the node's
// kernel, runs in a VM, or behind a user-space kernel. The boot_id decides
// whether the kernel is shared (it is unique per booted kernel; gVisor and
// guests make their own); the node's processes decide which sandbox it is.
func Classify(pod, node Kernel, psArgs string) Isolation {
	vm, gv := findProcesses(psArgs, VMProcesses), findProcesses(psArgs, GVisorProcesses)
	all := append(append([]string{}, gv...), vm...)
	podID, nodeID := strings.TrimSpace(pod.BootID), strings.TrimSpace(node.BootID)
	switch {
	case podID == "" || nodeID == "":
		return Isolation{Kind: SharedKernel, Processes: all, Problem: fmt.Sprintf("boot_id not read (pod %q, node %q): isolation cannot be decided", podID, nodeID)}
	case podID == nodeID:
		return Isolation{Kind: SharedKernel, Processes: all, Evidence: "the pod's boot_id is the node's (" + nodeID + ")"}
	}
	own := fmt.Sprintf("the pod's boot_id %s is not the node's %s", podID, nodeID)
	if v := strings.TrimSpace(pod.Version); v != "" && v == strings.TrimSpace(node.Version) {
		own += "; /proc/version is the node's"
	} else {
		own += fmt.Sprintf("; the pod's kernel is %q", firstWords(pod.Version, 3))
	}
	switch {
	case len(gv) > 0 && len(vm) == 0:
		return Isolation{Kind: UserSpaceKernel, Processes: all, Evidence: own + "; gVisor's " + strings.Join(gv, ", ") + " run on the node"}
	case len(vm) > 0 && len(gv) == 0:
		iso := Isolation{Kind: VMSandbox, Processes: all, Evidence: own + "; " + strings.Join(vm, ", ") + " run on the node"}
		if strings.TrimSpace(pod.Cmdline) != "" && strings.TrimSpace(pod.Cmdline) == strings.TrimSpace(node.Cmdline) {
			iso.Problem = "the pod has its own boot_id but the node's kernel command line"
		}
		return iso
	case len(vm) > 0 && len(gv) > 0:
		// Both kinds run on the node (two sandboxed classes in use): the
		// kernel identity still tells a guest kernel from gVisor's.
		if strings.Contains(strings.ToLower(pod.Version), "gvisor") || strings.Contains(pod.Cmdline, "gvisor") {
			return Isolation{Kind: UserSpaceKernel, Processes: all, Evidence: own + "; gVisor's kernel identity"}
		}
		return Isolation{Kind: VMSandbox, Processes: all, Evidence: own + "; a guest kernel, VM and gVisor processes both on the node"}
	}
	return Isolation{Kind: VMSandbox, Processes: all, Evidence: own, Problem: "the pod has its own boot_id but no VMM, Kata shim or gVisor sandbox runs on the node"}
}

func firstWords(s string, n int) string {
	f := strings.Fields(s)
	if len(f) > n {
		f = f[:n]
	}
	return strings.Join(f, " ")
}

// findProcesses returns which of names run, by the executable's base name
// in each command line: comm is cut to 15 characters, which makes
// containerd-shim-runc-v2 and containerd-shim-kata-v2 alike.
func findProcesses(psArgs string, names []string) []string {
	seen := map[string]bool{}
	for _, line := range strings.Split(psArgs, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		name := path.Base(f[0])
		for _, v := range names {
			if name == v {
				seen[v] = true
			}
		}
	}
	out := make([]string, 0, len(seen))
	for v := range seen {
		out = append(out, v)
	}
	sort.Strings(out)
	return out
}
