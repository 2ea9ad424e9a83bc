package encapsulation

import (
	"context"
	"fmt"
	"maps"
	"path"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/nodeconform/nodeconform/framework/e2e"
	enc "github.com/nodeconform/nodeconform/framework/encapsulation"
	"github.com/nodeconform/nodeconform/framework/evidence"
	"github.com/nodeconform/nodeconform/framework/nodeaccess"
	"github.com/nodeconform/nodeconform/framework/nodechange"
	"github.com/nodeconform/nodeconform/framework/openshift"
	"github.com/nodeconform/nodeconform/framework/probeapi"
	"github.com/nodeconform/nodeconform/framework/procfs"
	"github.com/nodeconform/nodeconform/framework/verdict"
	"github.com/nodeconform/nodeconform/framework/workload"
)

// restartTimeout bounds an apply or revert on every node (both restart
// kubelet and the runtime).
var restartTimeout = 2 * e2e.TreeConfig().Timeouts.NodeRestart.Duration

// applyTimeout also covers OpenShift's MachineConfigPool roll-out.
var applyTimeout = max(restartTimeout, e2e.TreeConfig().Timeouts.MachineConfigPool.Duration+time.Minute)

// findmntReads bounds how often `findmnt` and `kubensenter findmnt` are
// read before a difference between them counts.
const findmntReads = 3

