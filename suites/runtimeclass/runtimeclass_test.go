package runtimeclass

import (
	"context"
	"fmt"
	"sort"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/nodeconform/nodeconform/fixtures"
	cg "github.com/nodeconform/nodeconform/framework/cgroups"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/evidence"
	"github.com/nodeconform/nodeconform/framework/nodeaccess"
	"github.com/nodeconform/nodeconform/framework/openshift"
	"github.com/nodeconform/nodeconform/framework/podcgroup"
	"github.com/nodeconform/nodeconform/framework/probeapi"
	rcx "github.com/nodeconform/nodeconform/framework/runtimeclass"
	"github.com/nodeconform/nodeconform/framework/verdict"
	"github.com/nodeconform/nodeconform/framework/workload"
)

const hostnameLabel = "kubernetes.io/hostname"

var _ = Describe("sandboxed runtime (RuntimeClass)", Ordered, ContinueOnFailure, Serial, Label("runtimeclass"), func() {
	var (
		e        *e2e.Env
		rc       *nodev1.RuntimeClass
		want     corev1.ResourceList
		node     string
		rd       *podcgroup.Reader
		cfsQuota = true
	)

	BeforeAll(func(ctx SpecContext) {
		e = *env
		Expect(e.Nodes).NotTo(BeNil(), "suite needs node access")
		cfg := e.Config.RuntimeClass
		var err error
		want, err = rcx.ParseOverhead(cfg.Overhead)
		Expect(err).NotTo(HaveOccurred())
		rc = ensureRuntimeClass(ctx, e)
		evidence.Record("runtimeClass", map[string]any{"name": rc.Name, "handler": rc.Handler, "overhead": rcx.PodFixed(rc),
			"scheduling": rc.Scheduling, "expectedOverhead": want})

		node = nodeFor(ctx, e, rc)
		rd, err = podcgroup.NewReader(ctx, e.Nodes, node)
		Expect(err).NotTo(HaveOccurred())
		var kc struct {
			CPUCFSQuota *bool `json:"cpuCFSQuota"`
		}
		Expect(nodeaccess.KubeletConfig(ctx, e.Clientset, node, &kc)).To(Succeed())
		if kc.CPUCFSQuota != nil {
			cfsQuota = *kc.CPUCFSQuota
		}
		evidence.Record("node", map[string]any{"name": node, "cgroupVersion": rd.Version, "cpuCFSQuota": cfsQuota})
	})

	It("declares the expected handler and overhead.podFixed", func() {
		Expect(rc.Handler).To(Equal(e.Config.RuntimeClass.Handler), "RuntimeClass %s handler", rc.Name)
		if d := rcx.CompareOverhead(want, rcx.PodFixed(rc)); len(d) > 0 {
			Fail(fmt.Sprintf("RuntimeClass %s overhead.podFixed differs from the expected (profile or config): %s", rc.Name, strings.Join(d, "; ")))
		}
	})

	It("has admission copy the RuntimeClass overhead into the pod's spec.overhead", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "rc-admission", "")
		got, err := dryRun(ctx, e, kataPod(e, ns, "admitted", rc.Name, "", oneContainer()))
		Expect(err).NotTo(HaveOccurred())
		evidence.Record("admitted", map[string]any{"runtimeClassName": got.Spec.RuntimeClassName, "overhead": got.Spec.Overhead})
		Expect(got.Spec.Overhead).NotTo(BeEmpty(), "admission set no overhead on a pod of RuntimeClass %s", rc.Name)
		Expect(rcx.CompareOverhead(rcx.PodFixed(rc), got.Spec.Overhead)).To(BeEmpty())
	})

	It("rejects at admission a pod that sets an overhead different from the RuntimeClass's", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "rc-reject", "")
		p := kataPod(e, ns, "own-overhead", rc.Name, "", oneContainer())
		p.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1m"), corev1.ResourceMemory: resource.MustParse("1Mi")}
		_, err := dryRun(ctx, e, p)
		Expect(err).To(HaveOccurred(), "a pod with its own overhead (1m, 1Mi) was admitted")
		evidence.Record("rejection", err.Error())
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "want Forbidden from the RuntimeClass admission plugin, got %v", err)
		Expect(err.Error()).To(ContainSubstring("Overhead"))
	})

	It("counts the overhead when scheduling: a pod that fits a node without it stays Pending with it", func(ctx SpecContext) {
		e.SkipInVerify("this spec fills a node's free CPU to show the scheduler counts overhead")
		ns := e.Namespace(ctx, "rc-schedule", "")
		overhead := rcx.PodFixed(rc)
		ovCPU := overhead.Cpu().MilliValue()
		if ovCPU == 0 {
			Fail(fmt.Sprintf("RuntimeClass %s declares no cpu overhead to schedule against", rc.Name))
		}
		waitNoTerminating(ctx, e, node)
		alloc, used := nodeCPU(ctx, e, node)
		free := alloc - used
		request := free - ovCPU/2
		evidence.Record("capacity", map[string]any{"node": node, "allocatableMilliCPU": alloc, "requestedMilliCPU": used,
			"freeMilliCPU": free, "podRequestMilliCPU": request, "overheadMilliCPU": ovCPU})
		Expect(request).To(BeNumerically(">", 0), "node %s has %dm CPU free, less than half the overhead", node, free)

		// Control: the same pod without the RuntimeClass is scheduled there.
		control := scheduledPod(e, ns, "control", "", node, request)
		Expect(e.Klient.Resources().Create(ctx, control)).To(Succeed())
		e.Eventually(ctx, func(ctx context.Context) string {
			return condition(ctx, e, ns, control.Name, corev1.PodScheduled)
		}, e.Config.Timeouts.PodReady.Duration).Should(Equal("True"), "control pod requesting %dm was not scheduled on %s", request, node)
		zero := int64(0)
		Expect(e.Clientset.CoreV1().Pods(ns).Delete(ctx, control.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})).To(Succeed())
		e.Eventually(ctx, func(ctx context.Context) bool {
			_, err := e.Clientset.CoreV1().Pods(ns).Get(ctx, control.Name, metav1.GetOptions{})
			return apierrors.IsNotFound(err)
		}, e.Config.Timeouts.PodReady.Duration).Should(BeTrue())

		kata := scheduledPod(e, ns, "sandboxed", rc.Name, node, request)
		Expect(e.Klient.Resources().Create(ctx, kata)).To(Succeed())
		var ev corev1.Event
		e.Eventually(ctx, func(ctx context.Context) bool {
			var ok bool
			ev, ok = rcx.Insufficient(workload.Events(ctx, e.Clientset, ns, kata.Name), corev1.ResourceCPU)
			return ok
		}, e.Config.Timeouts.PodReady.Duration).Should(BeTrue(), "no FailedScheduling event naming Insufficient cpu: %s", workload.Describe(ctx, e.Clientset, ns, kata.Name))
		got, err := e.Clientset.CoreV1().Pods(ns).Get(ctx, kata.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		evidence.Record("pending", map[string]any{"event": ev.Message, "phase": got.Status.Phase, "nodeName": got.Spec.NodeName})
		Expect(got.Spec.NodeName).To(BeEmpty(), "the sandboxed pod was bound to %s although request+overhead exceed its free CPU", got.Spec.NodeName)
	})

	// The pod cgroup is node-level (cgroup version, driver, the kubelet's
	// CFS quota): judged on every node the RuntimeClass may run on.
	It("writes the containers' limits plus the overhead into the pod cgroup on each node", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "rc-cgroup", "")
		verdict.Expect("pod cgroup with overhead", eachNode(ctx, e, rc, func(ctx context.Context, g Gomega, n string, rd *podcgroup.Reader, quota bool) any {
			got := runG(ctx, g, e, kataPod(e, ns, "limits-"+n, rc.Name, n, twoContainers()...))
			g.Expect(rcx.CompareOverhead(rcx.PodFixed(rc), got.Spec.Overhead)).To(BeEmpty())
			expected := rcx.ExpectedPodCgroup(got, quota)
			l, err := rd.PodLimits(ctx, got)
			g.Expect(err).NotTo(HaveOccurred())
			if problems := cg.Check(rd.Version, expected, l); len(problems) > 0 {
				verdict.FailNode(fmt.Sprintf("pod cgroup of %s/%s: %s", ns, got.Name, strings.Join(problems, "; ")))
			}
			return map[string]any{"cgroupVersion": rd.Version, "expected": expected, "files": l.Files, "overhead": got.Spec.Overhead, "qos": got.Status.QOSClass}
		}))
	})

	// The check above must fail when the overhead is not applied: a
	// RuntimeClass on the same handler without overhead, read against the
	// expectation of the configured overhead, on each node (each cgroup
	// version's files).
	It("reports a pod cgroup without the overhead (negative control)", Label("negative"), func(ctx SpecContext) {
		e.SkipInVerify("this spec creates a RuntimeClass (cluster-scoped)")
		bare := createRuntimeClass(ctx, e, &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "nodeconform-nooverhead-" + e.RunID}, Handler: rc.Handler})
		ns := e.Namespace(ctx, "rc-nooverhead", "")
		verdict.Expect("negative control: pod cgroup without overhead", eachNode(ctx, e, rc, func(ctx context.Context, g Gomega, n string, rd *podcgroup.Reader, quota bool) any {
			got := runG(ctx, g, e, kataPod(e, ns, "bare-"+n, bare.Name, n, twoContainers()...))
			g.Expect(got.Spec.Overhead).To(BeEmpty())
			withOverhead := got.DeepCopy()
			withOverhead.Spec.Overhead = want
			l, err := rd.PodLimits(ctx, got)
			g.Expect(err).NotTo(HaveOccurred())
			problems := cg.Check(rd.Version, rcx.ExpectedPodCgroup(withOverhead, quota), l)
			if !containsText(problems, "memory limit") {
				verdict.FailNode(fmt.Sprintf("the pod cgroup check passed pod %s/%s without overhead (problems: %q)", ns, got.Name, problems))
			}
			return map[string]any{"cgroupVersion": rd.Version, "files": l.Files, "problems": problems}
		}))
	})

	It("merges the RuntimeClass's nodeSelector and tolerations into the pod and honours them", func(ctx SpecContext) {
		e.SkipInVerify("this spec creates a RuntimeClass (cluster-scoped)")
		target, taints := taintedNode(ctx, e)
		tolerations := []corev1.Toleration{{Key: "nodeconform.io/sandbox", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
		for _, t := range taints {
			tolerations = append(tolerations, corev1.Toleration{Key: t.Key, Operator: corev1.TolerationOpExists, Effect: t.Effect})
		}
		sched := createRuntimeClass(ctx, e, &nodev1.RuntimeClass{
			ObjectMeta: metav1.ObjectMeta{Name: "nodeconform-sched-" + e.RunID}, Handler: rc.Handler,
			Scheduling: &nodev1.Scheduling{NodeSelector: map[string]string{hostnameLabel: target}, Tolerations: tolerations},
		})
		ns := e.Namespace(ctx, "rc-scheduling", "")
		p := kataPod(e, ns, "placed", sched.Name, "", oneContainer())
		p.Spec.Tolerations = nil // only what the RuntimeClass brings
		got := run(ctx, e, p)
		evidence.Record("placed", map[string]any{"target": target, "targetTaints": taints, "nodeName": got.Spec.NodeName,
			"nodeSelector": got.Spec.NodeSelector, "tolerations": got.Spec.Tolerations})
		Expect(got.Spec.NodeSelector).To(HaveKeyWithValue(hostnameLabel, target))
		for _, t := range tolerations {
			Expect(got.Spec.Tolerations).To(ContainElement(t))
		}
		Expect(got.Spec.NodeName).To(Equal(target))

		// A pod whose own nodeSelector contradicts the RuntimeClass's is refused.
		other := kataPod(e, ns, "conflict", sched.Name, "", oneContainer())
		other.Spec.NodeSelector = map[string]string{hostnameLabel: target + "-elsewhere"}
		_, err := dryRun(ctx, e, other)
		Expect(err).To(HaveOccurred(), "a pod contradicting the RuntimeClass nodeSelector was admitted")
		evidence.Record("conflict", err.Error())
		Expect(err.Error()).To(ContainSubstring("conflict"))
	})

	It("fails sandbox creation for an unknown handler with an event naming it", func(ctx SpecContext) {
		e.SkipInVerify("this spec creates a RuntimeClass (cluster-scoped)")
		const handler = "nodeconform-missing"
		missing := createRuntimeClass(ctx, e, &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "nodeconform-missing-" + e.RunID}, Handler: handler})
		ns := e.Namespace(ctx, "rc-missing", "")
		p := kataPod(e, ns, "nohandler", missing.Name, node, oneContainer())
		Expect(e.Klient.Resources().Create(ctx, p)).To(Succeed())
		var ev corev1.Event
		e.Eventually(ctx, func(ctx context.Context) bool {
			var ok bool
			ev, ok = rcx.SandboxFailure(workload.Events(ctx, e.Clientset, ns, p.Name), handler)
			return ok
		}, e.Config.Timeouts.SandboxEvent.Duration).Should(BeTrue(), "no FailedCreatePodSandBox event naming %q: %s", handler, workload.Describe(ctx, e.Clientset, ns, p.Name))
		evidence.Record("sandboxFailure", map[string]any{"reason": ev.Reason, "message": ev.Message, "source": ev.Source.Host})
		got, err := e.Clientset.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(got.Status.Phase).To(Equal(corev1.PodPending))
	})

	It("isolates the pod from the node's kernel where the handler is a sandbox (a VM or gVisor)", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "rc-vm", "")
		got := run(ctx, e, kataPod(e, ns, "guest", rc.Name, node, oneContainer()))
		read := func(file string) string {
			var r probeapi.Read
			Expect(workload.ExecJSON(ctx, e.Klient, ns, got.Name, []string{"read", file}, &r)).To(Succeed())
			return strings.TrimSpace(r.Content)
		}
		host := func(file string) string {
			out, err := rd.Cat(ctx, file)
			Expect(err).NotTo(HaveOccurred())
			return out
		}
		pod := rcx.Kernel{BootID: read("/proc/sys/kernel/random/boot_id"), Cmdline: read("/proc/cmdline"), Version: read("/proc/version")}
		nodeK := rcx.Kernel{BootID: host("/proc/sys/kernel/random/boot_id"), Cmdline: host("/proc/cmdline"), Version: host("/proc/version")}
		ps, err := e.Nodes.MustHost(ctx, node, "ps", "-e", "-o", "args=")
		Expect(err).NotTo(HaveOccurred())
		iso := rcx.Classify(pod, nodeK, ps)
		evidence.Record("isolation", map[string]any{"pod": pod, "node": nodeK, "handler": rc.Handler, "isolation": iso})
		if iso.Problem != "" {
			Fail(fmt.Sprintf("handler %q on %s: %s (%s)", rc.Handler, node, iso.Problem, iso.Evidence))
		}
		if iso.Kind == rcx.SharedKernel {
			msg := fmt.Sprintf("handler %q on %s is not a sandbox: %s, and no VMM or gVisor sandbox serves it (on the node: %v); isolation not proven",
				rc.Handler, node, iso.Evidence, iso.Processes)
			if e.Config.RuntimeClass.RequireVM {
				Fail(msg + " (runtimeClass.requireVM is true)")
			}
			Skip(msg)
		}
		GinkgoWriter.Printf("handler %q on %s: %s: %s\n", rc.Handler, node, iso.Kind, iso.Evidence)
	})

	It("kills a sandboxed container that allocates past its memory limit (OOMKilled)", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "rc-oom", "")
		p := kataPod(e, ns, "oom", rc.Name, node, corev1.ResourceRequirements{Requests: res("10m", "32Mi"), Limits: res("100m", "32Mi")})
		p.Spec.Containers[0].Args = []string{"alloc", "--mib", "128"}
		Expect(e.Klient.Resources().Create(ctx, p)).To(Succeed())
		status := e.ExpectRestartedAfter(ctx, Default, ns, p.Name, "OOMKilled")
		evidence.Record("oom", map[string]any{"restartCount": status.RestartCount, "lastTermination": status.LastTerminationState.Terminated})
	})
})

