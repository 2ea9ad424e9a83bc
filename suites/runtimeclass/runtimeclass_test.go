package runtimeclass

import (
	"context"
	"fmt"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	apitypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/nodeconform/nodeconform/fixtures"
	cg "github.com/nodeconform/nodeconform/framework/cgroups"
	"github.com/nodeconform/nodeconform/framework/config"
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

// Each class under test (config runtimeClass.classes, or the profile's
// runtimeClasses) gets its own ordered container and verdicts: a class
// missing here, or offered by no node, skips its own specs only.
var _ = Describe("sandboxed runtime (RuntimeClass)", Label("runtimeclass"), func() {
	for _, c := range e2e.TreeConfig().RuntimeClass.Classes {
		describeClass(c.Name)
	}
	describeMechanics()
})

// The specs that read each node's shared pod of the class: BeforeAll
// starts those pods ahead only when one of them is selected.
const (
	specPodCgroup    = "writes the containers' limits plus the overhead into the pod cgroup on each node"
	specMemoryAtRest = "keeps the sandbox's memory at rest within the declared memory overhead on each node"
	specIsolation    = "isolates the pod from the node's kernel where the handler is a sandbox (a VM or gVisor) on each node"
)

func describeClass(name string) {
	Describe("RuntimeClass "+name, Ordered, ContinueOnFailure, Serial, func() {
		var (
			e        *e2e.Env
			cls      config.RuntimeClass
			rc       *nodev1.RuntimeClass
			want     corev1.ResourceList
			node     string
			rd       *podcgroup.Reader
			cfsQuota = true
			// under is the class's handler with 64Ki of memory overhead,
			// for the negative controls (nil in verify mode).
			under *nodev1.RuntimeClass
			pods  *sharedPods
			// classPodsAhead: a spec that reads the class pods is selected.
			classPodsAhead bool
		)

		// The class's shared pod on node has two containers, so that
		// pod-level sums differ from any one container's.
		newClassPod := func(n string) *corev1.Pod {
			return classPod(e, pods.ns, "class-"+n, rc.Name, n, twoContainers()...)
		}
		classPodOn := func(ctx context.Context, g Gomega, n string) *corev1.Pod {
			return pods.get(ctx, g, n, newClassPod(n))
		}
		newUnderPod := func(n string) *corev1.Pod {
			return classPod(e, pods.ns, "under-"+n, under.Name, n, twoContainers()...)
		}
		underPodOn := func(ctx context.Context, g Gomega, n string) *corev1.Pod {
			return pods.get(ctx, g, n, newUnderPod(n))
		}
		// For the specs whose expectation is the pod's resources plus the
		// overhead: a container admission added (a sidecar without
		// limits) leaves the pod cgroup without a memory limit, which the
		// negative control then cannot tell from one without the
		// overhead, and its memory would count as the sandbox's. Such a
		// pod fails naming admission, not the runtime. Isolation and the
		// OOM kill do not depend on the pod's sums.
		asAsked := func(g Gomega, asked, got *corev1.Pod) *corev1.Pod {
			g.Expect(workload.AdmittedAsAsked(asked, got)).To(Succeed())
			return got
		}
		classPodAsAsked := func(ctx context.Context, g Gomega, n string) *corev1.Pod {
			return asAsked(g, newClassPod(n), classPodOn(ctx, g, n))
		}
		underPodAsAsked := func(ctx context.Context, g Gomega, n string) *corev1.Pod {
			return asAsked(g, newUnderPod(n), underPodOn(ctx, g, n))
		}

		BeforeAll(func(ctx SpecContext) {
			e = *env
			Expect(e.Nodes).NotTo(BeNil(), "suite needs node access")
			var ok bool
			cls, ok = e.Config.Class(name)
			Expect(ok).To(BeTrue(), "RuntimeClass %s is not among the configured classes", name)
			var err error
			want, err = rcx.ParseOverhead(cls.Overhead)
			Expect(err).NotTo(HaveOccurred(), "RuntimeClass %s", name)
			rc = ensureRuntimeClass(ctx, e, cls)
			evidence.Record("runtimeClass", map[string]any{"name": rc.Name, "handler": rc.Handler, "overhead": rcx.PodFixed(rc),
				"scheduling": rc.Scheduling, "expectedOverhead": want, "isolated": cls.Isolated})

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
			// A sandbox takes seconds to boot (15-20 s for gVisor on these
			// machines, a minute under emulation): the per-node specs share
			// one pod of the class per node (the positive specs), then one
			// of the under-declared class (the negative controls), each
			// started by the first spec that needs it. A node holds one of
			// them at a time: two sandboxes' overhead do not fit a kind
			// control plane's free CPU.
			pods = &sharedPods{e: e, ns: e.Namespace(ctx, "rc-"+name, "baseline")}
			if e.Mode != "verify" {
				small := resource.MustParse(underDeclared)
				overhead := corev1.ResourceList{corev1.ResourceMemory: small}
				if c, ok := rcx.PodFixed(rc)[corev1.ResourceCPU]; ok {
					overhead[corev1.ResourceCPU] = c
				}
				under = createRuntimeClass(ctx, e, &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "nodeconform-underdeclared-" + name + "-" + e.RunID},
					Handler: rc.Handler, Overhead: &nodev1.Overhead{PodFixed: overhead}, Scheduling: rc.Scheduling})
			}
			// Each node's class pod is created now and waited for by the
			// first spec that needs it: the sandboxes boot while the
			// API-only specs run, and the memory window after Ready is
			// mostly behind them by the memory spec. Nodes whose runtime
			// does not offer the handler get none (eachNode fails them).
			// The capacity spec's node gets its pod when that spec is done
			// (in verify mode, which skips it, now): kube-scheduler v1.37
			// charges a running pod's overhead twice once the kubelet has
			// set its allocated resources (kubernetes#139627; 1335m fitted
			// beside a pod of 150m + 250m overhead on a 2-CPU node here,
			// 1345m did not), so a sandboxed pod there would leave the
			// spec's control pod unscheduled.
			//
			// A run whose filters select none of the specs that read them
			// (a focus on admission, say) boots no sandbox for them.
			classPodsAhead = e2e.AnySelected(specPodCgroup, specMemoryAtRest, specIsolation)
			if classPodsAhead {
				nodes, byName := classNodes(ctx, e, rc)
				unreachable := e.Unreachable()
				for _, n := range nodes {
					if _, down := unreachable[n]; down || (n == node && e.Mode != "verify") {
						continue
					}
					if offered, known := rcx.Offers(byName[n], rc.Handler); known && !offered {
						continue
					}
					Expect(pods.start(ctx, n, newClassPod(n))).To(Succeed())
				}
			}
			// Runs before the namespace's own cleanup (registered first):
			// the next class's capacity spec waits until no pod on its
			// node is going away, and a sandbox's graceful stop takes
			// seconds.
			DeferCleanup(pods.deleteAll)
		})

		It("declares the expected handler, overhead.podFixed and nodeSelector", func() {
			Expect(rc.Handler).To(Equal(cls.Handler), "RuntimeClass %s handler", rc.Name)
			if d := rcx.CompareOverhead(want, rcx.PodFixed(rc)); len(d) > 0 {
				Fail(fmt.Sprintf("RuntimeClass %s overhead.podFixed differs from the expected (profile or config): %s", rc.Name, strings.Join(d, "; ")))
			}
			if cls.NodeSelector != nil {
				var got map[string]string
				if rc.Scheduling != nil {
					got = rc.Scheduling.NodeSelector
				}
				Expect(got).To(Equal(cls.NodeSelector), "RuntimeClass %s scheduling.nodeSelector", rc.Name)
			}
		})

		It("has admission copy the RuntimeClass overhead into the pod's spec.overhead", func(ctx SpecContext) {
			ns := e.Namespace(ctx, "rc-admission", "baseline")
			got, err := dryRun(ctx, e, classPod(e, ns, "admitted", rc.Name, "", oneContainer()))
			Expect(err).NotTo(HaveOccurred())
			evidence.Record("admitted", map[string]any{"runtimeClassName": got.Spec.RuntimeClassName, "overhead": got.Spec.Overhead})
			Expect(got.Spec.Overhead).NotTo(BeEmpty(), "admission set no overhead on a pod of RuntimeClass %s", rc.Name)
			Expect(rcx.CompareOverhead(rcx.PodFixed(rc), got.Spec.Overhead)).To(BeEmpty())
		})

		It("rejects at admission a pod that sets an overhead different from the RuntimeClass's", func(ctx SpecContext) {
			ns := e.Namespace(ctx, "rc-reject", "baseline")
			p := classPod(e, ns, "own-overhead", rc.Name, "", oneContainer())
			p.Spec.Overhead = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1m"), corev1.ResourceMemory: resource.MustParse("1Mi")}
			_, err := dryRun(ctx, e, p)
			Expect(err).To(HaveOccurred(), "a pod with its own overhead (1m, 1Mi) was admitted")
			evidence.Record("rejection", err.Error())
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "want Forbidden from the RuntimeClass admission plugin, got %v", err)
			Expect(err.Error()).To(ContainSubstring("Overhead"))
		})

		It("counts the overhead when scheduling: a pod that fits a node without it stays Pending with it", func(ctx SpecContext) {
			e.SkipInVerify("this spec fills a node's free CPU to show the scheduler counts overhead")
			ns := e.Namespace(ctx, "rc-schedule", "baseline")
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

			sandboxed := scheduledPod(e, ns, "sandboxed", rc.Name, node, request)
			Expect(e.Klient.Resources().Create(ctx, sandboxed)).To(Succeed())
			// Bound, the pod holds the node's CPU for the specs after this
			// one until it is gone; it goes at once, whatever its sandbox
			// does (seen with the RuntimeClass admission plugin off: a
			// gVisor sandbox under the pod's 16Mi without the overhead did
			// not start, its kill never finished, and each later spec on
			// the node waited 2 minutes for CPU).
			DeferCleanup(func(ctx SpecContext) {
				err := e.Clientset.CoreV1().Pods(ns).Delete(ctx, sandboxed.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
				if !apierrors.IsNotFound(err) {
					Expect(err).NotTo(HaveOccurred())
				}
			})
			var ev corev1.Event
			var got *corev1.Pod
			e.Eventually(ctx, func(ctx context.Context) bool {
				p, err := e.Clientset.CoreV1().Pods(ns).Get(ctx, sandboxed.Name, metav1.GetOptions{})
				if err != nil {
					return false
				}
				got = p
				// Bound is the failure itself (judged below): no event will come.
				if got.Spec.NodeName != "" {
					return true
				}
				var ok bool
				ev, ok = rcx.Insufficient(workload.Events(ctx, e.Clientset, ns, sandboxed.Name), corev1.ResourceCPU)
				return ok
			}, e.Config.Timeouts.PodReady.Duration).Should(BeTrue(), "no FailedScheduling event naming Insufficient cpu: %s", workload.Describe(ctx, e.Clientset, ns, sandboxed.Name))
			Expect(got).NotTo(BeNil())
			evidence.Record("pending", map[string]any{"event": ev.Message, "phase": got.Status.Phase, "nodeName": got.Spec.NodeName, "overhead": got.Spec.Overhead})
			Expect(got.Spec.NodeName).To(BeEmpty(), "the sandboxed pod was bound to %s although request+overhead exceed its free CPU (its spec.overhead: %v)", got.Spec.NodeName, got.Spec.Overhead)
			// The node's class pod, held back for this spec (BeforeAll).
			if classPodsAhead {
				Expect(pods.start(ctx, node, newClassPod(node))).To(Succeed())
			}
		})

		// The pod cgroup is node-level (cgroup version, driver, the
		// kubelet's CFS quota): judged on every node the RuntimeClass may
		// run on, in the cgroup that holds the pod's processes (gVisor's
		// sandbox and gofer, or runc's pause and containers).
		It(specPodCgroup, func(ctx SpecContext) {
			verdict.Expect("pod cgroup with overhead", eachNode(ctx, e, rc, func(ctx context.Context, g Gomega, n string, rd *podcgroup.Reader, quota bool) any {
				got := classPodAsAsked(ctx, g, n)
				g.Expect(rcx.CompareOverhead(rcx.PodFixed(rc), got.Spec.Overhead)).To(BeEmpty())
				expected := rcx.ExpectedPodCgroup(got, quota)
				l, err := rd.PodLimits(ctx, got)
				g.Expect(err).NotTo(HaveOccurred())
				procs := podProcesses(ctx, g, e, n, got)
				if problems := cg.Check(rd.Version, expected, l); len(problems) > 0 {
					verdict.FailNode(fmt.Sprintf("pod cgroup of %s/%s: %s", got.Namespace, got.Name, strings.Join(problems, "; ")))
				}
				return map[string]any{"cgroupVersion": rd.Version, "expected": expected, "files": l.Files, "overhead": got.Spec.Overhead,
					"qos": got.Status.QOSClass, "processesInPodCgroup": procs}
			}))
		})

		// The seed's point: the overhead must cover what the sandbox costs.
		// An idle pod's cgroup holds the sandbox (gVisor's sentry and gofer,
		// a VMM) and two sleeping containers; its working set at rest is
		// the sandbox's cost, judged against the declared memory overhead.
		It(specMemoryAtRest, func(ctx SpecContext) {
			overhead := rcx.PodFixed(rc)
			declared := overhead.Memory().Value()
			verdict.Expect("sandbox memory within overhead", eachNode(ctx, e, rc, func(ctx context.Context, g Gomega, n string, rd *podcgroup.Reader, _ bool) any {
				p := classPodAsAsked(ctx, g, n)
				cost := sandboxCost(ctx, g, e, rd, p, pods.readyAt(p.Name), e.Config.RuntimeClass.SandboxSettle.Duration)
				if problem := rcx.JudgeSandboxMemory(cost.WorkingSet, declared, e.Config.RuntimeClass.SandboxMemoryMargin); problem != "" {
					verdict.FailNode(fmt.Sprintf("RuntimeClass %s on %s: %s", rc.Name, n, problem))
				}
				cost.DeclaredMemoryOverhead = declared
				return cost
			}))
		})

		// Isolation is the node's runtime configuration (which binary
		// serves the handler): judged on every node of the class, each in
		// its shared class pod.
		It(specIsolation, func(ctx SpecContext) {
			verdict.Expect("isolation from the node's kernel", eachNode(ctx, e, rc, func(ctx context.Context, g Gomega, n string, rd *podcgroup.Reader, _ bool) any {
				iso, ev := isolation(ctx, g, e, rd, classPodOn(ctx, g, n), n)
				failure, skip := rcx.JudgeIsolation(iso, cls.Isolated)
				if failure != "" {
					verdict.FailNode(fmt.Sprintf("RuntimeClass %s (handler %q): %s", rc.Name, rc.Handler, failure))
				}
				if skip != "" {
					verdict.SkipNode(fmt.Sprintf("RuntimeClass %s (handler %q): %s", rc.Name, rc.Handler, skip))
				}
				return ev
			}))
		})

		// The pod cgroup check must fail when the pod cgroup does not hold the
		// declared overhead: a pod of the same handler whose class
		// declares 64Ki of memory overhead, read against the expectation
		// of the configured overhead, on each node (each cgroup version's
		// files).
		It("reports a pod cgroup without the declared overhead (negative control)", Label("negative"), func(ctx SpecContext) {
			e.SkipInVerify("this spec creates a RuntimeClass (cluster-scoped)")
			verdict.Expect("negative control: pod cgroup without the declared overhead", eachNode(ctx, e, rc, func(ctx context.Context, g Gomega, n string, rd *podcgroup.Reader, quota bool) any {
				got := underPodAsAsked(ctx, g, n)
				g.Expect(rcx.CompareOverhead(rcx.PodFixed(under), got.Spec.Overhead)).To(BeEmpty())
				declared := got.DeepCopy()
				declared.Spec.Overhead = want
				l, err := rd.PodLimits(ctx, got)
				g.Expect(err).NotTo(HaveOccurred())
				problems := cg.Check(rd.Version, rcx.ExpectedPodCgroup(declared, quota), l)
				if !containsText(problems, "memory limit") {
					verdict.FailNode(fmt.Sprintf("the pod cgroup check passed pod %s/%s with %s of memory overhead against %s declared (problems: %q)",
						got.Namespace, got.Name, underDeclared, want.Memory(), problems))
				}
				return map[string]any{"cgroupVersion": rd.Version, "files": l.Files, "problems": problems}
			}))
		})

		// The sandbox memory judge must fail a class whose overhead is smaller than
		// what its sandbox uses: the same handler, 64Ki of memory overhead
		// (below even a runc pod at rest, 1.4 MiB here), measured the same
		// way on each node.
		It("reports a RuntimeClass whose memory overhead is smaller than its sandbox's use (negative control)", Label("negative"), func(ctx SpecContext) {
			e.SkipInVerify("this spec creates a RuntimeClass (cluster-scoped)")
			small := resource.MustParse(underDeclared)
			verdict.Expect("negative control: sandbox memory above a too small overhead", eachNode(ctx, e, rc, func(ctx context.Context, g Gomega, n string, rd *podcgroup.Reader, _ bool) any {
				p := underPodAsAsked(ctx, g, n)
				// One sample: more could only raise the highest, so a
				// judge that fails this one fails them all.
				cost := sandboxCost(ctx, g, e, rd, p, pods.readyAt(p.Name), 0)
				problem := rcx.JudgeSandboxMemory(cost.WorkingSet, small.Value(), e.Config.RuntimeClass.SandboxMemoryMargin)
				if problem == "" {
					verdict.FailNode(fmt.Sprintf("the sandbox memory check passed RuntimeClass %s (overhead %s) with %d bytes in use", under.Name, small.String(), cost.WorkingSet))
				}
				cost.DeclaredMemoryOverhead = small.Value()
				return map[string]any{"measured": cost, "problem": problem}
			}))
		})

		// runc: the kernel OOM-kills the container's process in its cgroup
		// and the kubelet reports OOMKilled. gVisor: the sentry, which
		// serves the container, answers its allocation inside its own
		// memory accounting; the container is reported as the runtime saw
		// it end (README: "OOM in a sandbox"). Both are the node's runtime
		// (which binary serves the handler, what it applies of the pod's
		// resources): judged on every node of the class. A node's shared
		// pods go first: two sandboxes' overhead do not fit a kind
		// control plane's free CPU.
		It("kills a sandboxed container that allocates past its memory limit and reports it on each node", func(ctx SpecContext) {
			ns := e.Namespace(ctx, "rc-oom", "baseline")
			var mu sync.Mutex
			var created []string
			// On the next class's capacity node: gone at once (see deleteAll).
			DeferCleanup(func(ctx SpecContext) {
				for _, name := range created {
					Expect(forceDelete(ctx, e.Clientset, ns, name)).To(Succeed())
				}
			})
			verdict.Expect("OOM kill reported", eachNode(ctx, e, rc, func(ctx context.Context, g Gomega, n string, _ *podcgroup.Reader, _ bool) any {
				pods.release(ctx, g, n)
				p := classPod(e, ns, "oom-"+n, rc.Name, n, corev1.ResourceRequirements{Requests: res("10m", "32Mi"), Limits: res("100m", "32Mi")})
				p.Spec.Containers[0].Args = []string{"alloc", "--mib", "128"}
				mu.Lock()
				created = append(created, p.Name)
				mu.Unlock()
				asked := p.DeepCopy()
				g.Expect(e.Klient.Resources().Create(ctx, p)).To(Succeed())
				// A container admission added without a memory limit leaves
				// the pod without one: gVisor's sentry then lets the
				// container allocate past its own (seen with a sidecar
				// injected; kata and runc kill it). A real finding, noted so
				// its reader knows why.
				var note string
				if d := workload.ResourcesChanged(asked, p); d != "" {
					note = "admission changed the pod: " + d + "; exempt namespaces labelled " + workload.ManagedLabel + "=true from it to check the pod as built"
				}
				// The termination as the kubelet reports it, not the restart
				// after it: gVisor took 18 s more to restart the container here.
				status := e.ExpectTerminated(ctx, verdict.Noted(g, note), ns, p.Name, "OOMKilled")
				return map[string]any{"pod": p.Name, "limit": "32Mi", "allocates": "128Mi", "restartCount": status.RestartCount,
					"state": status.State, "lastTermination": status.LastTerminationState.Terminated}
			}))
		})
	})
}