var _ = Describe("Mount namespace encapsulation", Ordered, ContinueOnFailure, Serial, Label("encapsulation", "disruptive"), func() {
	var (
		e *e2e.Env
		// nodes are the judged nodes that can be examined; unread maps
		// the others to why.
		nodes  []*enc.Node
		unread = map[string]string{}
		// start is each node's encapsulation as the run found it (on,
		// off, or a broken state): verify mode judges that state, apply
		// mode needs every node off to exercise off, on and off again.
		start = map[string]string{}
		// halfNode is where the half-applied negative control is made (a worker).
		halfNode *enc.Node
		// openshift: encapsulation goes through MachineConfigs, and
		// RHCOS ships kubensenter.
		onOpenShift bool
		kubensenter = enc.KubensenterPath
	)

	// in returns the nodes that started in state.
	in := func(state string) []*enc.Node {
		var out []*enc.Node
		for _, n := range nodes {
			if start[n.Name] == state {
				out = append(out, n)
			}
		}
		return out
	}

	BeforeAll(func(ctx SpecContext) {
		e = *env
		Expect(e.Nodes).NotTo(BeNil(), "suite needs node access")
		for n, why := range e.Unreachable() {
			unread[n] = why
		}
		var err error
		onOpenShift, err = openshift.HasMachineConfigAPI(e.Clientset.Discovery())
		Expect(err).NotTo(HaveOccurred())
		// Apply mode restarts each node's kubelet (MachineConfigs reboot
		// instead): a node where that would hide running pods' volumes
		// is left alone and failed with the reason.
		guardRestart := e.Mode == "apply" && !onOpenShift
		// Each node is examined at once; the results are kept in the
		// order of e.NodeNames, so the choice of halfNode is stable.
		names := e.NodeNames()
		found := make([]*enc.Node, len(names))
		states := make([]string, len(names))
		whyNot := make([]string, len(names))
		workers := make([]bool, len(names))
		var wg sync.WaitGroup
		for i, name := range names {
			if _, bad := unread[name]; bad {
				continue
			}
			wg.Add(1)
			go func() {
				defer GinkgoRecover()
				defer wg.Done()
				n, err := e.Clientset.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					whyNot[i] = err.Error()
					return
				}
				rt, err := enc.RuntimeOf(n)
				if err != nil {
					whyNot[i] = err.Error()
					return
				}
				node := &enc.Node{Name: n.Name, Runtime: rt, Probes: e.Nodes, RestartTimeout: e.Config.Timeouts.NodeRestart.Duration, Journal: e.Journal(), Run: e.RunID}
				r, err := e.Nodes.Host(ctx, n.Name, "test", "-d", "/run/systemd/system")
				if err != nil || r.ExitCode != 0 {
					whyNot[i] = fmt.Sprintf("not managed by systemd (no /run/systemd/system; %v): kubens.service cannot run there", err)
					return
				}
				o, err := node.Observe(ctx)
				if err != nil {
					whyNot[i] = err.Error()
					return
				}
				if guardRestart && enc.Relation(o) == "off" {
					// Remnants of an encapsulation (a namespace still
					// pinned, a unit, a drop-in) while kubelet and the
					// runtime are not in it: the revert would remove
					// what this run did not make.
					rs, err := node.State(ctx)
					if err != nil {
						whyNot[i] = err.Error()
						return
					}
					if left := enc.Remnants(rs); len(left) > 0 {
						whyNot[i] = fmt.Sprintf("kubens encapsulation remnants found before the run (%s) although kubelet and the runtime are not encapsulated: apply mode would remove what it did not make, so it leaves this node alone (remove them, or run --mode verify)", strings.Join(left, ", "))
						return
					}
				}
				if guardRestart {
					risk, err := e.Nodes.KubeletRestartRisk(ctx, n.Name)
					if err != nil {
						risk = err.Error()
					}
					if risk != "" {
						whyNot[i] = risk
						return
					}
				}
				_, cp := n.Labels["node-role.kubernetes.io/control-plane"]
				found[i], states[i], workers[i] = node, enc.Relation(o), !cp
			}()
		}
		wg.Wait()
		for i, name := range names {
			switch {
			case whyNot[i] != "":
				unread[name] = whyNot[i]
			case found[i] != nil:
				start[name] = states[i]
				nodes = append(nodes, found[i])
				if workers[i] && halfNode == nil {
					halfNode = found[i]
				}
			}
		}
		evidence.Record("startState", start)
		Expect(nodes).NotTo(BeEmpty(), "no judged node can be examined: %v", unread)
		if halfNode == nil {
			halfNode = nodes[0]
		}
		if onOpenShift {
			kubensenter = "/usr/bin/kubensenter"
		} else if e.Mode == "verify" {
			// Read-only: use a kubensenter the nodes already have, if any.
			kubensenter = ""
			if r, err := e.Nodes.Host(ctx, nodes[0].Name, "sh", "-c", "command -v kubensenter"); err == nil && r.ExitCode == 0 {
				kubensenter = strings.TrimSpace(r.Stdout)
			}
		}
		if e.Mode == "apply" {
			// Apply mode restores "off"; a node found otherwise would be
			// left different from how it was found: refuse instead.
			var notOff []string
			for _, n := range nodes {
				if start[n.Name] != "off" {
					notOff = append(notOff, fmt.Sprintf("node %s starts with encapsulation %s", n.Name, start[n.Name]))
				}
			}
			if len(notOff) > 0 {
				Fail(fmt.Sprintf("refusing apply mode: it exercises off, on and off again and would not restore these nodes:\n%s\nrun with --mode verify to judge the state as found", strings.Join(notOff, "\n")))
			}
			if !onOpenShift {
				// Removed from every node that got it; an install cut
				// short is undone from its journal entry at the suite's
				// end, as before.
				var mu sync.Mutex
				var installed []*enc.Node
				DeferCleanup(func(ctx SpecContext) {
					forEach(installed, func(n *enc.Node) error { return n.RemoveKubensenter(ctx) })
				})
				errs := eachNode(nodes, func(n *enc.Node) error {
					if err := n.InstallKubensenter(ctx); err != nil {
						return err
					}
					mu.Lock()
					installed = append(installed, n)
					mu.Unlock()
					return nil
				})
				// A node kubensenter could not be installed on is a
				// finding there; the others are judged.
				var kept []*enc.Node
				for i, n := range nodes {
					if errs[i] != nil {
						unread[n.Name] = "installing kubensenter failed: " + errs[i].Error()
						continue
					}
					kept = append(kept, n)
				}
				nodes = kept
				Expect(nodes).NotTo(BeEmpty(), "kubensenter could be installed on no node: %v", unread)
				if _, failed := unread[halfNode.Name]; failed {
					halfNode = nodes[0]
				}
			}
		}
	})

	// checkAll judges every node of subset against want, and every node
	// the suite could not examine as failed.
	checkAll := func(ctx context.Context, want bool, subset []*enc.Node, unread map[string]string) {
		GinkgoHelper()
		names, byName := judged(subset, unread)
		verdict.Expect(fmt.Sprintf("mount namespaces (encapsulation %v)", want), verdict.Each(ctx, verdict.Input{Nodes: names, Unreachable: unread, Parallel: e.Config.Nodes.MaxParallel},
			func(ctx context.Context, g Gomega, name string) any {
				o, err := byName[name].Observe(ctx)
				g.Expect(err).NotTo(HaveOccurred())
				if err := enc.Check(want, o); err != nil {
					verdict.FailNode(strings.TrimPrefix(err.Error(), "node "+name+": "))
				}
				return o
			}))
	}

	// skipUnless skips a spec of the off or on column when no node is in
	// that state in verify mode (apply mode makes every state itself).
	skipUnless := func(state string) []*enc.Node {
		if e.Mode == "apply" {
			return nodes
		}
		subset := in(state)
		if len(subset) == 0 {
			Skip(fmt.Sprintf("verify mode: no node was found with encapsulation %s (found: %v)", state, start))
		}
		return subset
	}

	It("has on each node the encapsulation the profile declares", func(ctx SpecContext) {
		e.ExpectProfile(ctx, "encapsulation")
	})

	It("runs kubelet and the runtime in one mount namespace on every node (never half-encapsulated)", func(ctx SpecContext) {
		var names []string
		for _, n := range nodes {
			names = append(names, n.Name)
		}
		for n := range unread {
			names = append(names, n)
		}
		verdict.Expect("kubelet and runtime together", verdict.Each(ctx, verdict.Input{Nodes: names, Unreachable: unread},
			func(ctx context.Context, g Gomega, n string) any {
				if st := start[n]; st != "on" && st != "off" {
					verdict.FailNode(fmt.Sprintf("encapsulation %s as found: kubelet and the runtime must share one mount namespace", st))
				}
				return start[n]
			}))
	})

	Context("without encapsulation", func() {
		It("runs systemd, kubelet and the runtime in one mount namespace", func(ctx SpecContext) {
			checkAll(ctx, false, skipUnless("off"), unread)
		})

		It("gives the same output for `kubensenter findmnt` and `findmnt`", func(ctx SpecContext) {
			subset := skipUnless("off")
			if kubensenter == "" {
				Skip("verify mode: the nodes have no kubensenter and a read-only run does not install one")
			}
			names, _ := judged(subset, unread)
			verdict.Expect("kubensenter findmnt equals findmnt", verdict.Each(ctx, verdict.Input{Nodes: names, Unreachable: unread, Parallel: e.Config.Nodes.MaxParallel},
				func(ctx context.Context, g Gomega, n string) any {
					// Pods starting or going away on the node (another
					// suite's namespaces being deleted, the operator's own
					// pods) change the table between the two reads: a
					// difference that goes away on a second read is churn,
					// one in another namespace stays. At most findmntReads
					// reads of each.
					var plain string
					var wrapped nodeaccess.HostResult
					for attempt := 1; attempt <= findmntReads; attempt++ {
						var err error
						plain, err = e.Nodes.MustHost(ctx, n, "findmnt", "-rn")
						g.Expect(err).NotTo(HaveOccurred())
						wrapped, err = e.Nodes.Host(ctx, n, kubensenter, "findmnt", "-rn")
						g.Expect(err).NotTo(HaveOccurred())
						g.Expect(wrapped.ExitCode).To(Equal(0), wrapped.Stderr)
						g.Expect(wrapped.Stderr).NotTo(ContainSubstring("namespace found at"), "kubensenter must not find a namespace")
						if wrapped.Stdout == plain {
							return map[string]int{"mounts": strings.Count(plain, "\n"), "reads": attempt}
						}
					}
					verdict.FailNode(fmt.Sprintf("kubensenter findmnt differs from findmnt on each of %d reads: only through kubensenter %q, only in findmnt %q",
						findmntReads, onlyIn(wrapped.Stdout, plain), onlyIn(plain, wrapped.Stdout)))
					return nil
				}))
		})

		It("propagates container mounts as the seeds' matrix shows, a mount made on the node to Bidirectional and HostToContainer containers, none by default", func(ctx SpecContext) {
			// The propagation pod leaves a Bidirectional mount under /run
			// on the node until cleanup: a change to the node.
			e.RequireApply("the mount propagation pod")
			checkMatrix(ctx, e, nodes, unread, kubensenter, false)
		})
	})

	Context("with kubens.service applied", Ordered, func() {
		// encapsulated are the nodes the column judges: all of them once
		// applied, or those found encapsulated in verify mode.
		var encapsulated []*enc.Node
		// canaries are the kubensenter spec's pods, one per node, started
		// as soon as the nodes are encapsulated.
		var canaries map[string]*corev1.Pod
		var canaryNS string
		// colUnread are the nodes the column fails unexamined: the suite's
		// unread ones and those where applying encapsulation failed (a
		// node's failure is its own: the others are still judged).
		var colUnread map[string]string
		startCanaries := func(ctx context.Context) {
			if canaries != nil || kubensenter == "" {
				return
			}
			ns := e.Namespace(ctx, "kubensenter", "baseline")
			canaryNS = ns
			DeferCleanup(func(ctx SpecContext) {
				Expect(workload.DeletePods(ctx, e.Clientset, ns, e.Config.Timeouts.PodReady.Duration)).To(Succeed())
			})
			canaries = map[string]*corev1.Pod{}
			for _, n := range encapsulated {
				canaries[n.Name] = workload.ProbePod(workload.ProbePodInput{Namespace: ns, Name: "canary-" + n.Name, Image: e.ProbeImage, NodeName: n.Name})
				Expect(e.Klient.Resources().Create(ctx, canaries[n.Name])).To(Succeed())
			}
		}
		BeforeAll(func(ctx SpecContext) {
			encapsulated = skipUnless("on")
			colUnread = unread
			if e.Mode == "verify" {
				return // judge the nodes as found
			}
			// Revert is registered first so it runs last, after the
			// pods made while encapsulated are gone.
			if onOpenShift {
				dc, err := dynamic.NewForConfig(e.REST)
				Expect(err).NotTo(HaveOccurred())
				mcp, poll := e.Config.Timeouts.MachineConfigPool.Duration, 10*time.Second
				DeferCleanup(func(ctx SpecContext) {
					Expect(enc.DeleteMachineConfigs(ctx, dc, mcp, poll)).To(Succeed())
				}, NodeTimeout(mcp+time.Minute))
				Expect(enc.ApplyMachineConfigs(ctx, dc, mcp, poll)).To(Succeed())
				startCanaries(ctx)
				return
			}
			DeferCleanup(func(ctx SpecContext) {
				revertAll(ctx, nodes)
			}, NodeTimeout(restartTimeout))
			errs := eachNode(nodes, func(n *enc.Node) error { return n.Apply(ctx, enc.Options{Kubelet: true, Runtime: true}) })
			colUnread = maps.Clone(unread)
			encapsulated = nil
			for i, n := range nodes {
				if errs[i] != nil {
					colUnread[n.Name] = "applying encapsulation failed (the node is reverted at the column's end): " + errs[i].Error()
					continue
				}
				encapsulated = append(encapsulated, n)
			}
			evidence.Record("notExamined", colUnread)
			Expect(encapsulated).NotTo(BeEmpty(), "encapsulation could be applied on no node: %v", colUnread)
			startCanaries(ctx)
		}, NodeTimeout(applyTimeout))

		It("runs kubelet and the runtime in one namespace that is not systemd's", func(ctx SpecContext) {
			checkAll(ctx, true, encapsulated, colUnread)
		})

		It("makes kubensenter autodetect /run/kubens/mnt and show the mounts of new pods, which findmnt does not", func(ctx SpecContext) {
			// Mounts made before encapsulation exist in both namespaces;
			// a pod started now has its volume mounts only in kubelet's.
			if kubensenter == "" {
				Skip("verify mode: the nodes have no kubensenter and a read-only run does not install one")
			}
			// Started with the encapsulation (BeforeAll; in verify mode,
			// here); each node is then judged on its own. They go as the spec
			// ends, while the nodes are still whole: a pod made in the
			// pinned namespace is torn down slowly once the runtime has
			// left it (4 s more here).
			startCanaries(ctx)
			DeferCleanup(func(ctx SpecContext) {
				Expect(e.Clientset.CoreV1().Pods(canaryNS).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})).To(Succeed())
			})
			names, _ := judged(encapsulated, colUnread)
			verdict.Expect("kubensenter shows the pinned namespace", verdict.Each(ctx, verdict.Input{Nodes: names, Unreachable: colUnread, Parallel: e.Config.Nodes.MaxParallel},
				func(ctx context.Context, g Gomega, n string) any {
					pod, err := workload.WaitReady(ctx, e.Clientset, canaries[n], e.Config.Timeouts.PodReady.Duration)
					g.Expect(err).NotTo(HaveOccurred())
					podDir := "/var/lib/kubelet/pods/" + string(pod.UID)
					plain, err := e.Nodes.MustHost(ctx, n, "findmnt", "-rn", "-o", "TARGET")
					g.Expect(err).NotTo(HaveOccurred())
					wrapped, err := e.Nodes.Host(ctx, n, kubensenter, "findmnt", "-rn", "-o", "TARGET")
					g.Expect(err).NotTo(HaveOccurred())
					g.Expect(wrapped.ExitCode).To(Equal(0), wrapped.Stderr)
					g.Expect(wrapped.Stderr).To(ContainSubstring("kubensenter: Autodetect: kubens.service namespace found at /run/kubens/mnt"))
					only := onlyIn(wrapped.Stdout, plain)
					g.Expect(strings.Join(only, "\n")).To(ContainSubstring(podDir), "the volume mounts of pod %s must be visible through kubensenter only", pod.Name)
					g.Expect(plain).NotTo(ContainSubstring(podDir), "findmnt in the host namespace shows pod %s's mounts", pod.Name)
					return map[string]any{"pod": pod.Name, "mountsOnlyInKubens": only}
				}))
		})

		It("hides Bidirectional container mounts from systemd but not from kubelet and the runtime, and still passes mounts made on the node to HostToContainer, none by default", func(ctx SpecContext) {
			e.RequireApply("the mount propagation pod")
			checkMatrix(ctx, e, encapsulated, colUnread, kubensenter, true)
		})

		// The check must fail on the misconfiguration it exists for: kubelet
		// moved into the pinned namespace while the runtime stayed behind.
		// Made from the applied state (the runtime taken back out, one
		// restart) before the column's revert undoes it with the rest.
		Context("with only kubelet encapsulated (a misconfiguration)", Ordered, Label("negative"), func() {
			// half is halfNode, or another encapsulated node when
			// applying failed there.
			var half *enc.Node
			BeforeAll(func(ctx SpecContext) {
				e.RequireApply("a half-applied encapsulation")
				if onOpenShift {
					Skip("MachineConfigs apply encapsulation whole: a half-applied state cannot be made through them")
				}
				half = halfNode
				if _, failed := colUnread[half.Name]; failed {
					if len(encapsulated) == 0 {
						Skip("no node was encapsulated to make the misconfiguration on")
					}
					half = encapsulated[0]
				}
				// Gone already when the kubensenter spec ran (it deletes
				// them); deleted here when it was filtered out.
				if canaryNS != "" {
					Expect(workload.DeletePods(ctx, e.Clientset, canaryNS, e.Config.Timeouts.PodReady.Duration)).To(Succeed())
				}
				Expect(half.Unwrap(ctx, enc.Options{Runtime: true})).To(Succeed())
			}, NodeTimeout(restartTimeout))

			It("is reported as a failure naming the node", func(ctx SpecContext) {
				o, err := half.Observe(ctx)
				Expect(err).NotTo(HaveOccurred())
				evidence.Record("mountNamespaces", o)
				err = enc.Check(true, o)
				Expect(err).To(MatchError(And(ContainSubstring("only one of them"), ContainSubstring(half.Name))))
			})
		})
	})

	It("reverts to the original state", func(ctx SpecContext) {
		e.RequireApply("checking a revert (nothing was applied)")
		// The Context's cleanup has reverted every node by now.
		checkAll(ctx, false, nodes, unread)
		if onOpenShift {
			return // the MachineConfigs are gone and the pools rolled back
		}
		var states []enc.RevertState
		for _, n := range nodes {
			s, err := n.State(ctx)
			Expect(err).NotTo(HaveOccurred())
			states = append(states, s)
			Expect(enc.CheckReverted(s)).To(Succeed())
		}
		evidence.Record("afterRevert", states)
	})
})