// ensureRuntimeClass returns the RuntimeClass under test. On kind (apply
// mode) it creates the seed's fixture when absent, removed after the run;
// on OpenShift it applies the seed's KataConfig and waits for the operator.
// In verify mode a missing RuntimeClass skips the suite unless the
// configuration requires one; anywhere else it is a failure naming what to
// install.
func ensureRuntimeClass(ctx context.Context, e *e2e.Env) *nodev1.RuntimeClass {
	name := e.Config.RuntimeClass.Name
	rc, err := e.Clientset.NodeV1().RuntimeClasses().Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		return rc
	}
	Expect(apierrors.IsNotFound(err)).To(BeTrue(), "get RuntimeClass %s: %v", name, err)
	if e.Mode == "verify" {
		msg := fmt.Sprintf("the cluster has no RuntimeClass %q (a read-only run does not install one)", name)
		if e.Config.RuntimeClass.Required {
			Fail(msg + ": install the sandboxed runtime (OpenShift: KataConfig)")
		}
		Skip(msg + "; set runtimeClass.required: true to fail instead")
	}
	kata, err := openshift.HasKataConfigAPI(e.Clientset.Discovery())
	Expect(err).NotTo(HaveOccurred())
	switch {
	case kata:
		installKataConfig(ctx, e)
		rc, err = e.Clientset.NodeV1().RuntimeClasses().Get(ctx, name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred(), "the KataConfig is installed but RuntimeClass %s is missing", name)
		return rc
	case e.Provider == "kind":
		var fixture nodev1.RuntimeClass
		Expect(yaml.UnmarshalStrict(fixtures.MustRead("runtimeclass/runtimeclass-kata.yaml"), &fixture)).To(Succeed())
		fixture.Name = name
		fixture.Handler = e.Config.RuntimeClass.Handler
		return createRuntimeClass(ctx, e, &fixture)
	}
	Fail(fmt.Sprintf("the cluster has no RuntimeClass %q and no KataConfig API: install the sandboxed runtime first", name))
	return nil
}

