package cgroups

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cg "github.com/nodeconform/nodeconform/framework/cgroups"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/evidence"
	"github.com/nodeconform/nodeconform/framework/nodechange"
	"github.com/nodeconform/nodeconform/framework/nodestate"
	"github.com/nodeconform/nodeconform/framework/podcgroup"
	"github.com/nodeconform/nodeconform/framework/profile"
	"github.com/nodeconform/nodeconform/framework/verdict"
	"github.com/nodeconform/nodeconform/framework/workload"
)

// nodeCgroups is what the suite learns of one node before its checks.
type nodeCgroups struct {
	rd *podcgroup.Reader
	// kc is the kubelet's configuration as the suite found it, before any
	// negative control changed it: what a changed kubelet is judged by.
	kc nodestate.Kubelet
	// bootID tells nodes that share one kernel (and so its CPUs, as kind
	// nodes do) from real machines; cpus is that kernel's CPU count.
	bootID string
	cpus   int
	// restartRisk is why the node's kubelet must not be restarted (apply
	// mode asks; "" when it may): such a worker is no negative control.
	restartRisk string
}

// expected completes base (a pod's requests and limits) with what the
// node's kubelet must add to the container's files: a CFS quota unless
// cpuCFSQuota is off, and on v2 the OOM kill mode. The profile decides
// where its group declares the field, else the kubelet's configuration as
// first read (which proves only obedience).
func (c *nodeCgroups) expected(grp *profile.Group, base cg.Expected) cg.Expected {
	quota := c.kc.CPUCFSQuota == nil || *c.kc.CPUCFSQuota
	single := c.kc.SingleProcessOOMKillOn(fmt.Sprintf("v%d", c.rd.Version))
	if grp != nil && grp.Node.CPUCFSQuota != nil {
		quota = *grp.Node.CPUCFSQuota
	}
	if grp != nil && grp.Node.SingleProcessOOMKill != nil {
		single = *grp.Node.SingleProcessOOMKill
	}
	if !quota {
		base.CPULimitMilli = 0
	}
	if c.rd.Version == cg.V2 {
		base.SingleProcessOOMKill = &single
	}
	return base
}

// qosPods are the placement check's pods on node n: a Guaranteed, a
// Burstable and a BestEffort one, in that order.
func qosPods(e *e2e.Env, ns, n string) []*corev1.Pod {
	return []*corev1.Pod{
		probePod(ns, "guaranteed-"+n, e.ProbeImage, n, res("100m", "64Mi"), res("100m", "64Mi"), nil),
		probePod(ns, "burstable-"+n, e.ProbeImage, n, res("50m", "32Mi"), nil, nil),
		probePod(ns, "besteffort-"+n, e.ProbeImage, n, nil, nil, nil),
	}
}

// qosPlacement runs a Guaranteed, a Burstable and a BestEffort pod on node
// n and returns each pod cgroup's path and one message per pod whose
// parent is not the QoS cgroup of the declared tree: the driver, cgroup
// root and cgroupsPerQOS of the profile where its group declares them,
// else of the kubelet's configuration as first read.
func qosPlacement(ctx context.Context, g Gomega, e *e2e.Env, ns, n string, c *nodeCgroups, ahead bool) (map[string]string, []string) {
	driver, root, perQOS := c.kc.CgroupDriver, profile.CanonicalCgroupRoot(c.kc.CgroupRoot), c.kc.CgroupsPerQOS == nil || *c.kc.CgroupsPerQOS
	if grp := e.Group(n); grp != nil {
		if grp.Node.CgroupDriver != nil {
			driver = *grp.Node.CgroupDriver
		}
		if grp.Node.CgroupRoot != nil {
			root = *grp.Node.CgroupRoot
		}
		if grp.Node.CgroupsPerQOS != nil {
			perQOS = *grp.Node.CgroupsPerQOS
		}
	}
	classes := []cg.QoS{cg.Guaranteed, cg.Burstable, cg.BestEffort}
	pods := qosPods(e, ns, n)
	var started []*corev1.Pod
	if ahead {
		started = waitAll(ctx, g, e, pods...)
	} else {
		started = runAll(ctx, g, e, pods...)
	}
	seen := map[string]string{}
	var problems []string
	// A BestEffort pod given limits by admission is not the pod placed.
	for i, asked := range qosPods(e, ns, n) {
		g.Expect(workload.AdmittedAsAsked(asked, started[i])).To(Succeed())
	}
	for i, qos := range classes {
		p, got := pods[i], started[i]
		g.Expect(string(got.Status.QOSClass)).To(Equal(string(qos)))
		podPath := path.Dir(containerPath(ctx, g, c.rd, got, "cpu"))
		seen[string(qos)] = podPath
		placed, err := cg.QoSOfPodCgroup(podPath)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(placed).To(Equal(qos), "pod %s in %s", p.Name, podPath)
		g.Expect(cg.PodUIDInPath(podPath, string(got.UID))).To(BeTrue(), "pod cgroup %s names pod UID %s", podPath, got.UID)
		if want := cg.ExpectedPodParent(driver, root, perQOS, qos); path.Dir(podPath) != want {
			problems = append(problems, fmt.Sprintf("%s pod %s: cgroup parent wanted %s (driver %s, cgroupRoot %s), found %s", qos, p.Name, want, driver, root, path.Dir(podPath)))
		}
	}
	return seen, problems
}