// revertAll reverts every node where anything is left, in parallel.
func revertAll(ctx context.Context, nodes []*enc.Node) {
	forEach(nodes, func(n *enc.Node) error {
		s, err := n.State(ctx)
		if err != nil {
			return err
		}
		o, err := n.Observe(ctx)
		if err != nil {
			return err
		}
		if enc.CheckReverted(s) == nil && enc.Check(false, o) == nil {
			return n.Forget(ctx)
		}
		return n.Revert(ctx)
	})
}

func forEach(nodes []*enc.Node, f func(*enc.Node) error) {
	for _, err := range eachNode(nodes, f) {
		Expect(err).NotTo(HaveOccurred())
	}
}

// eachNode runs f on every node in parallel and returns each node's error.
func eachNode(nodes []*enc.Node, f func(*enc.Node) error) []error {
	var wg sync.WaitGroup
	errs := make([]error, len(nodes))
	for i, n := range nodes {
		wg.Add(1)
		go func() {
			defer GinkgoRecover()
			defer wg.Done()
			errs[i] = f(n)
		}()
	}
	wg.Wait()
	return errs
}

func onlyIn(a, b string) []string {
	have := map[string]bool{}
	for _, l := range strings.Split(b, "\n") {
		have[l] = true
	}
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if l != "" && !have[l] {
			out = append(out, l)
		}
	}
	return out
}