// installKataConfig applies the seed's KataConfig (checkNodeEligibility)
// and waits for the operator; the KataConfig is deleted after the suite,
// which uninstalls the runtime again. Written for OpenShift, not run here.
func installKataConfig(ctx context.Context, e *e2e.Env) {
	dc, err := dynamic.NewForConfig(e.REST)
	Expect(err).NotTo(HaveOccurred())
	kc, err := openshift.ApplyYAML(ctx, dc, openshift.KataConfigGVR, fixtures.MustRead("runtimeclass/kataconfig.yaml"))
	Expect(err).NotTo(HaveOccurred())
	timeouts := e.Config.Timeouts
	DeferCleanup(func(ctx SpecContext) {
		Expect(openshift.DeleteIgnoringAbsent(ctx, dc, openshift.KataConfigGVR, kc)).To(Succeed())
		Expect(openshift.WaitPoolsUpdated(ctx, dc, timeouts.MachineConfigPool.Duration, e.Config.Intervals.Poll.Duration)).To(Succeed())
	}, NodeTimeout(timeouts.MachineConfigPool.Duration+timeouts.APIReachable.Duration))
	status, err := openshift.WaitKataConfig(ctx, dc, kc, timeouts.KataConfig.Duration, e.Config.Intervals.Poll.Duration)
	evidence.Record("kataConfig", status)
	Expect(err).NotTo(HaveOccurred())
}