var _ = Describe("cgroup enforcement", Ordered, ContinueOnFailure, Serial, Label("cgroups"), func() {
	var (
		e *e2e.Env
		// on maps each judged node that can be examined to its reader
		// and kubelet configuration; unread maps the others to why.
		on     = map[string]*nodeCgroups{}
		unread = map[string]string{}
		// controls are the workers the CFS-quota negative control
		// changes: one per cgroup version among the judged nodes, so the
		// v1 and the v2 code paths each fail on the misconfiguration.
		controls []string
		// controlsLeftOut maps workers that cannot carry the control to
		// why: their kubelet must not be restarted, or the change would
		// show nothing there (controlMoot).
		controlsLeftOut map[string]string
	)

	BeforeAll(func(ctx SpecContext) {
		e = *env
		Expect(e.Nodes).NotTo(BeNil(), "suite needs node access")
		for n, why := range e.Unreachable() {
			unread[n] = why
		}
		var mu sync.Mutex
		res := verdict.Each(ctx, verdict.Input{Nodes: e.NodeNames(), Unreachable: unread, Parallel: e.Config.Nodes.MaxParallel},
			func(ctx context.Context, g Gomega, n string) any {
				rd, err := podcgroup.NewReader(ctx, e.Nodes, n)
				g.Expect(err).NotTo(HaveOccurred())
				kc, err := nodestate.ReadKubelet(ctx, e.Clientset, n)
				g.Expect(err).NotTo(HaveOccurred())
				// Every CPU the kernel has, not the probe's affinity; one
				// read-only command (verify mode allows cat).
				out, err := e.Nodes.MustHost(ctx, n, "cat", "/proc/sys/kernel/random/boot_id", "/proc/cpuinfo")
				g.Expect(err).NotTo(HaveOccurred())
				boot, cpus, err := cg.ParseKernel(out)
				g.Expect(err).NotTo(HaveOccurred())
				risk := ""
				if e.Mode == "apply" {
					risk, err = e.Nodes.KubeletRestartRisk(ctx, n)
					g.Expect(err).NotTo(HaveOccurred())
				}
				mu.Lock()
				on[n] = &nodeCgroups{rd: rd, kc: kc, bootID: boot, cpus: cpus, restartRisk: risk}
				mu.Unlock()
				return map[string]any{"cgroupVersion": rd.Version, "kubelet": kc, "bootID": boot, "cpus": cpus, "kubeletRestartRisk": risk}
			})
		for _, r := range res {
			if r.State == verdict.Failed {
				unread[r.Node] = strings.TrimPrefix(r.Finding, "cannot be examined: ")
			}
		}
		evidence.Record("nodes", res)
		list, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		var workers []string
		leftOut := map[string]string{}
		for _, n := range list.Items {
			_, cp := n.Labels["node-role.kubernetes.io/control-plane"]
			if cp || on[n.Name] == nil {
				continue
			}
			if why := cmp.Or(on[n.Name].restartRisk, controlMoot(on[n.Name].kc)); why != "" {
				leftOut[n.Name] = why
			} else {
				workers = append(workers, n.Name)
			}
		}
		if len(leftOut) > 0 {
			evidence.Record("notCFSQuotaControls", leftOut)
		}
		controlsLeftOut = leftOut
		controls = controlNodes(workers, func(n string) cg.Version { return on[n].rd.Version })
		evidence.Record("cfsQuotaControlNodes", controls)
	})

	// judgeOn runs check on each of nodes, each node its own verdict (a
	// node that could not be read fails unexamined), and fails the spec
	// with one line per failing node.
	judgeOn := func(ctx context.Context, nodes []string, property string, parallel int, check func(ctx context.Context, g Gomega, node string, c *nodeCgroups) any) {
		GinkgoHelper()
		if parallel <= 0 {
			parallel = e.Config.Nodes.MaxParallel
		}
		verdict.Expect(property, verdict.Each(ctx, verdict.Input{Nodes: nodes, Unreachable: unread, Parallel: parallel},
			func(ctx context.Context, g Gomega, n string) any { return check(ctx, g, n, on[n]) }))
	}
	// judge runs check on every judged node.
	judge := func(ctx context.Context, property string, parallel int, check func(ctx context.Context, g Gomega, node string, c *nodeCgroups) any) {
		GinkgoHelper()
		judgeOn(ctx, e.NodeNames(), property, parallel, check)
	}
	// control runs a negative control's check on the control nodes: one
	// that cannot run on a node (its pods do not start, a read fails)
	// names that node, as a missed report does. property says what the
	// check must report.
	control := func(ctx context.Context, property string, parallel int, check func(ctx context.Context, g Gomega, node string, c *nodeCgroups) any) {
		GinkgoHelper()
		judgeOn(ctx, controls, property, parallel, check)
	}

	It("has on each node the cgroup version, driver, root, QoS, swap, pids, CFS quota, OOM kill mode and huge pages the profile declares", func(ctx SpecContext) {
		e.ExpectProfile(ctx, "cgroups")
	})

	It("detects each node's cgroup version and the kubelet's cgroup driver, and the container runtime uses the same driver", func(ctx SpecContext) {
		judge(ctx, "cgroup version and driver", 0, func(ctx context.Context, g Gomega, n string, c *nodeCgroups) any {
			r, err := e.Nodes.Host(ctx, n, "stat", "-f", "-c", "%T", "/sys/fs/cgroup")
			g.Expect(err).NotTo(HaveOccurred())
			fsType := strings.TrimSpace(r.Stdout)
			g.Expect(c.kc.CgroupDriver).To(BeElementOf("systemd", "cgroupfs"), "cgroupDriver")
			// v1 (and hybrid) nodes mount a tmpfs of controllers there, v2 nodes cgroup2.
			g.Expect(fsType).To(BeElementOf("tmpfs", "cgroup2fs"), "/sys/fs/cgroup is %s", fsType)
			nd, err := e.Clientset.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			// The runtime's driver as it answers now: the kubelet took it
			// when it started, and the placement and limit checks below
			// fail without naming why when they differ.
			rc, err := nodestate.RuntimeConfig(ctx, e.Nodes, n, c.kc.ContainerRuntimeEndpoint)
			g.Expect(err).NotTo(HaveOccurred())
			// The versions name the stack the verdict is for (the summary's
			// per-node line carries them).
			seen := map[string]any{"cgroupVersion": c.rd.Version, "sysFsCgroupType": fsType, "cgroupDriver": c.kc.CgroupDriver,
				"runtimeConfig": rc, "kubeletVersion": nd.Status.NodeInfo.KubeletVersion, "containerRuntimeVersion": nd.Status.NodeInfo.ContainerRuntimeVersion}
			if problem := cg.DriverMismatch(c.kc.CgroupDriver, rc); problem != "" {
				verdict.FailNode(problem)
			}
			return seen
		})
	})

	It("places Guaranteed, Burstable and BestEffort pods under the matching QoS cgroup of the kubelet's cgroup root", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "cgroups-qos", "baseline")
		judge(ctx, "QoS cgroup placement", 0, func(ctx context.Context, g Gomega, n string, c *nodeCgroups) any {
			seen, problems := qosPlacement(ctx, g, e, ns, n, c, false)
			if len(problems) > 0 {
				verdict.FailNode(strings.Join(problems, "; "))
			}
			return seen
		})
	})

	It("writes limits.cpu, limits.memory, requests.cpu and the OOM kill mode exactly into the container's cgroup files", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "cgroups-limits", "baseline")
		judge(ctx, "container cgroup limit files", 0, func(ctx context.Context, g Gomega, n string, c *nodeCgroups) any {
			asked := probePod(ns, "limits-"+n, e.ProbeImage, n, res("100m", "32Mi"), res("200m", "64Mi"), nil)
			p := run(ctx, g, e, asked.DeepCopy())
			g.Expect(workload.AdmittedAsAsked(asked, p)).To(Succeed())
			want := c.expected(e.Group(n), cg.Expected{CPURequestMilli: 100, CPULimitMilli: 200, MemoryLimit: 64 << 20})
			l := readLimits(ctx, g, c.rd, p)
			if problems := cg.Check(c.rd.Version, want, l); len(problems) > 0 {
				verdict.FailNode(fmt.Sprintf("pod %s: %s", p.Name, strings.Join(problems, "; ")))
			}
			return l.Files
		})
	})

	// Node allocatable enforcement: the cgroup holding every pod is
	// limited to the node's capacity less the kubelet's reservations, so
	// pods together cannot take what systemd and the kubelet need.
	It("limits the cgroup of all pods (kubepods) to the node's capacity less the kubelet's reservations", func(ctx SpecContext) {
		judge(ctx, "pods cgroup limits (node allocatable)", 0, func(ctx context.Context, g Gomega, n string, c *nodeCgroups) any {
			if c.kc.CgroupsPerQOS != nil && !*c.kc.CgroupsPerQOS {
				verdict.SkipNode("cgroupsPerQOS is false: the kubelet makes no pods cgroup")
			}
			nd, err := e.Clientset.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			capacity := nd.Status.Capacity
			want, err := cg.ExpectedPodsCgroup(capacity.Cpu().MilliValue(), capacity.Memory().Value(), c.kc.EnforceNodeAllocatable, c.kc.SystemReserved, c.kc.KubeReserved, c.kc.ReservedSystemCPUs)
			g.Expect(err).NotTo(HaveOccurred(), "the kubelet's reservations")
			dir := cg.ExpectedPodParent(c.kc.CgroupDriver, profile.CanonicalCgroupRoot(c.kc.CgroupRoot), true, cg.Guaranteed)
			memFile, cpuFile := cg.PodsCgroupFiles(c.rd.Version, dir)
			files, err := c.rd.ReadFiles(ctx, memFile, cpuFile)
			g.Expect(err).NotTo(HaveOccurred())
			seen := map[string]any{"capacity": map[string]string{"cpu": capacity.Cpu().String(), "memory": capacity.Memory().String()},
				"enforceNodeAllocatable": c.kc.EnforceNodeAllocatable, "systemReserved": c.kc.SystemReserved, "kubeReserved": c.kc.KubeReserved,
				"reservedSystemCPUs": c.kc.ReservedSystemCPUs, "want": want, "files": files}
			if problems := cg.JudgePodsCgroup(c.rd.Version, want, files[memFile], files[cpuFile]); len(problems) > 0 {
				verdict.FailNode(fmt.Sprintf("pods cgroup %s: %s (capacity cpu %s memory %s, enforceNodeAllocatable %v, systemReserved %v, kubeReserved %v)",
					dir, strings.Join(problems, "; "), capacity.Cpu(), capacity.Memory(), c.kc.EnforceNodeAllocatable, c.kc.SystemReserved, c.kc.KubeReserved))
			}
			return seen
		})
	})

	It("throttles a busy loop under limits.cpu 100m to about 10% of a CPU, and not without a limit", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "cgroups-throttle", "baseline")
		// Nodes that share a kernel (kind nodes) share its CPUs: at most
		// one node's turn per CPU of that kernel. Machines of their own
		// run in parallel.
		var kernels []cg.Kernel
		for _, c := range on {
			kernels = append(kernels, cg.Kernel{BootID: c.bootID, CPUs: c.cpus})
		}
		parallel := cg.ThrottleTurns(kernels)
		evidence.Record("throttleParallel", map[string]any{"nodes": len(on), "turnsAtOnce": parallel})
		// Every node's two loops are created now and stay idle until their
		// node's turn wakes them: the later nodes' pods start while the
		// first ones measure, without taking their CPU.
		loops := func(n string) []*corev1.Pod {
			return []*corev1.Pod{probePod(ns, "limited-"+n, e.ProbeImage, n, res("100m", "16Mi"), res("100m", "64Mi"), []string{"burn", "--on-signal"}),
				probePod(ns, "free-"+n, e.ProbeImage, n, res("10m", "16Mi"), nil, []string{"burn", "--on-signal"})}
		}
		for n := range on {
			for _, p := range loops(n) {
				Expect(e.Klient.Resources().Create(ctx, p)).To(Succeed())
			}
		}
		judge(ctx, "CFS throttling", parallel, func(ctx context.Context, g Gomega, n string, c *nodeCgroups) any {
			// Deleted whether or not they started, so that no busy loop
			// outlives its node's turn.
			defer func() {
				for _, name := range []string{"limited-" + n, "free-" + n} {
					_ = e.Clientset.CoreV1().Pods(ns).Delete(context.WithoutCancel(ctx), name, metav1.DeleteOptions{})
				}
			}()
			var both []*corev1.Pod
			for _, p := range loops(n) {
				asked := p.DeepCopy()
				got, err := workload.WaitReady(ctx, e.Clientset, p, e.Config.Timeouts.PodReady.Duration)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(workload.AdmittedAsAsked(asked, got)).To(Succeed())
				var woke map[string]int
				g.Expect(workload.ExecJSON(ctx, e.Klient, ns, got.Name, []string{"wake"}, &woke)).To(Succeed(), "wake the busy loop of pod %s/%s", ns, got.Name)
				both = append(both, got)
			}
			limited, free := both[0], both[1]
			var counters []podcgroup.CPUCounters
			for _, p := range both {
				cc, err := c.rd.CPUCounters(ctx, p)
				g.Expect(err).NotTo(HaveOccurred())
				counters = append(counters, cc)
			}
			// Contention only lowers what a loop gets: a window that fails
			// is measured again, at most ThrottleSamples times, and the node
			// fails only if every window does. A quota on a parent cgroup
			// fails them all (its nr_throttled grows, read with the loops');
			// a loop past its own quota fails at once.
			window, bounds := e.Config.Cgroups.ThrottleWindow.Duration, throttleBounds(e)
			var samples []map[string]any
			var problems []string
			for i := 0; i < max(1, e.Config.Cgroups.ThrottleSamples); i++ {
				// Both loops are read in one exec, timed by the node's clock.
				t1, u1 := readCPU(ctx, g, c.rd, counters...)
				time.Sleep(window)
				t2, u2 := readCPU(ctx, g, c.rd, counters...)
				a1, b1, a2, b2 := u1[0], u1[1], u2[0], u2[1]
				s := cg.ThrottleSample{LimitedBefore: a1, LimitedAfter: a2, UnlimitedBefore: b1, UnlimitedAfter: b2, WallNanos: (t2 - t1).Nanoseconds()}
				problems = cg.JudgeThrottle(bounds, s)
				samples = append(samples, map[string]any{"limitedFraction": cg.CPUFraction(a1, a2, s.WallNanos), "unlimitedFraction": cg.CPUFraction(b1, b2, s.WallNanos),
					"limitedBefore": a1, "limitedAfter": a2, "unlimitedBefore": b1, "unlimitedAfter": b2, "problems": problems,
					"contended": bounds.Contended(s)})
				if len(problems) == 0 || bounds.PastQuota(s) {
					break
				}
			}
			ev := map[string]any{"window": window.String(), "limitedPod": limited.Name, "unlimitedPod": free.Name, "samples": samples}
			if len(problems) > 0 {
				verdict.FailNode(fmt.Sprintf("pods %s (limits.cpu 100m) and %s (no limit), %d windows of %s: %s", limited.Name, free.Name, len(samples), window, strings.Join(problems, "; ")))
			}
			return ev
		})
	})

	It("kills a container that allocates past limits.memory (OOMKilled), restarts it, and on v2 in the kubelet's OOM kill mode", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "cgroups-oom", "baseline")
		judge(ctx, "OOM kill at limits.memory", 0, func(ctx context.Context, g Gomega, n string, c *nodeCgroups) any {
			ev, problems := oomEvidence(ctx, g, e, ns, n, c)
			if len(problems) > 0 {
				verdict.FailNode(strings.Join(problems, "; "))
			}
			return ev
		})
	})

	It("enforces the kubelet's pod pids limit where configured", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "cgroups-pids", "baseline")
		judge(ctx, "pod pids limit", 0, func(ctx context.Context, g Gomega, n string, c *nodeCgroups) any {
			limit := c.kc.PodPidsLimit
			if grp := e.Group(n); grp != nil && grp.Node.PodPidsLimit != nil {
				limit = grp.Node.PodPidsLimit // the intent, not what the kubelet happens to have
			}
			if limit == nil || *limit <= 0 {
				verdict.SkipNode("no podPidsLimit configured")
			}
			p := run(ctx, g, e, probePod(ns, "pids-"+n, e.ProbeImage, n, nil, nil, nil))
			podPath := path.Dir(containerPath(ctx, g, c.rd, p, "pids"))
			file := path.Join(cg.Dir(c.rd.Version, "pids", podPath), "pids.max")
			got, err := e.Nodes.MustHost(ctx, n, "cat", file)
			g.Expect(err).NotTo(HaveOccurred())
			if v := strings.TrimSpace(got); v != fmt.Sprint(*limit) {
				verdict.FailNode(fmt.Sprintf("pod %s: %s wanted %d (podPidsLimit), found %s", p.Name, file, *limit, v))
			}
			return map[string]string{"file": file, "value": strings.TrimSpace(got)}
		})
	})

	It("limits hugepages-2Mi in the hugetlb files where the node has huge pages", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "cgroups-hugepages", "baseline")
		judge(ctx, "hugepages-2Mi limit", 0, func(ctx context.Context, g Gomega, n string, c *nodeCgroups) any {
			meminfo, err := e.Nodes.MustHost(ctx, n, "cat", "/proc/meminfo")
			g.Expect(err).NotTo(HaveOccurred())
			total := field(meminfo, "HugePages_Total:")
			nd, err := e.Clientset.CoreV1().Nodes().Get(ctx, n, metav1.GetOptions{})
			g.Expect(err).NotTo(HaveOccurred())
			capacity := nd.Status.Capacity[corev1.ResourceName("hugepages-2Mi")]
			var declared int64
			// profile.Parse has folded the defaults into each group.
			if grp := e.Group(n); grp != nil && grp.Node.HugePages2Mi != nil {
				declared = grp.Node.HugePages2Mi.Value()
			}
			if have, reason, fail := cg.JudgeHugePages2Mi(declared, total, capacity.Value()); !have {
				if fail {
					verdict.FailNode(reason)
				}
				verdict.SkipNode(reason)
			}
			p := probePod(ns, "huge-"+n, e.ProbeImage, n, nil, nil, nil)
			lim := corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi"), corev1.ResourceCPU: resource.MustParse("100m"), "hugepages-2Mi": resource.MustParse("4Mi")}
			p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Limits: lim, Requests: lim}
			got := run(ctx, g, e, p)
			podPath := path.Dir(containerPath(ctx, g, c.rd, got, "hugetlb"))
			file := path.Join(cg.Dir(c.rd.Version, "hugetlb", podPath), cg.HugeTLB2MiLimitFile(c.rd.Version))
			v, err := e.Nodes.MustHost(ctx, n, "cat", file)
			g.Expect(err).NotTo(HaveOccurred())
			if strings.TrimSpace(v) != fmt.Sprint(4<<20) {
				verdict.FailNode(fmt.Sprintf("pod %s: %s wanted %d, found %s", got.Name, file, 4<<20, strings.TrimSpace(v)))
			}
			return map[string]string{"HugePages_Total": total, "file": file, "value": strings.TrimSpace(v)}
		})
	})

	// Each check must fail on the misconfiguration it exists for, on each
	// cgroup version's code path: a kubelet with cpuCFSQuota false writes
	// no quota and the busy loop escapes its limit; a kubelet whose cgroup
	// root moved puts pods outside the declared QoS tree; on v2 a kubelet
	// with singleProcessOOMKill writes memory.oom.group 0. One kubelet
	// change per control node carries all three: one restart, not three
	// (an emulated VM's kubelet is slow to come back). The checks judge by
	// the profile, else by the kubelet as first read.
	Context("with the kubelet misconfigured (CFS quota disabled, cgroup root moved, single-process OOM kill on v2)", Ordered, Label("negative", "disruptive"), func() {
		// movedNS holds the moved-root spec's pods, started in BeforeAll.
		var movedNS string
		BeforeAll(func(ctx SpecContext) {
			e.RequireApply("misconfiguring the kubelet")
			if e.Provider != "kind" {
				Skip("changes kubelet flags through /etc/default/kubelet: only done on nodeconform's kind nodes")
			}
			if len(controls) == 0 {
				if len(controlsLeftOut) > 0 {
					Skip(fmt.Sprintf("no worker can carry the misconfigured kubelet: %v", controlsLeftOut))
				}
				Skip("no worker among the judged nodes can be examined")
			}
			restartTimeout := e.Config.Timeouts.NodeRestart.Duration
			j := e.Journal()
			for _, node := range controls {
				m := misconfigure(on[node])
				// The undo is on the node before the change is: Ctrl-C while
				// the kubelet restarts, or a killed runner, still reverts.
				entry := nodechange.Entry{Node: node, Run: e.RunID, Name: "kubelet-misconfigured",
					Undo: m.undo, Restart: []string{"kubelet.service"}, After: m.after}
				Expect(j.Record(ctx, entry)).To(Succeed())
				DeferCleanup(func(ctx SpecContext) {
					Expect(j.Undo(ctx, entry)).To(Succeed())
				}, NodeTimeout(2*restartTimeout+time.Minute))
				_, err := e.Nodes.MustHost(ctx, node, "sh", "-c", m.apply)
				Expect(err).NotTo(HaveOccurred())
				evidence.Record("misconfigured/"+node, map[string]any{"cgroupVersion": on[node].rd.Version, "kubeletFlags": m.flags, "kubeletConfig": m.config, "movedCgroupRoot": m.root})
			}
			// Nodes of their own restart side by side: an emulated VM's
			// kubelet is slow to come back.
			errs := make([]error, len(controls))
			var wg sync.WaitGroup
			for i, node := range controls {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs[i] = e.Nodes.Restart(ctx, node, []string{"kubelet.service"}, []string{"kubelet"}, restartTimeout)
				}()
			}
			wg.Wait()
			Expect(errors.Join(errs...)).NotTo(HaveOccurred())
			// The moved-root spec's pods start now, beside the CFS spec's
			// window (their namespace goes before the kubelet's undo).
			movedNS = e.Namespace(ctx, "cgroups-moved", "baseline")
			for _, node := range controls {
				for _, p := range qosPods(e, movedNS, node) {
					Expect(e.Klient.Resources().Create(ctx, p)).To(Succeed())
				}
			}
		}, NodeTimeout(e2e.TreeConfig().Timeouts.NodeRestart.Duration+time.Minute))

		It("is reported on each cgroup version: no quota in the cgroup files and the busy loop escapes its 100m limit; on v2 memory.oom.group 0", func(ctx SpecContext) {
			ns := e.Namespace(ctx, "cgroups-nocfs", "baseline")
			// One node at a time: the busy loops of two kind nodes share the
			// host's CPUs.
			control(ctx, "each check must fail on a kubelet without CFS quota and, on v2, with single-process OOM kill", 1, func(ctx context.Context, g Gomega, node string, c *nodeCgroups) any {
				rd := c.rd
				p := run(ctx, g, e, probePod(ns, "limited-"+node, e.ProbeImage, node, res("100m", "16Mi"), res("100m", "64Mi"), []string{"burn"}))
				l := readLimits(ctx, g, rd, p)
				problems := cg.Check(rd.Version, c.expected(e.Group(node), cg.Expected{CPURequestMilli: 100, CPULimitMilli: 100, MemoryLimit: 64 << 20}), l)
				cc, err := rd.CPUCounters(ctx, p)
				g.Expect(err).NotTo(HaveOccurred())
				t1, u1 := readCPU(ctx, g, rd, cc)
				time.Sleep(e.Config.Cgroups.EscapeWindow.Duration)
				t2, u2 := readCPU(ctx, g, rd, cc)
				a, b, wall := u1[0], u2[0], (t2 - t1).Nanoseconds()
				throttle := cg.JudgeLimited(throttleBounds(e), a, b, wall)
				ev := map[string]any{"cgroupVersion": rd.Version, "limitProblems": problems,
					"throttleProblems": throttle, "fraction": cg.CPUFraction(a, b, wall), "files": l.Files}
				evidence.Record("cfsQuotaDisabled/"+node, ev)
				var missed []string
				if !containsText(problems, "cpu quota -1") {
					missed = append(missed, fmt.Sprintf("cgroup v%d: the limit check did not report the missing quota (problems: %q)", rd.Version, problems))
				}
				if rd.Version == cg.V2 && !containsText(problems, cg.OOMGroupFile+" 0") {
					missed = append(missed, fmt.Sprintf("cgroup v2: the limit check did not report single-process OOM kill (problems: %q)", problems))
				}
				if !containsText(throttle, "the limit is not enforced") {
					missed = append(missed, fmt.Sprintf("cgroup v%d: the throttling check did not report the escaped loop (%.3f of a CPU; problems: %q)", rd.Version, cg.CPUFraction(a, b, wall), throttle))
				}
				if len(missed) > 0 {
					verdict.FailNodeWith(strings.Join(missed, "; "), ev)
				}
				return ev
			})
		})

		It("kills one process, not the whole container, on v2 (memory.events oom_group_kill 0), and the OOM check reports it", func(ctx SpecContext) {
			var v2 []string
			for _, node := range controls {
				if on[node].rd.Version == cg.V2 {
					v2 = append(v2, node) // v1 always kills one process: no mode to misconfigure
				}
			}
			if len(v2) == 0 {
				Skip("no cgroup v2 worker among the judged nodes: the OOM kill mode exists on v2 only")
			}
			ns := e.Namespace(ctx, "cgroups-single-oom", "baseline")
			judgeOn(ctx, v2, "the OOM check must fail on a v2 kubelet with singleProcessOOMKill where group kill is declared", 0, func(ctx context.Context, g Gomega, node string, c *nodeCgroups) any {
				ev, problems := oomEvidence(ctx, g, e, ns, node, c)
				ev["problems"] = problems
				evidence.Record("singleProcessOOMKill/"+node, ev)
				if !containsText(problems, "counts no oom_group_kill") {
					verdict.FailNodeWith(fmt.Sprintf("cgroup v2: the OOM check did not report the single-process kill (%s: %q; problems %q)", ev["oomFile"], ev["oomFileContent"], problems), ev)
				}
				return ev
			})
		})

		It("moves pods out of the declared QoS tree, and the placement check reports it on each cgroup version", func(ctx SpecContext) {
			control(ctx, "the QoS placement check must fail on a kubelet whose cgroup root moved", 0, func(ctx context.Context, g Gomega, node string, c *nodeCgroups) any {
				seen, problems := qosPlacement(ctx, g, e, movedNS, node, c, true)
				ev := map[string]any{"cgroupVersion": c.rd.Version, "podCgroups": seen, "problems": problems}
				evidence.Record("cgroupRootMoved/"+node, ev)
				if len(problems) != 3 {
					verdict.FailNodeWith(fmt.Sprintf("cgroup v%d: the placement check reported %d of 3 pods outside the tree (pod cgroups %v; problems %q)", c.rd.Version, len(problems), seen, problems), ev)
				}
				return ev
			})
		})
	})

	It("runs nodes with swap off, or with the kubelet's swap behaviour when swap is on", func(ctx SpecContext) {
		judge(ctx, "swap", 0, func(ctx context.Context, g Gomega, n string, c *nodeCgroups) any {
			swaps, err := e.Nodes.MustHost(ctx, n, "cat", "/proc/swaps")
			g.Expect(err).NotTo(HaveOccurred())
			lines := strings.Split(strings.TrimSpace(swaps), "\n")
			ev := map[string]any{"procSwaps": swaps, "failSwapOn": c.kc.FailSwapOn, "swapBehavior": c.kc.MemorySwap.SwapBehavior}
			if len(lines) <= 1 {
				return ev // header only: swap is off
			}
			if c.kc.FailSwapOn == nil || *c.kc.FailSwapOn {
				verdict.FailNode("swap is on but the kubelet is configured to fail on swap (failSwapOn true)")
			}
			if c.kc.MemorySwap.SwapBehavior == "" {
				verdict.FailNode("swap is on and the kubelet has no swap behaviour configured")
			}
			return ev
		})
	})
})