// judged names the nodes of subset, then those that could not be
// examined (which fail unexamined), with subset by name.
func judged(subset []*enc.Node, unread map[string]string) ([]string, map[string]*enc.Node) {
	byName := map[string]*enc.Node{}
	var names []string
	for _, n := range subset {
		byName[n.Name] = n
		names = append(names, n.Name)
	}
	for n := range unread {
		names = append(names, n)
	}
	return names, byName
}

// checkMatrix runs the seeds' propagation pod on each of nodes (unread
// ones fail unexamined) and compares who sees which mount with the
// expected matrix: a node's verdict is its own, as a node whose mounts
// are not shared, or whose runtime ignores the propagation a pod asks
// for, breaks the matrix there only.
func checkMatrix(ctx context.Context, e *e2e.Env, nodes []*enc.Node, unread map[string]string, kubensenter string, encapsulated bool) {
	ns := e.Namespace(ctx, "propagation", "privileged")
	hostDir := "/run/nodeconform-propagation/" + ns
	names, byName := judged(nodes, unread)
	// Bidirectional mounts outlive their container: unmount them in
	// whichever namespace holds them, then remove the directory (and its
	// parent once empty). Recorded on each node before its pod exists,
	// undone once every pod is gone (cleanups run last registered first).
	j := e.Journal()
	entry := func(node string) nodechange.Entry {
		return nodechange.Entry{Node: node, Run: e.RunID, Name: "propagation-" + ns,
			Undo: fmt.Sprintf("for m in a b c d %[4]s; do %[2]s umount -R %[1]s/$m 2>/dev/null; umount -R %[1]s/$m 2>/dev/null; done; rm -rf %[1]s; rmdir %[3]s 2>/dev/null; test ! -e %[1]s", hostDir, kubensenter, path.Dir(hostDir), enc.NodeMount)}
	}
	var mu sync.Mutex
	var recorded []*enc.Node
	DeferCleanup(func(ctx SpecContext) {
		forEach(recorded, func(n *enc.Node) error { return j.Undo(ctx, entry(n.Name)) })
	})
	DeferCleanup(func(ctx SpecContext) {
		Expect(workload.DeletePods(ctx, e.Clientset, ns, e.Config.Timeouts.PodReady.Duration)).To(Succeed())
	})
	expected := enc.ExpectedMatrix(encapsulated)
	property := fmt.Sprintf("mount propagation (encapsulated=%v)", encapsulated)
	// A failing node's result carries no evidence (FailNode ends its
	// check): its matrix is kept here and recorded with the spec's.
	failedMatrix := map[string]any{}
	results := verdict.Each(ctx, verdict.Input{Nodes: names, Unreachable: unread, Parallel: e.Config.Nodes.MaxParallel},
		func(ctx context.Context, g Gomega, name string) any {
			node := byName[name]
			g.Expect(j.Record(ctx, entry(name))).To(Succeed())
			mu.Lock()
			recorded = append(recorded, node)
			mu.Unlock()
			pod := propagationPod(ns, e.ProbeImage, name, hostDir)
			_, err := workload.CreateReady(ctx, e.Klient, e.Clientset, pod, e.Config.Timeouts.PodReady.Duration)
			g.Expect(err).NotTo(HaveOccurred(), "the propagation pod")
			observed, pids, err := observeMatrix(ctx, e, node, ns, pod.Name, hostDir)
			g.Expect(err).NotTo(HaveOccurred())
			ev := map[string]any{"encapsulated": encapsulated, "hostDir": hostDir, "observed": observed, "expected": expected, "pids": pids}
			if diff := enc.Compare(expected, observed); len(diff) > 0 {
				mu.Lock()
				failedMatrix[name] = ev
				mu.Unlock()
				verdict.FailNode(strings.Join(diff, "; "))
			}
			return ev
		})
	if len(failedMatrix) > 0 {
		evidence.Record("failedPropagationMatrix", failedMatrix)
	}
	verdict.Expect(property, results)
}