// createRuntimeClass creates rc labelled with the run, deleted when the
// current node ends (and by the suite's leftover sweep after an interrupt).
func createRuntimeClass(ctx context.Context, e *e2e.Env, rc *nodev1.RuntimeClass) *nodev1.RuntimeClass {
	if rc.Labels == nil {
		rc.Labels = map[string]string{}
	}
	rc.Labels[e2e.RunLabel] = e.RunID
	got, err := e.Clientset.NodeV1().RuntimeClasses().Create(ctx, rc, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred(), "create RuntimeClass %s", rc.Name)
	DeferCleanup(func(ctx SpecContext) {
		err := e.Clientset.NodeV1().RuntimeClasses().Delete(ctx, got.Name, metav1.DeleteOptions{})
		if !apierrors.IsNotFound(err) {
			Expect(err).NotTo(HaveOccurred(), "delete RuntimeClass %s", got.Name)
		}
	})
	return got
}

func res(cpu, mem string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu), corev1.ResourceMemory: resource.MustParse(mem)}
}

func oneContainer() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{Requests: res("50m", "32Mi"), Limits: res("100m", "64Mi")}
}

// twoContainers makes the pod-level sums differ from any one container's.
func twoContainers() []corev1.ResourceRequirements {
	return []corev1.ResourceRequirements{
		{Requests: res("100m", "32Mi"), Limits: res("200m", "64Mi")},
		{Requests: res("50m", "16Mi"), Limits: res("100m", "32Mi")},
	}
}

