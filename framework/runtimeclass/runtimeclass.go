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
	"strconv"
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

// Selector is a RuntimeClass's scheduling.nodeSelector (nil when it has
// none: every node).
func Selector(rc *nodev1.RuntimeClass) map[string]string {
	if rc.Scheduling == nil {
		return nil
	}
	return rc.Scheduling.NodeSelector
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

// Offers says whether a node's runtime offers handler, from the handlers
// the kubelet reports in status.runtimeHandlers (from the CRI). known is
// false where the node reports none (a runtime too old to say): then
// nothing can be concluded.
func Offers(n corev1.Node, handler string) (offered, known bool) {
	if len(n.Status.RuntimeHandlers) == 0 {
		return false, false
	}
	for _, h := range n.Status.RuntimeHandlers {
		if h.Name == handler {
			return true, true
		}
	}
	return false, true
}

// HandlerNames lists a node's reported runtime handlers ("" is the
// default handler, shown as "(default)").
func HandlerNames(n corev1.Node) []string {
	var out []string
	for _, h := range n.Status.RuntimeHandlers {
		name := h.Name
		if name == "" {
			name = "(default)"
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Process is a process on the node, as `ps -e -ww -o pid=,rss=,cgroup:4096=,args=`
// shows it.
type Process struct {
	PID    int    `json:"pid"`
	RSSKiB int64  `json:"rssKiB"`
	Args   string `json:"args"`
}

// PodProcesses picks from `ps -e -ww -o pid=,rss=,cgroup:4096=,args=` the
// processes whose cgroup is in the pod's (by UID, as either cgroup driver
// spells it): for runc the pause and container processes, for gVisor
// its sandbox and gofer, for Kata the VMM where the runtime places it in
// the pod cgroup.
func PodProcesses(ps, uid string) []Process {
	var out []Process
	for _, line := range strings.Split(ps, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		pid, err1 := strconv.Atoi(f[0])
		rss, err2 := strconv.ParseInt(f[1], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		in := false
		for _, c := range strings.Split(f[2], ",") {
			// v1: "12:memory:/path" per controller; v2: "0::/path".
			if i := strings.LastIndex(c, ":"); i >= 0 {
				if _, ok := cgroups.PodCgroupOf(c[i+1:], uid); ok {
					in = true
				}
			}
		}
		if in {
			out = append(out, Process{PID: pid, RSSKiB: rss, Args: strings.Join(f[3:], " ")})
		}
	}
	return out
}

// JudgeSandboxMemory compares a sandbox's measured steady-state memory
// (an idle pod's cgroup working set) with the memory overhead its
// RuntimeClass declares: more than margin (a fraction of the overhead)
// above it is a problem, since the overhead is what the scheduler and the
// pod cgroup reserve for it. No declared memory overhead with a measured
// use is a problem too.
func JudgeSandboxMemory(usedBytes, overheadBytes int64, margin float64) string {
	allowed := overheadBytes + int64(float64(overheadBytes)*margin)
	if usedBytes <= allowed {
		return ""
	}
	if overheadBytes == 0 {
		return fmt.Sprintf("the sandbox uses %s at rest but the RuntimeClass declares no memory overhead", mib(usedBytes))
	}
	return fmt.Sprintf("the sandbox uses %s at rest, more than the declared memory overhead %s plus %.0f%% (%s)",
		mib(usedBytes), mib(overheadBytes), margin*100, mib(allowed))
}

func mib(b int64) string {
	if b < 1<<20 {
		return fmt.Sprintf("%dKiB", b>>10)
	}
	return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
}

// JudgeIsolation turns Classify's decision into a verdict for a class:
// a contradiction fails; a shared kernel fails where the class must be
// isolated and is otherwise reported as a skip (the class is no sandbox,
// which is not wrong by itself).
func JudgeIsolation(iso Isolation, mustIsolate bool) (failure, skip string) {
	if iso.Problem != "" {
		return iso.Problem + " (" + iso.Evidence + ")", ""
	}
	if iso.Kind != SharedKernel {
		return "", ""
	}
	msg := fmt.Sprintf("not isolated: %s, and no VMM or gVisor sandbox serves it (sandbox processes on the node: %v)", iso.Evidence, iso.Processes)
	if mustIsolate {
		return msg + "; the class must be isolated (profile or config: isolated: true)", ""
	}
	return "", msg + "; isolation not proven"
}