func res(cpu, mem string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
}

func probePod(ns, name, image, node string, requests, limits corev1.ResourceList, args []string) *corev1.Pod {
	p := workload.ProbePod(workload.ProbePodInput{Namespace: ns, Name: name, Image: image, NodeName: node, Args: args})
	p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Requests: requests, Limits: limits}
	return p
}

func run(ctx context.Context, g Gomega, e *e2e.Env, p *corev1.Pod) *corev1.Pod {
	return runAll(ctx, g, e, p)[0]
}

// runAll starts pods at once and waits until each is ready: a node starts
// them side by side, each pod's start no longer waiting for the last.
func runAll(ctx context.Context, g Gomega, e *e2e.Env, pods ...*corev1.Pod) []*corev1.Pod {
	got, errs := make([]*corev1.Pod, len(pods)), make([]error, len(pods))
	var wg sync.WaitGroup
	for i, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], errs[i] = workload.CreateReady(ctx, e.Klient, e.Clientset, p, e.Config.Timeouts.PodReady.Duration)
		}()
	}
	wg.Wait()
	g.Expect(errors.Join(errs...)).NotTo(HaveOccurred())
	return got
}

// waitAll waits until each pod, created earlier, is ready.
func waitAll(ctx context.Context, g Gomega, e *e2e.Env, pods ...*corev1.Pod) []*corev1.Pod {
	got := make([]*corev1.Pod, len(pods))
	for i, p := range pods {
		var err error
		got[i], err = workload.WaitReady(ctx, e.Clientset, p, e.Config.Timeouts.PodReady.Duration)
		g.Expect(err).NotTo(HaveOccurred())
	}
	return got
}

