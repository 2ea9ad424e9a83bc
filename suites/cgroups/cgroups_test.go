package cgroups

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	cg "github.com/nodeconform/nodeconform/framework/cgroups"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/evidence"
	"github.com/nodeconform/nodeconform/framework/nodeaccess"
	"github.com/nodeconform/nodeconform/framework/podcgroup"
	"github.com/nodeconform/nodeconform/framework/workload"
)

// kubeletConfig is the part of a node's running kubelet configuration
// (configz) this suite needs.
type kubeletConfig struct {
	CgroupDriver string `json:"cgroupDriver"`
	CPUCFSQuota  *bool  `json:"cpuCFSQuota"`
	PodPidsLimit *int64 `json:"podPidsLimit"`
	FailSwapOn   *bool  `json:"failSwapOn"`
	MemorySwap   struct {
		SwapBehavior string `json:"swapBehavior"`
	} `json:"memorySwap"`
}

var _ = Describe("cgroup enforcement", Ordered, Serial, Label("cgroups"), func() {
	var (
		e       *e2e.Env
		node    string
		version cg.Version
		kc      kubeletConfig
		rd      *podcgroup.Reader
	)

	BeforeAll(func(ctx SpecContext) {
		e = *env
		Expect(e.Nodes).NotTo(BeNil(), "suite needs node access")
		// One worker runs the pods, so every reading is from one kubelet.
		nodes, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		for _, n := range nodes.Items {
			if _, cp := n.Labels["node-role.kubernetes.io/control-plane"]; !cp || node == "" {
				node = n.Name
			}
		}
		rd, err = podcgroup.NewReader(ctx, e.Nodes, node)
		Expect(err).NotTo(HaveOccurred())
		version = rd.Version
		Expect(nodeaccess.KubeletConfig(ctx, e.Clientset, node, &kc)).To(Succeed())
		evidence.Record("node", map[string]any{"name": node, "cgroupVersion": version, "cgroupDriver": kc.CgroupDriver,
			"cpuCFSQuota": kc.CPUCFSQuota, "podPidsLimit": kc.PodPidsLimit})
	})

	It("detects each node's cgroup version and the kubelet's cgroup driver", func(ctx SpecContext) {
		nodes, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		seen := map[string]map[string]any{}
		for _, n := range nodes.Items {
			r, err := e.Nodes.Host(ctx, n.Name, "stat", "-f", "-c", "%T", "/sys/fs/cgroup")
			Expect(err).NotTo(HaveOccurred())
			fsType := strings.TrimSpace(r.Stdout)
			v := cg.V1
			if fsType == "cgroup2fs" {
				v = cg.V2
			}
			var nkc kubeletConfig
			Expect(nodeaccess.KubeletConfig(ctx, e.Clientset, n.Name, &nkc)).To(Succeed())
			seen[n.Name] = map[string]any{"cgroupVersion": v, "sysFsCgroupType": fsType, "cgroupDriver": nkc.CgroupDriver}
			Expect(nkc.CgroupDriver).To(BeElementOf("systemd", "cgroupfs"), "node %s", n.Name)
			// v1 (and hybrid) nodes mount a tmpfs of controllers there, v2 nodes cgroup2.
			Expect(fsType).To(BeElementOf("tmpfs", "cgroup2fs"), "node %s: /sys/fs/cgroup is %s", n.Name, fsType)
		}
		evidence.Record("nodes", seen)
	})

	It("places Guaranteed, Burstable and BestEffort pods under the matching QoS cgroup", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "cgroups-qos", "")
		pods := map[cg.QoS]*corev1.Pod{
			cg.Guaranteed: probePod(ns, "guaranteed", e.ProbeImage, node, res("100m", "64Mi"), res("100m", "64Mi"), nil),
			cg.Burstable:  probePod(ns, "burstable", e.ProbeImage, node, res("50m", "32Mi"), nil, nil),
			cg.BestEffort: probePod(ns, "besteffort", e.ProbeImage, node, nil, nil, nil),
		}
		seen := map[string]string{}
		for qos, p := range pods {
			got := run(ctx, e, p)
			Expect(string(got.Status.QOSClass)).To(Equal(string(qos)))
			podPath := path.Dir(containerPath(ctx, rd, got, "cpu"))
			seen[string(qos)] = podPath
			placed, err := cg.QoSOfPodCgroup(podPath)
			Expect(err).NotTo(HaveOccurred())
			Expect(placed).To(Equal(qos), "pod %s in %s", p.Name, podPath)
			Expect(cg.PodUIDInPath(podPath, string(got.UID))).To(BeTrue(), "pod cgroup %s names pod UID %s", podPath, got.UID)
		}
		evidence.Record("podCgroups", seen)
	})

	It("writes limits.cpu, limits.memory and requests.cpu exactly into the container's cgroup files", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "cgroups-limits", "")
		p := run(ctx, e, probePod(ns, "limits", e.ProbeImage, node, res("100m", "32Mi"), res("200m", "64Mi"), nil))
		want := cg.Expected{CPURequestMilli: 100, CPULimitMilli: 200, MemoryLimit: 64 << 20}
		if kc.CPUCFSQuota != nil && !*kc.CPUCFSQuota {
			want.CPULimitMilli = 0 // the kubelet writes no quota
		}
		l := readLimits(ctx, rd, p)
		evidence.Record("cgroupFiles", l.Files)
		Expect(cg.Check(version, want, l)).To(BeEmpty(), "cgroup files of pod %s on %s", p.Name, node)
	})

	It("throttles a busy loop under limits.cpu 100m to about 10% of a CPU, and not without a limit", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "cgroups-throttle", "")
		limited := run(ctx, e, probePod(ns, "limited", e.ProbeImage, node, res("100m", "16Mi"), res("100m", "64Mi"), []string{"burn"}))
		free := run(ctx, e, probePod(ns, "free", e.ProbeImage, node, res("10m", "16Mi"), nil, []string{"burn"}))
		window := e.Config.Cgroups.ThrottleWindow.Duration
		a1, b1 := cpuUsage(ctx, rd, limited), cpuUsage(ctx, rd, free)
		start := time.Now()
		time.Sleep(window)
		a2, b2 := cpuUsage(ctx, rd, limited), cpuUsage(ctx, rd, free)
		wall := time.Since(start).Nanoseconds()
		fl, ff := cg.CPUFraction(a1, a2, wall), cg.CPUFraction(b1, b2, wall)
		evidence.Record("throttling", map[string]any{"window": window.String(), "limitedFraction": fl, "unlimitedFraction": ff,
			"limitedBefore": a1, "limitedAfter": a2, "unlimitedBefore": b1, "unlimitedAfter": b2})
		c := e.Config.Cgroups
		Expect(fl).To(BeNumerically(">=", c.LimitedCPUMin), "busy loop under 100m used %.3f of a CPU", fl)
		Expect(fl).To(BeNumerically("<=", c.LimitedCPUMax), "busy loop under 100m used %.3f of a CPU: the limit is not enforced", fl)
		Expect(a2.NrThrottled).To(BeNumerically(">", a1.NrThrottled), "throttle counter did not grow")
		Expect(ff).To(BeNumerically(">=", c.UnlimitedCPUMin), "busy loop without a limit used only %.3f of a CPU", ff)
	})

	It("kills a container that allocates past limits.memory (OOMKilled) and restarts it", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "cgroups-oom", "")
		p := probePod(ns, "oom", e.ProbeImage, node, res("10m", "32Mi"), res("100m", "32Mi"), []string{"alloc", "--mib", "128"})
		_, err := e.Clientset.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		status := e.ExpectRestartedAfter(ctx, ns, p.Name, "OOMKilled")
		evidence.Record("oom", map[string]any{"restartCount": status.RestartCount, "lastTermination": status.LastTerminationState.Terminated})
	})

	It("enforces the kubelet's pod pids limit where configured", func(ctx SpecContext) {
		if kc.PodPidsLimit == nil || *kc.PodPidsLimit <= 0 {
			Skip(fmt.Sprintf("node %s: the kubelet sets no podPidsLimit", node))
		}
		ns := e.Namespace(ctx, "cgroups-pids", "")
		p := run(ctx, e, probePod(ns, "pids", e.ProbeImage, node, nil, nil, nil))
		podPath := path.Dir(containerPath(ctx, rd, p, "pids"))
		file := path.Join(cg.Dir(version, "pids", podPath), "pids.max")
		got, err := e.Nodes.MustHost(ctx, node, "cat", file)
		Expect(err).NotTo(HaveOccurred())
		evidence.Record("pidsMax", map[string]string{"file": file, "value": strings.TrimSpace(got)})
		Expect(strings.TrimSpace(got)).To(Equal(fmt.Sprint(*kc.PodPidsLimit)))
	})

	It("limits hugepages-2Mi in the hugetlb files where the node has huge pages", func(ctx SpecContext) {
		meminfo, err := e.Nodes.MustHost(ctx, node, "cat", "/proc/meminfo")
		Expect(err).NotTo(HaveOccurred())
		total := field(meminfo, "HugePages_Total:")
		evidence.Record("hugePages", map[string]string{"HugePages_Total": total, "Hugepagesize": field(meminfo, "Hugepagesize:")})
		n, err := e.Clientset.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		capacity := n.Status.Capacity[corev1.ResourceName("hugepages-2Mi")]
		if total == "" || total == "0" || capacity.IsZero() {
			Skip(fmt.Sprintf("node %s has no 2Mi huge pages (HugePages_Total=%q, capacity %s)", node, total, capacity.String()))
		}
		ns := e.Namespace(ctx, "cgroups-hugepages", "")
		p := probePod(ns, "huge", e.ProbeImage, node, nil, nil, nil)
		lim := corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi"), corev1.ResourceCPU: resource.MustParse("100m"), "hugepages-2Mi": resource.MustParse("4Mi")}
		p.Spec.Containers[0].Resources = corev1.ResourceRequirements{Limits: lim, Requests: lim}
		got := run(ctx, e, p)
		podPath := path.Dir(containerPath(ctx, rd, got, "hugetlb"))
		name := "hugetlb.2MB.limit_in_bytes"
		if version == cg.V2 {
			name = "hugetlb.2MB.max"
		}
		v, err := e.Nodes.MustHost(ctx, node, "cat", path.Join(cg.Dir(version, "hugetlb", podPath), name))
		Expect(err).NotTo(HaveOccurred())
		Expect(strings.TrimSpace(v)).To(Equal(fmt.Sprint(4 << 20)))
	})

	// The throttling check must fail on the misconfiguration it exists
	// for: a kubelet with cpuCFSQuota false writes no quota, and the busy
	// loop is no longer held to its limit.
	Context("with the kubelet's CFS quota disabled (a misconfiguration)", Ordered, Label("negative", "disruptive"), func() {
		BeforeAll(func(ctx SpecContext) {
			e.RequireApply("disabling the kubelet's CFS quota")
			if e.Provider != "kind" {
				Skip("changes a kubelet flag through /etc/default/kubelet: only done on nodeconform's kind nodes")
			}
			const file, saved = "/etc/default/kubelet", "/etc/default/kubelet.nodeconform-orig"
			restartTimeout := e.Config.Timeouts.NodeRestart.Duration
			DeferCleanup(func(ctx SpecContext) {
				_, err := e.Nodes.MustHost(ctx, node, "sh", "-c", fmt.Sprintf("test -f %[2]s && mv %[2]s %[1]s || true", file, saved))
				Expect(err).NotTo(HaveOccurred())
				Expect(e.Nodes.Restart(ctx, node, []string{"kubelet.service"}, []string{"kubelet"}, restartTimeout)).To(Succeed())
			}, NodeTimeout(restartTimeout+time.Minute))
			_, err := e.Nodes.MustHost(ctx, node, "sh", "-c", fmt.Sprintf(
				`set -e; cp %[1]s %[2]s; grep -q '^KUBELET_EXTRA_ARGS=' %[1]s || echo 'KUBELET_EXTRA_ARGS=' >> %[1]s; sed -i 's|^KUBELET_EXTRA_ARGS=\(.*\)$|KUBELET_EXTRA_ARGS=\1 --cpu-cfs-quota=false|' %[1]s`, file, saved))
			Expect(err).NotTo(HaveOccurred())
			Expect(e.Nodes.Restart(ctx, node, []string{"kubelet.service"}, []string{"kubelet"}, restartTimeout)).To(Succeed())
		}, NodeTimeout(e2e.TreeConfig().Timeouts.NodeRestart.Duration+time.Minute))

		It("is reported: no quota in the cgroup files and the busy loop escapes its 100m limit", func(ctx SpecContext) {
			ns := e.Namespace(ctx, "cgroups-nocfs", "")
			p := run(ctx, e, probePod(ns, "limited", e.ProbeImage, node, res("100m", "16Mi"), res("100m", "64Mi"), []string{"burn"}))
			l := readLimits(ctx, rd, p)
			problems := cg.Check(version, cg.Expected{CPURequestMilli: 100, CPULimitMilli: 100, MemoryLimit: 64 << 20}, l)
			a := cpuUsage(ctx, rd, p)
			start := time.Now()
			time.Sleep(e.Config.Cgroups.ThrottleWindow.Duration)
			b := cpuUsage(ctx, rd, p)
			f := cg.CPUFraction(a, b, time.Since(start).Nanoseconds())
			evidence.Record("cfsQuotaDisabled", map[string]any{"limitProblems": problems, "fraction": f, "files": l.Files})
			Expect(problems).To(ContainElement(ContainSubstring("cpu quota -1")), "the limit check must report the missing quota")
			Expect(f).To(BeNumerically(">", e.Config.Cgroups.LimitedCPUMax), "the throttling check must fail: the loop used %.3f of a CPU", f)
		})
	})

	It("runs nodes with swap off, or with the kubelet's swap behaviour when swap is on", func(ctx SpecContext) {
		swaps, err := e.Nodes.MustHost(ctx, node, "cat", "/proc/swaps")
		Expect(err).NotTo(HaveOccurred())
		lines := strings.Split(strings.TrimSpace(swaps), "\n")
		evidence.Record("swap", map[string]any{"procSwaps": swaps, "failSwapOn": kc.FailSwapOn, "swapBehavior": kc.MemorySwap.SwapBehavior})
		if len(lines) <= 1 {
			return // header only: swap is off
		}
		Expect(kc.FailSwapOn).NotTo(BeNil())
		Expect(*kc.FailSwapOn).To(BeFalse(), "swap is on but the kubelet is configured to fail on swap")
		Expect(kc.MemorySwap.SwapBehavior).NotTo(BeEmpty(), "swap is on and the kubelet has no swap behaviour configured")
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

func run(ctx context.Context, e *e2e.Env, p *corev1.Pod) *corev1.Pod {
	got, err := workload.CreateReady(ctx, e.Klient, e.Clientset, p, e.Config.Timeouts.PodReady.Duration)
	Expect(err).NotTo(HaveOccurred())
	return got
}

func containerPath(ctx context.Context, rd *podcgroup.Reader, p *corev1.Pod, controller string) string {
	cp, err := rd.ContainerPath(ctx, p, controller)
	Expect(err).NotTo(HaveOccurred())
	return cp
}

func readLimits(ctx context.Context, rd *podcgroup.Reader, p *corev1.Pod) cg.Limits {
	l, err := rd.ContainerLimits(ctx, p)
	Expect(err).NotTo(HaveOccurred())
	return l
}

func cpuUsage(ctx context.Context, rd *podcgroup.Reader, p *corev1.Pod) cg.CPUUsage {
	u, err := rd.CPUUsage(ctx, p)
	Expect(err).NotTo(HaveOccurred())
	return u
}

func field(text, key string) string {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, key) {
			return strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, key), "kB"))
		}
	}
	return ""
}