// describeMechanics holds what RuntimeClass does whatever its handler:
// scheduling merged into pods, an unknown handler's event, and the
// isolation judge's negative control.
func describeMechanics() {
	Describe("RuntimeClass mechanics", Ordered, ContinueOnFailure, Serial, func() {
		var (
			e       *e2e.Env
			handler string
			node    string
		)

		BeforeAll(func(ctx SpecContext) {
			e = *env
			Expect(e.Nodes).NotTo(BeNil(), "suite needs node access")
			classes := e.Config.RuntimeClass.Classes
			Expect(classes).NotTo(BeEmpty(), "no RuntimeClass configured (runtimeClass.classes)")
			// The first class whose handler some node offers: these specs
			// are about RuntimeClass, not about a handler being missing.
			handler = classes[0].Handler
			for _, c := range classes {
				if offering, _ := handlerOffers(ctx, e, c.Handler); len(offering) > 0 {
					handler = c.Handler
					break
				}
			}
			node = firstWorker(ctx, e)
		})

		It("merges the RuntimeClass's nodeSelector and tolerations into the pod and honours them", func(ctx SpecContext) {
			e.SkipInVerify("this spec creates a RuntimeClass (cluster-scoped)")
			target, hostname, taints := taintedNode(ctx, e)
			tolerations := []corev1.Toleration{{Key: "nodeconform.io/sandbox", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
			for _, t := range taints {
				tolerations = append(tolerations, corev1.Toleration{Key: t.Key, Operator: corev1.TolerationOpExists, Effect: t.Effect})
			}
			sched := createRuntimeClass(ctx, e, &nodev1.RuntimeClass{
				ObjectMeta: metav1.ObjectMeta{Name: "nodeconform-sched-" + e.RunID}, Handler: handler,
				Scheduling: &nodev1.Scheduling{NodeSelector: map[string]string{hostnameLabel: hostname}, Tolerations: tolerations},
			})
			ns := e.Namespace(ctx, "rc-scheduling", "baseline")
			p := classPod(e, ns, "placed", sched.Name, "", oneContainer())
			p.Spec.Tolerations = nil // only what the RuntimeClass brings
			got := run(ctx, e, p)
			evidence.Record("placed", map[string]any{"target": target, "targetHostname": hostname, "targetTaints": taints, "nodeName": got.Spec.NodeName,
				"nodeSelector": got.Spec.NodeSelector, "tolerations": got.Spec.Tolerations})
			Expect(got.Spec.NodeSelector).To(HaveKeyWithValue(hostnameLabel, hostname))
			for _, t := range tolerations {
				Expect(got.Spec.Tolerations).To(ContainElement(t))
			}
			Expect(got.Spec.NodeName).To(Equal(target))
			// A class without overhead adds none: the pod's overhead stays
			// unset (upstream's "without PodOverhead").
			Expect(got.Spec.Overhead).To(BeEmpty(), "a RuntimeClass without overhead gave the pod spec.overhead")

			// A pod whose own nodeSelector contradicts the RuntimeClass's is refused.
			other := classPod(e, ns, "conflict", sched.Name, "", oneContainer())
			other.Spec.NodeSelector = map[string]string{hostnameLabel: hostname + "-elsewhere"}
			_, err := dryRun(ctx, e, other)
			Expect(err).To(HaveOccurred(), "a pod contradicting the RuntimeClass nodeSelector was admitted")
			evidence.Record("conflict", err.Error())
			Expect(err.Error()).To(ContainSubstring("conflict"))
		})

		// The node.k8s.io API itself, as upstream's conformance spec reads
		// it: every verb, each read back; the immutable handler is the
		// control (an update changing it must be refused).
		It("serves the RuntimeClass API: create, get, list, watch, patch, update, delete, deletecollection", func(ctx SpecContext) {
			e.SkipInVerify("this spec creates RuntimeClasses (cluster-scoped)")
			rcs := e.Clientset.NodeV1().RuntimeClasses()
			const opsLabel = "nodeconform.io/api-ops"
			sel := metav1.ListOptions{LabelSelector: e2e.RunLabel + "=" + e.RunID + "," + opsLabel + "=true"}
			w, err := rcs.Watch(ctx, sel)
			Expect(err).NotTo(HaveOccurred(), "watch RuntimeClasses")
			defer w.Stop()
			var names []string
			for _, n := range []string{"a", "b", "c"} {
				rc := createRuntimeClass(ctx, e, &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "nodeconform-api-" + n + "-" + e.RunID,
					Labels: map[string]string{opsLabel: "true"}}, Handler: handler})
				names = append(names, rc.Name)
			}
			got, err := rcs.Get(ctx, names[0], metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(got.Handler).To(Equal(handler))
			list, err := rcs.List(ctx, sel)
			Expect(err).NotTo(HaveOccurred())
			Expect(list.Items).To(HaveLen(3), "list by label")
			patched, err := rcs.Patch(ctx, names[0], apitypes.MergePatchType, []byte(`{"metadata":{"annotations":{"nodeconform.io/patched":"true"}}}`), metav1.PatchOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(patched.Annotations).To(HaveKeyWithValue("nodeconform.io/patched", "true"))
			patched.Annotations["nodeconform.io/updated"] = "true"
			updated, err := rcs.Update(ctx, patched, metav1.UpdateOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(updated.Annotations).To(HaveKeyWithValue("nodeconform.io/updated", "true"))
			changed := updated.DeepCopy()
			changed.Handler = handler + "-changed"
			_, err = rcs.Update(ctx, changed, metav1.UpdateOptions{})
			Expect(err).To(HaveOccurred(), "an update changing the handler was accepted: the field must be immutable")
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want Invalid: %v", err)
			evidence.Record("handlerImmutable", err.Error())
			// The watch saw the three creations and the two changes.
			seen := map[watch.EventType]int{}
			deadline := time.After(e.Config.Timeouts.PodReady.Duration)
			for seen[watch.Added] < 3 || seen[watch.Modified] < 2 {
				select {
				case ev, ok := <-w.ResultChan():
					Expect(ok).To(BeTrue(), "the watch ended early (seen %v)", seen)
					seen[ev.Type]++
				case <-deadline:
					Fail(fmt.Sprintf("the watch saw %v, want 3 ADDED and 2 MODIFIED", seen))
				}
			}
			Expect(rcs.Delete(ctx, names[0], metav1.DeleteOptions{})).To(Succeed())
			_, err = rcs.Get(ctx, names[0], metav1.GetOptions{})
			Expect(apierrors.IsNotFound(err)).To(BeTrue(), "RuntimeClass %s after delete: %v", names[0], err)
			Expect(rcs.DeleteCollection(ctx, metav1.DeleteOptions{}, sel)).To(Succeed())
			list, err = rcs.List(ctx, sel)
			Expect(err).NotTo(HaveOccurred())
			Expect(list.Items).To(BeEmpty(), "RuntimeClasses left after deletecollection")
			evidence.Record("watched", seen)
		})

		// The RuntimeClass admission plugin, not the node, must refuse a
		// pod naming a class that does not exist, or no longer does; the
		// same pod naming the class while it exists is the control.
		It("rejects at admission a pod naming a RuntimeClass that does not exist, or was deleted", func(ctx SpecContext) {
			ns := e.Namespace(ctx, "rc-absent", "baseline")
			rejected := func(class string) string {
				GinkgoHelper()
				_, err := dryRun(ctx, e, classPod(e, ns, "absent", class, "", oneContainer()))
				Expect(err).To(HaveOccurred(), "a pod naming the absent RuntimeClass %s was admitted", class)
				Expect(apierrors.IsForbidden(err)).To(BeTrue(), "want Forbidden from admission: %v", err)
				Expect(err.Error()).To(ContainSubstring(fmt.Sprintf("RuntimeClass %q not found", class)))
				return err.Error()
			}
			evidence.Record("neverExisted", rejected("nodeconform-absent-"+e.RunID))
			e.SkipInVerify("the deleted case creates and deletes a RuntimeClass (cluster-scoped)")
			name := "nodeconform-deleted-" + e.RunID
			createRuntimeClass(ctx, e, &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Handler: handler})
			_, err := dryRun(ctx, e, classPod(e, ns, "present", name, "", oneContainer()))
			Expect(err).NotTo(HaveOccurred(), "a pod naming the existing RuntimeClass %s was refused", name)
			Expect(e.Clientset.NodeV1().RuntimeClasses().Delete(ctx, name, metav1.DeleteOptions{})).To(Succeed())
			e.Eventually(ctx, func(ctx context.Context) bool {
				_, err := e.Clientset.NodeV1().RuntimeClasses().Get(ctx, name, metav1.GetOptions{})
				return apierrors.IsNotFound(err)
			}, e.Config.Timeouts.PodReady.Duration).Should(BeTrue(), "RuntimeClass %s still exists after its deletion", name)
			// The admission plugin reads RuntimeClasses from an informer:
			// the deletion reaches it shortly after the API says so.
			var last error
			e.Eventually(ctx, func(ctx context.Context) bool {
				_, last = dryRun(ctx, e, classPod(e, ns, "deleted", name, "", oneContainer()))
				return last != nil
			}, e.Config.Timeouts.PodReady.Duration).Should(BeTrue(), "a pod naming the deleted RuntimeClass %s is still admitted", name)
			evidence.Record("deleted", rejected(name))
		})

		It("fails sandbox creation for an unknown handler with an event naming it", func(ctx SpecContext) {
			e.SkipInVerify("this spec creates a RuntimeClass (cluster-scoped)")
			const missingHandler = "nodeconform-missing"
			missing := createRuntimeClass(ctx, e, &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "nodeconform-missing-" + e.RunID}, Handler: missingHandler})
			ns := e.Namespace(ctx, "rc-missing", "baseline")
			p := classPod(e, ns, "nohandler", missing.Name, node, oneContainer())
			Expect(e.Klient.Resources().Create(ctx, p)).To(Succeed())
			var ev corev1.Event
			e.Eventually(ctx, func(ctx context.Context) bool {
				var ok bool
				ev, ok = rcx.SandboxFailure(workload.Events(ctx, e.Clientset, ns, p.Name), missingHandler)
				return ok
			}, e.Config.Timeouts.SandboxEvent.Duration).Should(BeTrue(), "no FailedCreatePodSandBox event naming %q: %s", missingHandler, workload.Describe(ctx, e.Clientset, ns, p.Name))
			evidence.Record("sandboxFailure", map[string]any{"reason": ev.Reason, "message": ev.Message, "source": ev.Source.Host})
			got, err := e.Clientset.CoreV1().Pods(ns).Get(ctx, p.Name, metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			Expect(got.Status.Phase).To(Equal(corev1.PodPending))
		})

		// The isolation judge must fail a class that is required to be
		// isolated but runs pods on the node's kernel: a RuntimeClass on
		// the node's runc handler (or, where the node reports no "runc",
		// a pod of the default handler), judged as if isolated: true.
		It("fails a runc-backed RuntimeClass required to be isolated (negative control)", Label("negative"), func(ctx SpecContext) {
			e.SkipInVerify("this spec creates a RuntimeClass (cluster-scoped)")
			ns := e.Namespace(ctx, "rc-notisolated", "baseline")
			rd, err := podcgroup.NewReader(ctx, e.Nodes, node)
			Expect(err).NotTo(HaveOccurred())
			className := ""
			n, err := e.Clientset.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			Expect(err).NotTo(HaveOccurred())
			if offered, _ := rcx.Offers(*n, "runc"); offered {
				className = createRuntimeClass(ctx, e, &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "nodeconform-runc-" + e.RunID}, Handler: "runc"}).Name
			}
			iso, ev := isolation(ctx, Default, e, rd, run(ctx, e, classPod(e, ns, "shared", className, node, oneContainer())), node)
			failure, _ := rcx.JudgeIsolation(iso, true)
			evidence.Record("isolation", ev)
			evidence.Record("judged", map[string]any{"runtimeClass": className, "failure": failure})
			Expect(failure).NotTo(BeEmpty(), "the isolation judge passed a pod on %s's runc (%s: %s) as isolated", node, iso.Kind, iso.Evidence)
		})
	})
}