func containerPath(ctx context.Context, g Gomega, rd *podcgroup.Reader, p *corev1.Pod, controller string) string {
	cp, err := rd.ContainerPath(ctx, p, controller)
	g.Expect(err).NotTo(HaveOccurred())
	return cp
}

func readLimits(ctx context.Context, g Gomega, rd *podcgroup.Reader, p *corev1.Pod) cg.Limits {
	l, err := rd.ContainerLimits(ctx, p)
	g.Expect(err).NotTo(HaveOccurred())
	return l
}

func readCPU(ctx context.Context, g Gomega, rd *podcgroup.Reader, counters ...podcgroup.CPUCounters) (time.Duration, []cg.CPUUsage) {
	at, u, err := rd.ReadCPU(ctx, counters...)
	g.Expect(err).NotTo(HaveOccurred())
	return at, u
}

// controlNodes picks, for each cgroup version among the workers, the last
// by name: one node per code path to misconfigure, the same one each run.
func controlNodes(workers []string, version func(string) cg.Version) []string {
	sorted := append([]string(nil), workers...)
	sort.Strings(sorted)
	last := map[cg.Version]string{}
	for _, n := range sorted {
		last[version(n)] = n
	}
	var out []string
	for _, n := range last {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// oomEvidence runs a container that allocates past its 32Mi limit on node
// n, waits for the kubelet to report it OOMKilled and restart it, and
// reads the kernel's count in the pod cgroup (memory.events on v2,
// memory.oom_control on v1). The problems: on v2 no kill counted, or a
// kill of the wrong kind for the kubelet's mode (oom_group_kill), the
// mode being the profile's where its group declares it, else the
// kubelet's as first read.
func oomEvidence(ctx context.Context, g Gomega, e *e2e.Env, ns, n string, c *nodeCgroups) (map[string]any, []string) {
	p := probePod(ns, "oom-"+n, e.ProbeImage, n, res("10m", "32Mi"), res("100m", "32Mi"), []string{"alloc", "--mib", "128"})
	admitted, err := e.Clientset.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(workload.AdmittedAsAsked(p, admitted)).To(Succeed())
	status := e.ExpectRestartedAfter(ctx, g, ns, p.Name, "OOMKilled")
	ev := map[string]any{"restartCount": status.RestartCount, "lastTermination": status.LastTerminationState.Terminated}
	got, err := e.Clientset.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
	g.Expect(err).NotTo(HaveOccurred())
	dir, err := c.rd.PodPath(ctx, got, "memory")
	g.Expect(err).NotTo(HaveOccurred())
	file := cg.Dir(c.rd.Version, "memory", dir) + "/" + cg.OOMFile(c.rd.Version)
	text, err := c.rd.Cat(ctx, file)
	g.Expect(err).NotTo(HaveOccurred())
	kills, problem, err := cg.OOMKills(c.rd.Version, text)
	g.Expect(err).NotTo(HaveOccurred())
	ev["oomFile"], ev["oomFileContent"], ev["oomKills"] = file, text, kills
	var problems []string
	if problem != "" {
		problems = append(problems, fmt.Sprintf("pod %s: %s (%s)", p.Name, problem, file))
	}
	if want := c.expected(e.Group(n), cg.Expected{}).SingleProcessOOMKill; want != nil {
		ev["singleProcessOOMKill"] = *want
		if problem := cg.JudgeOOMMode(c.rd.Version, *want, text); problem != "" {
			problems = append(problems, fmt.Sprintf("pod %s: %s (%s)", p.Name, problem, file))
		}
	}
	return ev, problems
}

// misconfiguration is one control node's kubelet change: shell scripts
// to apply it, to undo it (before the kubelet restarts) and to clean what
// the misconfigured kubelet made (after).
type misconfiguration struct {
	apply, undo, after string
	flags, config      []string
	root               string
}

// misconfigure builds the change for a node: CFS quota off and the cgroup
// root moved (to /, or to /nodeconform where the kubelet already runs at
// /) through KUBELET_EXTRA_ARGS, and on v2 singleProcessOOMKill through
// the kubelet's configuration file. The originals are saved beside the
// files and moved back; the moved tree is removed once the kubelet is
// back at its own root, so nothing of the change is left on the node.
func misconfigure(c *nodeCgroups) misconfiguration {
	const (
		defaults, savedDefaults = "/etc/default/kubelet", "/etc/default/kubelet.nodeconform-orig"
		config, savedConfig     = "/var/lib/kubelet/config.yaml", "/var/lib/kubelet/config.yaml.nodeconform-orig"
	)
	m := misconfiguration{root: "/"}
	if profile.CanonicalCgroupRoot(c.kc.CgroupRoot) == "/" {
		m.root = "/nodeconform"
	}
	m.flags = []string{"--cpu-cfs-quota=false", "--cgroup-root=" + m.root}
	// The misconfigured kubelet made its QoS tree at the moved root and
	// never removes it: systemd's transient slice (systemd driver) or the
	// plain directories (cgroupfs), in every hierarchy.
	name := "kubepods"
	if m.root != "/" {
		name = strings.TrimPrefix(m.root, "/")
	}
	if c.kc.CgroupDriver == "systemd" {
		name += ".slice"
	}
	apply := []string{"set -e",
		fmt.Sprintf("cp %s %s", defaults, savedDefaults),
		fmt.Sprintf("grep -q '^KUBELET_EXTRA_ARGS=' %[1]s || echo 'KUBELET_EXTRA_ARGS=' >> %[1]s", defaults),
		fmt.Sprintf(`sed -i 's|^KUBELET_EXTRA_ARGS=\(.*\)$|KUBELET_EXTRA_ARGS=\1 %s|' %s`, strings.Join(m.flags, " "), defaults)}
	if m.root != "/" {
		// A kubelet refuses a cgroup root missing from any hierarchy
		// ("cgroup [\"nodeconform\"] has some missing paths") and never
		// comes back: made in each one first (removed by after).
		apply = append(apply, fmt.Sprintf(`for d in /sys/fs/cgroup /sys/fs/cgroup/*/; do if test -e "$d/cgroup.procs" && ! test -e "$d/../cgroup.procs"; then mkdir -p "$d/%s"; fi; done`, name))
	}
	undo := []string{fmt.Sprintf("if test -f %[2]s; then mv %[2]s %[1]s; fi", defaults, savedDefaults)}
	if c.rd.Version == cg.V2 {
		m.config = []string{"singleProcessOOMKill: true"}
		apply = append(apply, fmt.Sprintf("cp %s %s", config, savedConfig),
			fmt.Sprintf("sed -i '/^singleProcessOOMKill:/d' %[1]s; echo 'singleProcessOOMKill: true' >> %[1]s", config))
		undo = append(undo, fmt.Sprintf("if test -f %[2]s; then mv %[2]s %[1]s; fi", config, savedConfig))
	}
	// The last line's status is the undo's: the flag must be gone.
	undo = append(undo, "! grep -q -- --cpu-cfs-quota=false "+defaults)
	m.apply, m.undo = strings.Join(apply, "; "), strings.Join(undo, "; ")
	dirs := fmt.Sprintf("/sys/fs/cgroup/%[1]s /sys/fs/cgroup/*/%[1]s", name)
	m.after = fmt.Sprintf(`systemctl stop %[1]s 2>/dev/null; for d in %[2]s; do test -d "$d" && find "$d" -depth -type d -exec rmdir {} \; ; done; systemctl daemon-reload; ! ls -d %[2]s 2>/dev/null`, name, dirs)
	return m
}

// controlMoot says why the negative control's kubelet change would show
// nothing on a kubelet configured as kc, or "" when it would: one that
// already writes no CFS quota, or keeps no QoS tree for a moved cgroup
// root to move (its pods are then in no pod cgroup of the kubelet's, and
// the control would fail for the node's configuration, not the checks').
func controlMoot(kc nodestate.Kubelet) string {
	switch {
	case kc.CPUCFSQuota != nil && !*kc.CPUCFSQuota:
		return "its kubelet already writes no CFS quota (cpuCFSQuota false)"
	case kc.CgroupsPerQOS != nil && !*kc.CgroupsPerQOS:
		return "its kubelet keeps no QoS cgroups (cgroupsPerQOS false)"
	}
	return ""
}

func containsText(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func throttleBounds(e *e2e.Env) cg.ThrottleBounds {
	c := e.Config.Cgroups
	return cg.ThrottleBounds{LimitedMin: c.LimitedCPUMin, LimitedMax: c.LimitedCPUMax, UnlimitedMin: c.UnlimitedCPUMin}
}

func field(text, key string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, key) {
			return strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, key), "kB"))
		}
	}
	return ""
}