// kataPod is a probe pod of runtimeClass with one container per resource
// requirement; node "" leaves placement to the scheduler.
func kataPod(e *e2e.Env, ns, name, runtimeClass, node string, reqs ...corev1.ResourceRequirements) *corev1.Pod {
	p := workload.ProbePod(workload.ProbePodInput{Namespace: ns, Name: name, Image: e.ProbeImage})
	if node != "" {
		workload.PinToNode(p, node)
	}
	base := p.Spec.Containers[0]
	p.Spec.Containers = nil
	for i, rr := range reqs {
		c := *base.DeepCopy()
		if i > 0 {
			c.Name = fmt.Sprintf("%s-%d", base.Name, i)
		}
		c.Resources = rr
		p.Spec.Containers = append(p.Spec.Containers, c)
	}
	if runtimeClass != "" {
		p.Spec.RuntimeClassName = &runtimeClass
	}
	return p
}

// scheduledPod requests milliCPU on node through the scheduler.
func scheduledPod(e *e2e.Env, ns, name, runtimeClass, node string, milliCPU int64) *corev1.Pod {
	r := corev1.ResourceList{corev1.ResourceCPU: *resource.NewMilliQuantity(milliCPU, resource.DecimalSI), corev1.ResourceMemory: resource.MustParse("16Mi")}
	return kataPod(e, ns, name, runtimeClass, node, corev1.ResourceRequirements{Requests: r, Limits: r})
}