// observeMatrix makes the pod's four container mounts and the node's own
// mount, then reads every observer's mount table. The execs of each step
// are independent of one another and run at once; the steps stay in
// order, every mount made before any table is read. Propagation is done
// by the time mount(2) returns, so nothing waits between them.
func observeMatrix(ctx context.Context, e *e2e.Env, node *enc.Node, ns, pod, hostDir string) (enc.Matrix, map[enc.Observer]int, error) {
	mounts := map[enc.Observer]string{enc.Container1: "a", enc.Container2: "b", enc.Container3: "c", enc.Container4: "d"}
	// Step 1: each container's mount, the node's own mount (made in the
	// host namespace once the pod runs: made before, every container's
	// recursive bind would copy it), and the PIDs whose tables are read.
	nodeDir := hostDir + "/" + enc.NodeMount
	var o enc.NodeNamespaces
	var journald int
	step := new(errgroup.Group)
	for c, m := range mounts {
		step.Go(func() error {
			var r map[string]string
			return workload.ExecJSONIn(ctx, e.Klient, ns, pod, containerName(c), []string{"mount-tmpfs", "/prop/" + m}, &r)
		})
	}
	step.Go(func() error {
		_, err := e.Nodes.MustHost(ctx, node.Name, "sh", "-c", fmt.Sprintf("mkdir -p %[1]s && mount -t tmpfs -o size=1m nodeconform-node %[1]s", nodeDir))
		return err
	})
	step.Go(func() (err error) { o, journald, err = node.ObserveAnd(ctx, "systemd-journal"); return err })
	if err := step.Wait(); err != nil {
		return nil, nil, err
	}
	pids := map[enc.Observer]int{enc.Systemd: 1, enc.HostProc: journald, enc.Kubelet: o.KubeletPID, enc.Runtime: o.RuntimePID}
	for obs, pid := range pids {
		if pid == 0 {
			return nil, nil, fmt.Errorf("no %s process found on %s", obs, node.Name)
		}
	}
	// Step 2: every observer's mount table: the node's four in one read.
	var mu sync.Mutex
	observed := enc.Matrix{"a": {}, "b": {}, "c": {}, "d": {}, enc.NodeMount: {}}
	see := func(obs enc.Observer, table []procfs.Mount, dir string) {
		mu.Lock()
		defer mu.Unlock()
		for k := range observed {
			observed[k][obs] = procfs.HasMountAt(table, dir+"/"+k)
		}
	}
	step = new(errgroup.Group)
	step.Go(func() error {
		tables, err := e.Nodes.MountTables(ctx, node.Name, pids[enc.Systemd], pids[enc.HostProc], pids[enc.Kubelet], pids[enc.Runtime])
		for obs, pid := range pids {
			see(obs, tables[pid], hostDir)
		}
		return err
	})
	for c := range mounts {
		step.Go(func() error {
			var r probeapi.Mounts
			err := workload.ExecJSONIn(ctx, e.Klient, ns, pod, containerName(c), []string{"mounts", "--pid", "self"}, &r)
			see(c, r.Mounts, "/prop")
			return err
		})
	}
	return observed, pids, step.Wait()
}