// ensureRuntimeClass returns the RuntimeClass under test. Where it is
// missing: in verify mode the class's specs skip (fail when required); on
// OpenShift a kata class comes from the seed's KataConfig; on kind the
// suite creates it (removed after the run) from the declared class, if a
// node offers its handler; else the specs skip with each node's reason
// (fail when required).
func ensureRuntimeClass(ctx context.Context, e *e2e.Env, cls config.RuntimeClass) *nodev1.RuntimeClass {
	rc, err := e.Clientset.NodeV1().RuntimeClasses().Get(ctx, cls.Name, metav1.GetOptions{})
	if err == nil {
		return rc
	}
	Expect(apierrors.IsNotFound(err)).To(BeTrue(), "get RuntimeClass %s: %v", cls.Name, err)
	missing := func(msg string) {
		if cls.Required {
			Fail(msg + " (the class is required)")
		}
		Skip(msg + "; set required: true on the class to fail instead")
	}
	if e.Mode == "verify" {
		missing(fmt.Sprintf("the cluster has no RuntimeClass %q (a read-only run does not install one)", cls.Name))
	}
	kata, err := openshift.HasKataConfigAPI(e.Clientset.Discovery())
	Expect(err).NotTo(HaveOccurred())
	switch {
	case kata && cls.Handler == "kata":
		installKataConfig(ctx, e)
		rc, err = e.Clientset.NodeV1().RuntimeClasses().Get(ctx, cls.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred(), "the KataConfig is installed but RuntimeClass %s is missing", cls.Name)
		return rc
	case e.Provider == "kind":
		if offering, why := handlerOffers(ctx, e, cls.Handler); len(offering) == 0 {
			missing(fmt.Sprintf("no RuntimeClass %q is installed and no node offers its handler %q, so the suite cannot create it: %s", cls.Name, cls.Handler, why))
		}
		fixture := nodev1.RuntimeClass{}
		if cls.Fixture != "" {
			Expect(yaml.UnmarshalStrict(fixtures.MustRead(cls.Fixture), &fixture)).To(Succeed(), "fixture %s", cls.Fixture)
		}
		want, err := rcx.ParseOverhead(cls.Overhead)
		Expect(err).NotTo(HaveOccurred())
		fixture.Name, fixture.Handler = cls.Name, cls.Handler
		fixture.Overhead = nil
		if len(want) > 0 {
			fixture.Overhead = &nodev1.Overhead{PodFixed: want}
		}
		if cls.NodeSelector != nil {
			if fixture.Scheduling == nil {
				fixture.Scheduling = &nodev1.Scheduling{}
			}
			fixture.Scheduling.NodeSelector = cls.NodeSelector
		}
		return createRuntimeClass(ctx, e, &fixture)
	}
	missing(fmt.Sprintf("the cluster has no RuntimeClass %q and no KataConfig API: install the sandboxed runtime first", cls.Name))
	return nil
}