// eachNode runs check on every judged node the RuntimeClass's nodeSelector
// admits, with that node's cgroup reader and the kubelet's CFS quota.
func eachNode(ctx context.Context, e *e2e.Env, rc *nodev1.RuntimeClass, check func(ctx context.Context, g Gomega, node string, rd *podcgroup.Reader, cfsQuota bool) any) []verdict.Result {
	GinkgoHelper()
	var selector map[string]string
	if rc.Scheduling != nil {
		selector = rc.Scheduling.NodeSelector
	}
	list, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	admitted := map[string]bool{}
	for _, n := range list.Items {
		admitted[n.Name] = labels.SelectorFromSet(selector).Matches(labels.Set(n.Labels))
	}
	var nodes []string
	for _, n := range e.NodeNames() {
		if admitted[n] {
			nodes = append(nodes, n)
		}
	}
	Expect(nodes).NotTo(BeEmpty(), "no judged node matches RuntimeClass %s's nodeSelector %v", rc.Name, selector)
	return verdict.Each(ctx, verdict.Input{Nodes: nodes, Unreachable: e.Unreachable(), Parallel: e.Config.Nodes.MaxParallel},
		func(ctx context.Context, g Gomega, n string) any {
			rd, err := podcgroup.NewReader(ctx, e.Nodes, n)
			g.Expect(err).NotTo(HaveOccurred())
			var kc struct {
				CPUCFSQuota *bool `json:"cpuCFSQuota"`
			}
			g.Expect(nodeaccess.KubeletConfig(ctx, e.Clientset, n, &kc)).To(Succeed())
			return check(ctx, g, n, rd, kc.CPUCFSQuota == nil || *kc.CPUCFSQuota)
		})
}