func containerName(o enc.Observer) string {
	return map[enc.Observer]string{enc.Container1: "c1", enc.Container2: "c2", enc.Container3: "c3", enc.Container4: "c4"}[o]
}

func propagationPod(ns, image, node, hostDir string) *corev1.Pod {
	pod := workload.ProbePod(workload.ProbePodInput{Namespace: ns, Name: "propagation-" + node, Image: image, NodeName: node})
	privileged := true
	hostPathType := corev1.HostPathDirectoryOrCreate
	pod.Spec.Volumes = []corev1.Volume{{Name: "shared", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostDir, Type: &hostPathType}}}}
	base := pod.Spec.Containers[0]
	pod.Spec.Containers = nil
	// c4 names no propagation: the API leaves the field unset and the
	// kubelet's default applies.
	for _, name := range []string{"c1", "c2", "c3", "c4"} {
		mode := map[string]*corev1.MountPropagationMode{
			"c1": ptr(corev1.MountPropagationBidirectional),
			"c2": ptr(corev1.MountPropagationHostToContainer),
			"c3": ptr(corev1.MountPropagationNone),
		}[name]
		c := base
		c.Name = name
		c.SecurityContext = &corev1.SecurityContext{Privileged: &privileged}
		c.VolumeMounts = []corev1.VolumeMount{{Name: "shared", MountPath: "/prop", MountPropagation: mode}}
		pod.Spec.Containers = append(pod.Spec.Containers, c)
	}
	return pod
}

func ptr[T any](v T) *T { return &v }
