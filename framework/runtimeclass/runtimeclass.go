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

// SameKernel reports whether pod and node run on one kernel: the boot_id
// is unique per booted kernel, so equal ids cannot come from a guest VM.
func SameKernel(pod, node Kernel) bool {
	return strings.TrimSpace(pod.BootID) != "" && strings.TrimSpace(pod.BootID) == strings.TrimSpace(node.BootID)
}

// VMProcesses are the host-side processes of a VM-backed sandbox: the
// Kata shim and the hypervisors it drives.
var VMProcesses = []string{"containerd-shim-kata-v2", "qemu", "qemu-kvm", "qemu-system-x86_64", "cloud-hypervisor", "firecracker", "virtiofsd"}

// FindVMProcesses returns which of VMProcesses run on a node, given its
// command lines (`ps -e -o args=`), by the executable's base name: comm is
// cut to 15 characters, which makes containerd-shim-runc-v2 and
// containerd-shim-kata-v2 alike.
func FindVMProcesses(psArgs string) []string {
	seen := map[string]bool{}
	for _, line := range strings.Split(psArgs, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		name := path.Base(f[0])
		for _, v := range VMProcesses {
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