// handlerOffers lists the nodes whose runtime offers handler (or reports
// no handlers at all, which proves nothing either way), and says for the
// others what they report and, where the node keeps one, why (the node
// image's sandbox check: /run/nodeconform/sandbox/<handler>).
func handlerOffers(ctx context.Context, e *e2e.Env, handler string) (offering []string, why string) {
	list, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	var reasons []string
	for _, n := range list.Items {
		if offered, known := rcx.Offers(n, handler); offered || !known {
			offering = append(offering, n.Name)
			continue
		}
		reasons = append(reasons, fmt.Sprintf("%s offers %v (%s)", n.Name, rcx.HandlerNames(n), nodeSandboxStatus(ctx, e, n.Name, handler)))
	}
	return offering, strings.Join(reasons, "; ")
}

// nodeSandboxStatus is what the node's sandbox check wrote for handler,
// or a sentence saying there is none.
func nodeSandboxStatus(ctx context.Context, e *e2e.Env, node, handler string) string {
	file := "/run/nodeconform/sandbox/" + handler
	r, err := e.Nodes.Host(ctx, node, "cat", file)
	switch {
	case err != nil:
		return "node not readable: " + err.Error()
	case r.ExitCode != 0:
		return "no " + file + " on the node"
	}
	return "node check: " + strings.TrimSpace(r.Stdout)
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
// The limits leave room to spare above the sleeping containers, so that
// the pod cgroup's limit (limits + overhead) never squeezes a sandbox
// whose overhead is declared too small: its cost is measured, not
// OOM-killed.
func twoContainers() []corev1.ResourceRequirements {
	return []corev1.ResourceRequirements{
		{Requests: res("100m", "32Mi"), Limits: res("200m", "128Mi")},
		{Requests: res("50m", "16Mi"), Limits: res("100m", "64Mi")},
	}
}

// kernelFiles name the kernel a pod runs on: isolation compares the
// pod's with the node's.
var kernelFiles = []string{"/proc/sys/kernel/random/boot_id", "/proc/cmdline", "/proc/version"}

// classPod is a probe pod of runtimeClass with one container per resource
// requirement; node "" leaves placement to the scheduler. Its first
// container reports the kernel's identity files as it starts (isolation
// reads them from its log): an exec into a sandbox goes through its shim
// and runtime, which answered none in 75 s under QEMU emulation in CI,
// while the log is read from the node.
func classPod(e *e2e.Env, ns, name, runtimeClass, node string, reqs ...corev1.ResourceRequirements) *corev1.Pod {
	p := workload.ProbePod(workload.ProbePodInput{Namespace: ns, Name: name, Image: e.ProbeImage, Args: workload.ReportArgs(kernelFiles...)})
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
	return classPod(e, ns, name, runtimeClass, node, corev1.ResourceRequirements{Requests: r, Limits: r})
}

// eachNode runs check on every judged node the RuntimeClass's nodeSelector
// admits, with that node's cgroup reader and the kubelet's CFS quota; a
// node whose runtime does not offer the handler fails there.
func eachNode(ctx context.Context, e *e2e.Env, rc *nodev1.RuntimeClass, check func(ctx context.Context, g Gomega, node string, rd *podcgroup.Reader, cfsQuota bool) any) []verdict.Result {
	GinkgoHelper()
	nodes, byName := classNodes(ctx, e, rc)
	Expect(nodes).NotTo(BeEmpty(), "no judged node matches RuntimeClass %s's nodeSelector %v", rc.Name, rcx.Selector(rc))
	return verdict.Each(ctx, verdict.Input{Nodes: nodes, Unreachable: e.Unreachable(), Parallel: e.Config.Nodes.MaxParallel},
		func(ctx context.Context, g Gomega, n string) any {
			// A node the class admits but whose runtime lacks the handler
			// fails every pod of the class scheduled there.
			if offered, known := rcx.Offers(byName[n], rc.Handler); known && !offered {
				verdict.FailNode(fmt.Sprintf("RuntimeClass %s admits node %s, whose runtime does not offer handler %q (it offers %v; %s)",
					rc.Name, n, rc.Handler, rcx.HandlerNames(byName[n]), nodeSandboxStatus(ctx, e, n, rc.Handler)))
			}
			rd, err := podcgroup.NewReader(ctx, e.Nodes, n)
			g.Expect(err).NotTo(HaveOccurred())
			var kc struct {
				CPUCFSQuota *bool `json:"cpuCFSQuota"`
			}
			g.Expect(nodeaccess.KubeletConfig(ctx, e.Clientset, n, &kc)).To(Succeed())
			return check(ctx, g, n, rd, kc.CPUCFSQuota == nil || *kc.CPUCFSQuota)
		})
}

// classNodes are the judged nodes rc's nodeSelector admits (perhaps
// none), and every node by name.
func classNodes(ctx context.Context, e *e2e.Env, rc *nodev1.RuntimeClass) ([]string, map[string]corev1.Node) {
	GinkgoHelper()
	selector := rcx.Selector(rc)
	list, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	byName := map[string]corev1.Node{}
	var nodes []string
	for _, n := range list.Items {
		byName[n.Name] = n
	}
	for _, n := range e.NodeNames() {
		if node, ok := byName[n]; ok && labels.SelectorFromSet(selector).Matches(labels.Set(node.Labels)) {
			nodes = append(nodes, n)
		}
	}
	return nodes, byName
}

// podProcesses are the node's processes in the pod's cgroup, from ps.
func podProcesses(ctx context.Context, g Gomega, e *e2e.Env, node string, p *corev1.Pod) []rcx.Process {
	ps, err := e.Nodes.MustHost(ctx, node, "ps", "-e", "-ww", "-o", "pid=,rss=,cgroup:4096=,args=")
	g.Expect(err).NotTo(HaveOccurred())
	procs := rcx.PodProcesses(ps, string(p.UID))
	g.Expect(procs).NotTo(BeEmpty(), "no process on %s is in pod %s/%s's cgroup: its sandbox runs outside the cgroup that carries the overhead", node, p.Namespace, p.Name)
	return procs
}

// cost is an idle pod's memory on its node: the sandbox's cost.
type cost struct {
	CgroupVersion cg.Version `json:"cgroupVersion"`
	PodCgroup     string     `json:"podCgroup"`
	// WorkingSet is the highest working set sampled (usage minus inactive
	// file pages, as the kubelet counts it), in bytes.
	WorkingSet int64   `json:"workingSetBytes"`
	WorkingMiB float64 `json:"workingSetMiB"`
	Samples    []int64 `json:"samples"`
	// SampledFrom is how long after the pod was seen Ready the first
	// sample was taken; the last is taken runtimeClass.sandboxSettle after.
	SampledFrom string `json:"firstSampleAfterReady"`
	// Processes are the pod cgroup's processes, with their RSS.
	Processes              []rcx.Process `json:"processesInPodCgroup"`
	DeclaredMemoryOverhead int64         `json:"declaredMemoryOverheadBytes"`
}

// sandboxCost samples the pod cgroup's working set of got, Ready at
// ready, once per poll interval until settle after ready (at least once):
// the window runtimeClass.sandboxSettle names, which a shared pod started
// ahead has partly behind it already.
func sandboxCost(ctx context.Context, g Gomega, e *e2e.Env, rd *podcgroup.Reader, got *corev1.Pod, ready time.Time, settle time.Duration) cost {
	podPath, err := rd.PodPath(ctx, got, "memory")
	g.Expect(err).NotTo(HaveOccurred())
	dir := cg.Dir(rd.Version, "memory", podPath)
	usageFile, statFile := cg.MemoryUsageFiles(rd.Version)
	c := cost{CgroupVersion: rd.Version, PodCgroup: dir}
	deadline := ready.Add(settle)
	c.SampledFrom = time.Since(ready).Round(time.Millisecond).String()
	for {
		files, err := rd.ReadFiles(ctx, path.Join(dir, usageFile), path.Join(dir, statFile))
		g.Expect(err).NotTo(HaveOccurred())
		ws, err := cg.WorkingSet(rd.Version, files[path.Join(dir, usageFile)], files[path.Join(dir, statFile)])
		g.Expect(err).NotTo(HaveOccurred(), "pod cgroup %s", dir)
		c.Samples = append(c.Samples, ws)
		if ws > c.WorkingSet {
			c.WorkingSet = ws
		}
		if !time.Now().Before(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			g.Expect(ctx.Err()).NotTo(HaveOccurred())
		case <-time.After(e.Config.Intervals.Poll.Duration):
		}
	}
	c.WorkingMiB = float64(c.WorkingSet) / (1 << 20)
	c.Processes = podProcesses(ctx, g, e, rd.Node, got)
	return c
}

// isolation classifies the running pod got on node from the kernel
// identity both sides report and the node's processes, and returns
// what it read as evidence.
func isolation(ctx context.Context, g Gomega, e *e2e.Env, rd *podcgroup.Reader, got *corev1.Pod, node string) (rcx.Isolation, map[string]any) {
	files := kernelFiles
	var inPod []probeapi.Read
	var onNode map[string]string
	var ps string
	// The pod's report (classPod), the node's files and the node's
	// process list are read at once.
	reads := new(errgroup.Group)
	reads.Go(func() (err error) {
		inPod, err = workload.ReadReport(ctx, e.Clientset, got.Namespace, got.Name, got.Spec.Containers[0].Name, e.Config.Timeouts.PodReady.Duration)
		return err
	})
	reads.Go(func() (err error) { onNode, err = rd.ReadFiles(ctx, files...); return err })
	reads.Go(func() (err error) { ps, err = e.Nodes.MustHost(ctx, node, "ps", "-e", "-o", "args="); return err })
	g.Expect(reads.Wait()).To(Succeed(), "read the kernel's identity in pod %s/%s and on %s", got.Namespace, got.Name, node)
	podFile := map[string]string{}
	for _, r := range inPod {
		podFile[r.Path] = strings.TrimSpace(r.Content)
	}
	pod := rcx.Kernel{BootID: podFile[files[0]], Cmdline: podFile[files[1]], Version: podFile[files[2]]}
	nodeK := rcx.Kernel{BootID: onNode[files[0]], Cmdline: onNode[files[1]], Version: onNode[files[2]]}
	iso := rcx.Classify(pod, nodeK, ps)
	var class string
	if got.Spec.RuntimeClassName != nil {
		class = *got.Spec.RuntimeClassName
	}
	return iso, map[string]any{"pod": pod, "node": nodeK, "nodeName": node, "runtimeClass": class, "isolation": iso}
}

// firstWorker is the first untainted worker by name (else the first node).
func firstWorker(ctx context.Context, e *e2e.Env) string {
	nodes, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	sort.Slice(nodes.Items, func(i, j int) bool { return nodes.Items[i].Name < nodes.Items[j].Name })
	for _, n := range nodes.Items {
		if _, cp := n.Labels["node-role.kubernetes.io/control-plane"]; !cp && len(n.Spec.Taints) == 0 {
			return n.Name
		}
	}
	return nodes.Items[0].Name
}

func containsText(list []string, sub string) bool {
	for _, s := range list {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// underDeclared is the memory overhead of the negative controls' class:
// below even a runc pod at rest (1.4 MiB here).
const underDeclared = "64Ki"

// sharedPods are the pods several specs of a class judge: at most one per
// node, started ahead (start) or by the first spec that needs it, and
// Ready. Asking for
// another pod on a node (the negative controls' after the positives')
// first deletes the node's other pod, whose teardown then overlaps the
// new pod's start (the scheduler places the new one once the old one's
// resources are free); a pod that failed to start is tried again by the
// next spec.
type sharedPods struct {
	e    *e2e.Env
	ns   string
	mu   sync.Mutex
	pods map[string]*corev1.Pod // by node
	// names are every pod name asked for on a node.
	names map[string]map[string]bool
	// ready is when each pod became Ready, by name.
	ready map[string]time.Time
	// started is the pod start created on a node and no get waited for.
	started map[string]string
	// hopeless is why a pod (by node and name) will not start there
	// (workload.IsHopeless): a later spec fails at once, instead of
	// making it again and waiting as long to see the same.
	hopeless map[string]error
}

// readyAt is when the pod named name became Ready, as get saw it.
func (s *sharedPods) readyAt(name string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ready[name]
}

// start creates p on node without waiting for it; get waits for it when
// a spec needs it. Call it before any get on the node.
func (s *sharedPods) start(ctx context.Context, node string, p *corev1.Pod) error {
	s.mu.Lock()
	s.init(node)
	s.names[node][p.Name] = true
	s.mu.Unlock()
	if err := s.e.Klient.Resources().Create(ctx, p); err != nil {
		return fmt.Errorf("create pod %s/%s: %w", p.Namespace, p.Name, err)
	}
	s.mu.Lock()
	s.started[node] = p.Name
	s.mu.Unlock()
	return nil
}

func (s *sharedPods) init(node string) {
	if s.names == nil {
		s.pods, s.names, s.ready, s.started = map[string]*corev1.Pod{}, map[string]map[string]bool{}, map[string]time.Time{}, map[string]string{}
		s.hopeless = map[string]error{}
	}
	if s.names[node] == nil {
		s.names[node] = map[string]bool{}
	}
}

// get returns the running pod named as p on node: the one start created
// (once Ready), or one it starts itself after deleting the node's other
// pod (or none). Callers on different nodes run in parallel.
func (s *sharedPods) get(ctx context.Context, g Gomega, node string, p *corev1.Pod) *corev1.Pod {
	s.mu.Lock()
	s.init(node)
	got := s.pods[node]
	ahead := s.started[node] == p.Name
	// Waited for once: a start that failed is made again below.
	delete(s.started, node)
	s.names[node][p.Name] = true
	hopeless := s.hopeless[node+"/"+p.Name]
	s.mu.Unlock()
	if got != nil && got.Name == p.Name {
		return got
	}
	g.Expect(hopeless).NotTo(HaveOccurred(), "an earlier spec's start of this pod")
	if ahead {
		got, err := workload.WaitReady(ctx, s.e.Clientset, p, s.e.Config.Timeouts.PodReady.Duration)
		s.noteHopeless(node, p.Name, err)
		g.Expect(err).NotTo(HaveOccurred())
		s.mu.Lock()
		s.pods[node], s.ready[got.Name] = got, workload.ReadySince(got, time.Now())
		s.mu.Unlock()
		return got
	}
	s.release(ctx, g, node)
	// Only an earlier instance of this very pod (a start that failed)
	// must be gone before it is created again.
	g.Eventually(ctx, func(ctx context.Context) bool {
		_, err := s.e.Clientset.CoreV1().Pods(s.ns).Get(ctx, p.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err)
	}).WithTimeout(s.e.Config.Timeouts.PodReady.Duration).WithPolling(s.e.Config.Intervals.Poll.Duration).Should(BeTrue(), "pod %s/%s of an earlier start is not gone", s.ns, p.Name)
	got, err := workload.CreateReady(ctx, s.e.Klient, s.e.Clientset, p, s.e.Config.Timeouts.PodReady.Duration)
	s.noteHopeless(node, p.Name, err)
	g.Expect(err).NotTo(HaveOccurred())
	s.mu.Lock()
	s.pods[node], s.ready[got.Name] = got, workload.ReadySince(got, time.Now())
	s.mu.Unlock()
	return got
}

func (s *sharedPods) noteHopeless(node, name string, err error) {
	if workload.IsHopeless(err) {
		s.mu.Lock()
		s.hopeless[node+"/"+name] = err
		s.mu.Unlock()
	}
}

// release deletes every pod asked for on node (forceDelete), so that a
// spec's own sandbox fits there; a later get starts the pod again.
func (s *sharedPods) release(ctx context.Context, g Gomega, node string) {
	s.mu.Lock()
	s.init(node)
	var names []string
	for n := range s.names[node] {
		names = append(names, n)
	}
	delete(s.pods, node)
	delete(s.started, node)
	s.mu.Unlock()
	for _, n := range names {
		g.Expect(forceDelete(ctx, s.e.Clientset, s.ns, n)).To(Succeed())
	}
}

// deleteAll deletes every pod asked for, at once (forceDelete).
func (s *sharedPods) deleteAll(ctx context.Context) {
	s.mu.Lock()
	var names []string
	for _, byName := range s.names {
		for n := range byName {
			names = append(names, n)
		}
	}
	s.mu.Unlock()
	for _, n := range names {
		Expect(forceDelete(ctx, s.e.Clientset, s.ns, n)).To(Succeed())
	}
}

// forceDelete deletes a test pod with grace period 0 (nothing in it to
// save; the kubelet still stops its containers); one already gone is
// not an error.
func forceDelete(ctx context.Context, cs kubernetes.Interface, ns, name string) error {
	err := cs.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete pod %s/%s: %w", ns, name, err)
	}
	return nil
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

// waitNoTerminating waits until no pod on node is being deleted, or sits
// in a namespace being deleted (an earlier spec's, whose pods the
// namespace controller has not reached yet): the scheduler still counts
// such pods, and their going would free CPU in the middle of the
// capacity spec.
func waitNoTerminating(ctx context.Context, e *e2e.Env, node string) {
	start := time.Now()
	var first []string
	defer func() {
		evidence.Record("waitedForTerminating", map[string]any{"pods": first, "for": time.Since(start).Round(time.Millisecond).String()})
	}()
	e.Eventually(ctx, func(ctx context.Context) []string {
		nss, err := e.Clientset.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			return []string{err.Error()}
		}
		going := map[string]bool{}
		for _, n := range nss.Items {
			going[n.Name] = n.DeletionTimestamp != nil
		}
		var out []string
		for _, p := range podsOn(ctx, e, node) {
			if p.DeletionTimestamp != nil || going[p.Namespace] {
				out = append(out, p.Namespace+"/"+p.Name)
			}
		}
		if first == nil {
			first = append([]string{}, out...)
		}
		return out
	}, e.Config.Timeouts.NamespaceDeletion.Duration).Should(BeEmpty(), "pods on %s still going away", node)
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

// nodeFor picks the node a class's single-node specs run on: one the
// RuntimeClass's own scheduling admits (the OpenShift operator restricts
// kata to its nodes, and the kubelet refuses a pinned pod whose merged
// nodeSelector does not match) and whose runtime offers the handler,
// preferring untainted workers, by name.
func nodeFor(ctx context.Context, e *e2e.Env, rc *nodev1.RuntimeClass) string {
	nodes, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	selector := rcx.Selector(rc)
	var workers, all []string
	for _, n := range nodes.Items {
		if !labels.SelectorFromSet(selector).Matches(labels.Set(n.Labels)) {
			continue
		}
		if offered, known := rcx.Offers(n, rc.Handler); known && !offered {
			continue
		}
		all = append(all, n.Name)
		if _, cp := n.Labels["node-role.kubernetes.io/control-plane"]; !cp && len(n.Spec.Taints) == 0 {
			workers = append(workers, n.Name)
		}
	}
	Expect(all).NotTo(BeEmpty(), "no node matches RuntimeClass %s's nodeSelector %v and offers handler %q", rc.Name, selector, rc.Handler)
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
func taintedNode(ctx context.Context, e *e2e.Env) (name, hostname string, taints []corev1.Taint) {
	nodes, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	Expect(err).NotTo(HaveOccurred())
	sort.Slice(nodes.Items, func(i, j int) bool { return nodes.Items[i].Name < nodes.Items[j].Name })
	// A RuntimeClass selects by label: only a node with its hostname label
	// can be its target, and by that label's value, which is not always
	// the node's name.
	var labelled []corev1.Node
	for _, n := range nodes.Items {
		if _, ok := n.Labels[hostnameLabel]; ok {
			labelled = append(labelled, n)
		}
	}
	if len(labelled) == 0 {
		Skip("no node carries the " + hostnameLabel + " label for a RuntimeClass nodeSelector to select it by")
	}
	for _, n := range labelled {
		var taints []corev1.Taint
		for _, t := range n.Spec.Taints {
			if t.Effect == corev1.TaintEffectNoSchedule {
				taints = append(taints, t)
			}
		}
		if len(taints) > 0 && len(taints) == len(n.Spec.Taints) {
			return n.Name, n.Labels[hostnameLabel], taints
		}
	}
	last := labelled[len(labelled)-1]
	return last.Name, last.Labels[hostnameLabel], nil
}