func containsText(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

func runG(ctx context.Context, g Gomega, e *e2e.Env, p *corev1.Pod) *corev1.Pod {
	got, err := workload.CreateReady(ctx, e.Klient, e.Clientset, p, e.Config.Timeouts.PodReady.Duration)
	g.Expect(err).NotTo(HaveOccurred())
	return got
}

func run(ctx context.Context, e *e2e.Env, p *corev1.Pod) *corev1.Pod {
	GinkgoHelper()
	return runG(ctx, Default, e, p)
}

// dryRun admits a pod without persisting it: the answer is the pod as
// admission plugins left it, or their refusal.
func dryRun(ctx context.Context, e *e2e.Env, p *corev1.Pod) (*corev1.Pod, error) {
	return e.Clientset.CoreV1().Pods(p.Namespace).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
}

func condition(ctx context.Context, e *e2e.Env, ns, name string, t corev1.PodConditionType) string {
	p, err := e.Clientset.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	for _, c := range p.Status.Conditions {
		if c.Type == t {
			return string(c.Status)
		}
	}
	return ""
}

func podsOn(ctx context.Context, e *e2e.Env, node string) []corev1.Pod {
	list, err := e.Clientset.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + node})
	Expect(err).NotTo(HaveOccurred())
	return list.Items
}

// waitNoTerminating waits until no pod on node is being deleted: the
// scheduler still counts such pods, and their going would free CPU in
// the middle of the capacity spec.
func waitNoTerminating(ctx context.Context, e *e2e.Env, node string) {
	e.Eventually(ctx, func(ctx context.Context) []string {
		var out []string
		for _, p := range podsOn(ctx, e, node) {
			if p.DeletionTimestamp != nil {
				out = append(out, p.Namespace+"/"+p.Name)
			}
		}
		return out
	}, e.Config.Timeouts.NamespaceDeletion.Duration).Should(BeEmpty())
}

// nodeCPU is the node's allocatable CPU and what the scheduler has already
// charged against it (every non-terminal pod bound there, with overhead).
func nodeCPU(ctx context.Context, e *e2e.Env, node string) (alloc, used int64) {
	n, err := e.Clientset.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	Expect(err).NotTo(HaveOccurred())
	alloc = n.Status.Allocatable.Cpu().MilliValue()
	for _, p := range podsOn(ctx, e, node) {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		r := rcx.PodRequests(&p)
		used += r.Cpu().MilliValue()
	}
	return alloc, used
}

// nodeFor picks the node the suite's pods run on: one the RuntimeClass's
// own scheduling admits (the OpenShift operator restricts kata to its
// nodes, and the kubelet refuses a pinned pod whose merged nodeSelector
// does not match), preferring untainted workers, by name.
func nodeFor(ctx context.Context, e *e2e.Env, rc *nodev1.RuntimeClass) string {
	nodes, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	var selector map[string]string
	if rc.Scheduling != nil {
		selector = rc.Scheduling.NodeSelector
	}
	var workers, all []string
	for _, n := range nodes.Items {
		if !labels.SelectorFromSet(selector).Matches(labels.Set(n.Labels)) {
			continue
		}
		all = append(all, n.Name)
		if _, cp := n.Labels["node-role.kubernetes.io/control-plane"]; !cp && len(n.Spec.Taints) == 0 {
			workers = append(workers, n.Name)
		}
	}
	Expect(all).NotTo(BeEmpty(), "no node matches RuntimeClass %s's nodeSelector %v", rc.Name, selector)
	sort.Strings(workers)
	sort.Strings(all)
	if len(workers) > 0 {
		return workers[0]
	}
	return all[0]
}

// taintedNode picks a node with NoSchedule taints when there is one (a
// pod reaches it only if the RuntimeClass's tolerations were merged), or
// else the last node by name, so placement is not the scheduler's first
// choice by chance.
func taintedNode(ctx context.Context, e *e2e.Env) (string, []corev1.Taint) {
	nodes, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	sort.Slice(nodes.Items, func(i, j int) bool { return nodes.Items[i].Name < nodes.Items[j].Name })
	for _, n := range nodes.Items {
		var taints []corev1.Taint
		for _, t := range n.Spec.Taints {
			if t.Effect == corev1.TaintEffectNoSchedule {
				taints = append(taints, t)
			}
		}
		if len(taints) > 0 && len(taints) == len(n.Spec.Taints) {
			return n.Name, taints
		}
	}
	return nodes.Items[len(nodes.Items)-1].Name, nil
}
