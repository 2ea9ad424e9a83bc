package sysctl

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/yaml"

	"github.com/nodeconform/nodeconform/fixtures"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/evidence"
	"github.com/nodeconform/nodeconform/framework/nodestate"
	"github.com/nodeconform/nodeconform/framework/openshift"
	"github.com/nodeconform/nodeconform/framework/profile"
	sc "github.com/nodeconform/nodeconform/framework/sysctl"
	"github.com/nodeconform/nodeconform/framework/verdict"
	"github.com/nodeconform/nodeconform/framework/workload"
)

// nodeInfo is what the suite learns of each node before deciding outcomes.
type nodeInfo struct {
	Name      string   `json:"name"`
	Allowlist []string `json:"allowedUnsafeSysctls"`
	// Kubelet is the node's kubelet version; KubeletMinor the release
	// whose safe sysctls it accepts (the API server's when unparsable).
	Kubelet      string `json:"kubeletVersion"`
	KubeletMinor int    `json:"kubeletMinor"`
}

var _ = Describe("Pod sysctls", Ordered, ContinueOnFailure, Label("sysctl"), func() {
	var (
		e     *e2e.Env
		nodes []nodeInfo
		minor int
		// unread maps nodes whose allowlist could not be read to why:
		// their cells fail, the other nodes' still run.
		unread = map[string]string{}
		// safe and slash are each node's pod of those specs, started by
		// BeforeAll so that they boot while the matrix runs.
		safe, slash map[string]*started
	)

	BeforeAll(func(ctx SpecContext) {
		e = *env
		Expect(e.Nodes).NotTo(BeNil(), "suite needs node access")
		v, err := e.Clientset.Discovery().ServerVersion()
		Expect(err).NotTo(HaveOccurred())
		minor, err = strconv.Atoi(strings.TrimRight(v.Minor, "+"))
		Expect(err).NotTo(HaveOccurred(), "server minor version %q", v.Minor)
		onOpenShift, err := openshift.HasMachineConfigAPI(e.Clientset.Discovery())
		Expect(err).NotTo(HaveOccurred())
		if onOpenShift && e.Mode == "apply" {
			allowOnOpenShift(ctx, e)
		}
		for node, why := range e.Unreachable() {
			unread[node] = why
		}
		all, err := e.Clientset.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		kubelets := map[string]string{}
		for _, n := range all.Items {
			kubelets[n.Name] = n.Status.NodeInfo.KubeletVersion
		}
		for _, n := range e.NodeNames() {
			if _, bad := unread[n]; bad {
				continue
			}
			k, err := nodestate.ReadKubelet(ctx, e.Clientset, n)
			if err != nil {
				unread[n] = err.Error()
				continue
			}
			// A kubelet older than the API server (the version skew an
			// upgrade passes through) accepts only its own release's
			// safe sysctls.
			km, err := sc.MinorOf(kubelets[n])
			if err != nil {
				km = minor
			}
			nodes = append(nodes, nodeInfo{Name: n, Allowlist: k.AllowedUnsafeSysctls, Kubelet: kubelets[n], KubeletMinor: km})
		}
		// The safe and slash specs' pods are created now, each after its
		// node's values are read, and checked by their specs: a pod start
		// is mostly waiting (on the kubelet, the runtime), so they overlap
		// the matrix's. A node's safe sysctls are those both its kubelet
		// and Pod Security admission (the API server's release) accept.
		safeSysctls := func(n nodeInfo) []corev1.Sysctl {
			var out []corev1.Sysctl
			for _, s := range sc.SafeFor(min(minor, n.KubeletMinor)) {
				out = append(out, corev1.Sysctl{Name: s.Name, Value: s.Value})
			}
			return out
		}
		// A run whose filters select neither spec starts neither pod.
		wantSafe, wantSlash := e2e.Selected(specSafe), e2e.Selected(specSlash)
		var safeNS, slashNS string
		if wantSafe {
			safeNS = e.Namespace(ctx, "sysctl-safe", "baseline")
		}
		if wantSlash {
			slashNS = e.Namespace(ctx, "sysctl-slash", "privileged")
		}
		safe, slash = map[string]*started{}, map[string]*started{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, n := range nodes {
			if !wantSafe && !wantSlash {
				break // neither spec is selected
			}
			var read []corev1.Sysctl
			if wantSlash {
				read = append(read, corev1.Sysctl{Name: slashSysctl})
			}
			if wantSafe {
				read = append(read, safeSysctls(n)...)
			}
			wg.Add(1)
			go func(node string) {
				defer wg.Done()
				// Both pods' node values first, in one exec: each pod
				// sets kernel.shm_rmid_forced in its own IPC namespace,
				// and a runtime that leaked one into the node's must not
				// move the other's "before".
				before, err := nodeValues(ctx, e, node, read)
				sa := &started{ns: safeNS, name: "safe-" + node, node: node, err: err}
				sl := &started{ns: slashNS, name: "slash-" + node, node: node, err: err}
				if err == nil && wantSafe {
					sa = startRun(ctx, e, safeNS, sa.name, node, safeSysctls(n), before)
				}
				if err == nil && wantSlash {
					sl = startSlash(ctx, e, slashNS, sl.name, node, before)
				}
				mu.Lock()
				defer mu.Unlock()
				if wantSafe {
					safe[node] = sa
				}
				if wantSlash {
					slash[node] = sl
				}
			}(n.Name)
		}
		wg.Wait()
	})

	// judge runs a per-node check on the nodes whose allowlist is known;
	// the others fail with why it is not.
	judge := func(ctx context.Context, property string, check verdict.Check) {
		GinkgoHelper()
		verdict.Expect(property, verdict.Each(ctx, verdict.Input{Nodes: e.NodeNames(), Unreachable: unread, Parallel: e.Config.Nodes.MaxParallel}, check))
	}

	It("has on each node the kubelet allowlist the profile declares", func(ctx SpecContext) {
		e.ExpectProfile(ctx, "sysctl")
	})

	It("reads each node's effective kubelet allowlist, within the namespaced groups", func(ctx SpecContext) {
		evidence.Record("allowlists", nodes)
		judge(ctx, "kubelet allowlist within the namespaced groups", func(ctx context.Context, g Gomega, node string) any {
			allow := allowlistOf(nodes, node)
			for _, entry := range allow {
				if !profile.WithinNamespacedGroups(entry) {
					verdict.FailNode(fmt.Sprintf("allowedUnsafeSysctls: %q is outside the namespaced groups %v", entry, sc.UnsafeNamespacedGroups))
				}
			}
			return allow
		})
	})

	It("matches the expected outcome of each sysctl on each node under each Pod Security level", func(ctx SpecContext) {
		nsBy := map[string]string{
			"baseline":   e.Namespace(ctx, "sysctl-baseline", "baseline"),
			"privileged": e.Namespace(ctx, "sysctl-privileged", "privileged"),
		}
		tests := []corev1.Sysctl{{Name: "net.ipv4.ip_local_port_range", Value: "1100 60999"}, {Name: "kernel.msgmax", Value: "65536"}}
		var cells []sc.Cell
		var mu sync.Mutex
		var wg sync.WaitGroup
		i := 0
		for _, s := range tests {
			for _, n := range nodes {
				for _, level := range []string{"baseline", "privileged"} {
					i++
					wg.Add(1)
					go func(i int, s corev1.Sysctl, n nodeInfo, level string) {
						defer GinkgoRecover()
						defer wg.Done()
						c := sc.Cell{Sysctl: s.Name, Node: n.Name, PodSecurity: level, Expected: sc.Expect(s.Name, minor, n.KubeletMinor, n.Allowlist, level)}
						c.Observed, c.Detail = observe(ctx, e, nsBy[level], fmt.Sprintf("cell-%d", i), n.Name, s)
						mu.Lock()
						cells = append(cells, c)
						mu.Unlock()
					}(i, s, n, level)
				}
			}
		}
		wg.Wait()
		for node, why := range unread {
			cells = append(cells, sc.Cell{Sysctl: "*", Node: node, PodSecurity: "*", Expected: "examined", Observed: "unreachable", Detail: why})
		}
		sort.Slice(cells, func(i, j int) bool {
			a, b := cells[i], cells[j]
			return a.Sysctl+a.Node+a.PodSecurity < b.Sysctl+b.Node+b.PodSecurity
		})
		table := sc.Table(cells)
		GinkgoWriter.Println(table)
		evidence.Record("matrix", cells)
		evidence.Record("nodes", matrixByNode(cells))
		if bad := sc.Mismatches(cells); len(bad) > 0 {
			Fail(fmt.Sprintf("outcome matrix: %d of %d cells differ\n%s\n\n%s", len(bad), len(cells), strings.Join(bad, "\n"), table))
		}
		// The matrix is only meaningful if it contains every outcome.
		seen := map[sc.Outcome]bool{}
		for _, c := range cells {
			seen[c.Observed] = true
		}
		for _, o := range []sc.Outcome{sc.Runs, sc.RejectedAtAdmission, sc.Forbidden} {
			if !seen[o] {
				GinkgoWriter.Printf("note: no cell had outcome %s on this cluster\n", o)
			}
		}
	})

	It(specSafe, func(ctx SpecContext) {
		judge(ctx, "every safe sysctl set in the pod, not on the node", func(ctx context.Context, g Gomega, node string) any {
			return checkStarted(ctx, g, e, safe[node])
		})
	})

	It("applies a multi-value unsafe sysctl (kernel.sem, the seed's value) on a node that allowlists it", func(ctx SpecContext) {
		node := nodeAllowing(nodes, "kernel.sem")
		if node == "" {
			Skip("no node allowlists kernel.sem")
		}
		ns := e.Namespace(ctx, "sysctl-unsafe", "privileged")
		evidence.Record("sysctls/"+node, checkRuns(ctx, Default, e, ns, "sem", node, []corev1.Sysctl{{Name: "kernel.sem", Value: "32000  1024000000  10000  32000"}, {Name: "kernel.msgmax", Value: "65536"}}))
	})

	// sysctl(8)'s other notation: the kubelet and runtime must translate
	// kernel/shm_rmid_forced to its file. The requested value is the
	// opposite of the node's, so a runtime that skipped it fails.
	It(specSlash, func(ctx SpecContext) {
		judge(ctx, "a slash-separated sysctl name applied in the pod", func(ctx context.Context, g Gomega, node string) any {
			return checkStarted(ctx, g, e, slash[node])
		})
	})

	// API validation (not the kubelet) refuses malformed names; the valid
	// names in the same pod must not be named, and the pod without the
	// malformed ones must be accepted, or the rejection proves nothing.
	It("rejects malformed sysctl names at validation, naming each, and accepts the well-formed ones", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "sysctl-invalid", "privileged")
		valid := []corev1.Sysctl{{Name: "kernel.shm_rmid_forced", Value: "1"}, {Name: "kernel/shmmax", Value: "100000000"}, {Name: "safe-and-unsafe", Value: "1"}}
		invalid := []corev1.Sysctl{{Name: "foo-", Value: "bar"}, {Name: "bar..", Value: "42"}, {Name: "kernel.", Value: "1"}}
		dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
		_, err := e.Clientset.CoreV1().Pods(ns).Create(ctx, podWithSysctls(ns, "invalid", e.ProbeImage, "", append(append([]corev1.Sysctl(nil), valid...), invalid...)), dry)
		evidence.Record("validation", fmt.Sprint(err))
		Expect(err).To(HaveOccurred(), "the API server accepted malformed sysctl names")
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want an Invalid error: %v", err)
		for _, s := range invalid {
			Expect(err.Error()).To(ContainSubstring(fmt.Sprintf("Invalid value: %q", s.Name)), "malformed name %q not named", s.Name)
		}
		for _, s := range valid {
			Expect(err.Error()).NotTo(ContainSubstring(fmt.Sprintf("%q", s.Name)), "well-formed name %q named as invalid", s.Name)
		}
		_, err = e.Clientset.CoreV1().Pods(ns).Create(ctx, podWithSysctls(ns, "valid", e.ProbeImage, "", valid), dry)
		Expect(err).NotTo(HaveOccurred(), "the pod with only well-formed sysctl names was refused")
	})

	It("does not start a pod whose sysctl the kernel does not have, naming the missing /proc/sys file", func(ctx SpecContext) {
		const missing = "net.ipv4.nodeconform_missing"
		node := nodeAllowing(nodes, missing)
		if node == "" {
			Skip("no node allowlists net.*: the kubelet would forbid the sysctl before the kernel is asked")
		}
		ns := e.Namespace(ctx, "sysctl-missing", "privileged")
		pod := podWithSysctls(ns, "missing", e.ProbeImage, node, []corev1.Sysctl{{Name: missing, Value: "1"}})
		_, err := e.Clientset.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		var msg string
		// An event list the API refuses is not an event: it passed as one
		// until 2026-12-07 (the error's text was the awaited string).
		var listErr error
		e.Eventually(ctx, func(ctx context.Context) string {
			ev, err := e.Clientset.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + pod.Name})
			if listErr = err; err != nil {
				return ""
			}
			for _, x := range ev.Items {
				if sc.NamesMissingFile(x.Message, missing) {
					msg = x.Reason + ": " + x.Message
				}
			}
			return msg
		}, e.Config.Timeouts.PodReady.Duration).ShouldNot(BeEmpty(), func() string {
			return fmt.Sprintf("no event says that %s does not exist (last event list error: %v)", sc.ProcPath(missing), listErr)
		})
		got, err := e.Clientset.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		Expect(err).NotTo(HaveOccurred())
		evidence.Record("missingSysctl", map[string]string{"event": msg, "phase": string(got.Status.Phase)})
		Expect(got.Status.Phase).To(Equal(corev1.PodPending), "the pod must never run")
	})

	It("carries sysctls from Deployment, StatefulSet and DaemonSet templates to their pods", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "sysctl-workloads", "baseline")
		want := corev1.Sysctl{Name: "net.ipv4.ip_local_port_range", Value: "1100 60999"}
		tmpl := podWithSysctls(ns, "", e.ProbeImage, "", []corev1.Sysctl{want})
		// Only on the judged nodes that can be examined: a DaemonSet pod
		// on a broken or unselected node would never be Ready. By node
		// name (a field), not the hostname label, whose value may differ;
		// a field selector takes one value, so one term (ORed) per node.
		var terms []corev1.NodeSelectorTerm
		for _, n := range nodes {
			terms = append(terms, corev1.NodeSelectorTerm{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{n.Name}}}})
		}
		tmpl.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: terms}}}
		labels := map[string]string{"app": "sysctl-workload", workload.ManagedLabel: "true"}
		tmpl.Labels = labels
		spec := corev1.PodTemplateSpec{ObjectMeta: tmpl.ObjectMeta, Spec: tmpl.Spec}
		one := int32(1)
		sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": "sysctl-workload"}}
		apps := e.Clientset.AppsV1()
		_, err := apps.Deployments(ns).Create(ctx, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "deploy"}, Spec: appsv1.DeploymentSpec{Replicas: &one, Selector: sel, Template: withKind(spec, "deployment")}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = apps.StatefulSets(ns).Create(ctx, &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Name: "sts"}, Spec: appsv1.StatefulSetSpec{Replicas: &one, ServiceName: "sts", Selector: sel, Template: withKind(spec, "statefulset")}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		_, err = apps.DaemonSets(ns).Create(ctx, &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "ds"}, Spec: appsv1.DaemonSetSpec{Selector: sel, Template: withKind(spec, "daemonset")}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		wantPods := 2 + len(nodes)
		var pods []corev1.Pod
		e.Eventually(ctx, func(ctx context.Context) (int, error) {
			list, err := e.Clientset.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if err != nil {
				return 0, err
			}
			pods = pods[:0]
			for _, p := range list.Items {
				if workload.IsReady(&p) {
					pods = append(pods, p)
				}
			}
			return len(pods), nil
		}, e.Config.Timeouts.PodReady.Duration).Should(Equal(wantPods), "Ready pods of the three workloads")
		// Every pod is read before judging: a runtime that drops sysctls on
		// one node pool fails only the pods placed there, named with it.
		seen := map[string]map[string]string{}
		kinds := map[string]bool{}
		var wrong []string
		for _, p := range pods {
			kind := p.Labels["nodeconform.io/kind"]
			got := readInPod(ctx, Default, e, ns, p.Name, want.Name)
			seen[p.Name] = map[string]string{"kind": kind, "node": p.Spec.NodeName, "value": got}
			kinds[kind] = true
			if got != sc.NormalizeValue(want.Value) {
				wrong = append(wrong, fmt.Sprintf("%s pod %s on node %s: %s=%q, the template asks %q", kind, p.Name, p.Spec.NodeName, want.Name, got, want.Value))
			}
		}
		evidence.Record("workloadPods", seen)
		if len(wrong) > 0 {
			Fail(strings.Join(wrong, "; "))
		}
		Expect(kinds).To(HaveLen(3))
	})

	It("rejects the seed's manifest with the typo `valule` under strict field validation, naming the field", func(ctx SpecContext) {
		ns := e.Namespace(ctx, "sysctl-typo", "privileged")
		var obj map[string]any
		Expect(yaml.Unmarshal(fixtures.MustRead("sysctl/seed-typo-pod.yaml"), &obj)).To(Succeed())
		u := &unstructured.Unstructured{Object: obj}
		dc, err := dynamic.NewForConfig(e.REST)
		Expect(err).NotTo(HaveOccurred())
		_, err = dc.Resource(schema.GroupVersionResource{Version: "v1", Resource: "pods"}).Namespace(ns).Create(ctx, u,
			metav1.CreateOptions{FieldValidation: metav1.FieldValidationStrict, DryRun: []string{metav1.DryRunAll}})
		evidence.Record("strictValidation", fmt.Sprint(err))
		Expect(err).To(HaveOccurred(), "the API server accepted an unknown field")
		Expect(apierrors.IsBadRequest(err)).To(BeTrue(), "%v", err)
		Expect(err.Error()).To(ContainSubstring(`unknown field "spec.securityContext.sysctls[0].valule"`))
	})
})

func allowlistOf(nodes []nodeInfo, name string) []string {
	for _, n := range nodes {
		if n.Name == name {
			return n.Allowlist
		}
	}
	return nil
}

func nodeAllowing(nodes []nodeInfo, name string) string {
	for _, n := range nodes {
		if sc.Allowed(n.Allowlist, name) {
			return n.Name
		}
	}
	return ""
}

// podWithSysctls is a probe pod setting sysctls that reads each one's
// /proc/sys file as it starts (readAllInPod reads its report).
func podWithSysctls(ns, name, image, node string, sysctls []corev1.Sysctl) *corev1.Pod {
	var paths []string
	for _, s := range sysctls {
		paths = append(paths, sc.ProcPath(s.Name))
	}
	pod := workload.ProbePod(workload.ProbePodInput{Namespace: ns, Name: name, Image: image, NodeName: node, Args: workload.ReportArgs(paths...)})
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: sysctls}
	// Baseline Pod Security accepts the probe as it is; keep it so.
	pod.Spec.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	return pod
}

func withKind(t corev1.PodTemplateSpec, kind string) corev1.PodTemplateSpec {
	t = *t.DeepCopy()
	t.Labels["nodeconform.io/kind"] = kind
	return t
}

func readInPod(ctx context.Context, g Gomega, e *e2e.Env, ns, pod, name string) string {
	return readAllInPod(ctx, g, e, ns, pod, []corev1.Sysctl{{Name: name}})[name]
}

// started is a pod with sysctls created on node (startRun) and the
// node's values of them read just before; err is why either failed.
type started struct {
	ns, name, node string
	pod            *corev1.Pod
	sysctls        []corev1.Sysctl
	before         map[string]string
	err            error
}

// startRun reads node's values of sysctls (unless before holds them,
// read just now) and creates a pod setting them there, without waiting
// for it (checkStarted does).
func startRun(ctx context.Context, e *e2e.Env, ns, name, node string, sysctls []corev1.Sysctl, before map[string]string) *started {
	s := &started{ns: ns, name: name, node: node, sysctls: sysctls, before: before}
	if s.before == nil {
		if s.before, s.err = nodeValues(ctx, e, node, sysctls); s.err != nil {
			return s
		}
	}
	s.pod = podWithSysctls(ns, name, e.ProbeImage, node, sysctls)
	if err := e.Klient.Resources().Create(ctx, s.pod); err != nil {
		s.err = fmt.Errorf("create pod %s/%s: %w", ns, name, err)
	}
	return s
}

// startSlash starts the slash spec's pod on node: sysctl(8)'s other
// notation, kernel/shm_rmid_forced, set to the opposite of the node's
// value, so that a runtime that skipped it fails.
func startSlash(ctx context.Context, e *e2e.Env, ns, name, node string, before map[string]string) *started {
	value := "1"
	if before[slashSysctl] == "1" {
		value = "0"
	}
	return startRun(ctx, e, ns, name, node, []corev1.Sysctl{{Name: slashSysctl, Value: value}}, before)
}

// The specs whose pods BeforeAll starts ahead.
const (
	specSafe  = "accepts every safe sysctl of the release on every node, set in the pod and not on the node"
	specSlash = "applies a sysctl named with slashes (kernel/shm_rmid_forced) on every node"
)

// slashSysctl is the slash spec's sysctl, in sysctl(8)'s other notation.
const slashSysctl = "kernel/shm_rmid_forced"

// checkRuns runs a pod with sysctls on node and proves each value is set
// inside the pod while the node's own value did not change; it returns
// what it read.
func checkRuns(ctx context.Context, g Gomega, e *e2e.Env, ns, name, node string, sysctls []corev1.Sysctl) any {
	return checkStarted(ctx, g, e, startRun(ctx, e, ns, name, node, sysctls, nil))
}

// checkStarted waits for a started pod and proves each value is set
// inside it while the node's own value did not change; it returns what
// it read.
func checkStarted(ctx context.Context, g Gomega, e *e2e.Env, s *started) any {
	g.Expect(s).NotTo(BeNil(), "no pod was started on this node")
	g.Expect(s.err).NotTo(HaveOccurred(), "start of pod %s/%s on %s", s.ns, s.name, s.node)
	_, err := workload.WaitReady(ctx, e.Clientset, s.pod, e.Config.Timeouts.PodReady.Duration)
	g.Expect(err).NotTo(HaveOccurred())
	inPod := readAllInPod(ctx, g, e, s.ns, s.name, s.sysctls)
	after, err := nodeValues(ctx, e, s.node, s.sysctls)
	g.Expect(err).NotTo(HaveOccurred())
	type row struct{ Requested, InPod, NodeBefore, NodeAfter string }
	rows := map[string]row{}
	for _, sy := range s.sysctls {
		r := row{Requested: sc.NormalizeValue(sy.Value), InPod: inPod[sy.Name], NodeBefore: s.before[sy.Name], NodeAfter: after[sy.Name]}
		rows[sy.Name] = r
		g.Expect(r.InPod).To(Equal(r.Requested), "%s inside pod %s", sy.Name, s.name)
		g.Expect(r.NodeAfter).To(Equal(r.NodeBefore), "%s on the node changed: not namespaced?", sy.Name)
	}
	return rows
}

// readAllInPod returns each sysctl's /proc/sys file as the pod read it
// inside its own namespaces when it started (podWithSysctls), from its
// log: the kubelet applies pod sysctls before the container starts, and
// nothing in the pod changes them.
func readAllInPod(ctx context.Context, g Gomega, e *e2e.Env, ns, pod string, sysctls []corev1.Sysctl) map[string]string {
	rs, err := workload.ReadReport(ctx, e.Clientset, ns, pod, "", e.Config.Timeouts.PodReady.Duration)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rs).To(HaveLen(len(sysctls)), "pod %s answered %d of %d reads", pod, len(rs), len(sysctls))
	out := map[string]string{}
	for i, s := range sysctls {
		g.Expect(rs[i].Path).To(Equal(sc.ProcPath(s.Name)))
		out[s.Name] = sc.NormalizeValue(rs[i].Content)
	}
	return out
}

// nodeValues reads each sysctl's /proc/sys file on the node, all in one
// exec (one-line files: grep prints "path:value" for each).
func nodeValues(ctx context.Context, e *e2e.Env, node string, sysctls []corev1.Sysctl) (map[string]string, error) {
	// Each file once: two names of one file (kernel.shm_rmid_forced,
	// kernel/shm_rmid_forced) would print its line twice.
	args := []string{"grep", "-H", ""}
	for _, s := range sysctls {
		if !slices.Contains(args, sc.ProcPath(s.Name)) {
			args = append(args, sc.ProcPath(s.Name))
		}
	}
	text, err := e.Nodes.MustHost(ctx, node, args...)
	if err != nil {
		return nil, fmt.Errorf("read %d sysctls on %s: %w", len(sysctls), node, err)
	}
	out := map[string]string{}
	for _, s := range sysctls {
		prefix := sc.ProcPath(s.Name) + ":"
		var lines []string
		for _, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, prefix) {
				lines = append(lines, strings.TrimPrefix(line, prefix))
			}
		}
		if len(lines) == 0 {
			return nil, fmt.Errorf("%s not read on %s: %q", sc.ProcPath(s.Name), node, text)
		}
		out[s.Name] = sc.NormalizeValue(strings.Join(lines, "\n"))
	}
	return out, nil
}

// observe creates one pod and classifies what happened to it.
func observe(ctx context.Context, e *e2e.Env, ns, name, node string, s corev1.Sysctl) (sc.Outcome, string) {
	pod := podWithSysctls(ns, name, e.ProbeImage, node, []corev1.Sysctl{s})
	_, err := e.Clientset.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "PodSecurity") {
			return sc.RejectedAtAdmission, err.Error()
		}
		return "create-error", err.Error()
	}
	// Watched, not polled: the matrix's cells are decided as the kubelet
	// decides them.
	p, err := workload.WaitPod(ctx, e.Clientset, ns, name, e.Config.Timeouts.PodReady.Duration, func(p *corev1.Pod) (bool, error) {
		return p.Status.Reason == "SysctlForbidden" || p.Status.Phase == corev1.PodFailed || workload.IsReady(p), nil
	})
	switch {
	case err != nil:
		return "pending", fmt.Sprintf("%v: %s", err, workload.Describe(ctx, e.Clientset, ns, name))
	case p.Status.Reason == "SysctlForbidden":
		if !strings.Contains(p.Status.Message, "forbidden sysctl") || !strings.Contains(p.Status.Message, "not allowlisted") {
			return "forbidden-unexpected-message", p.Status.Message
		}
		return sc.Forbidden, p.Status.Message
	case p.Status.Phase == corev1.PodFailed:
		return "failed", workload.Describe(ctx, e.Clientset, ns, name)
	}
	got := readInPod(ctx, Default, e, ns, name, s.Name)
	if got != sc.NormalizeValue(s.Value) {
		return "runs-wrong-value", fmt.Sprintf("%s=%q in the pod, requested %q", s.Name, got, s.Value)
	}
	return sc.Runs, fmt.Sprintf("%s=%s in the pod", s.Name, got)
}

// allowOnOpenShift applies the seed's OpenShift configuration: label the
// worker MachineConfigPool custom-kubelet=sysctl and create the
// KubeletConfig allowlisting kernel.msgmax and kernel.msgmnb, then wait for
// the pools; all of it is undone after the suite. Written for OpenShift,
// not run on kind.
func allowOnOpenShift(ctx context.Context, e *e2e.Env) {
	dc, err := dynamic.NewForConfig(e.REST)
	Expect(err).NotTo(HaveOccurred())
	timeout, poll := e.Config.Timeouts.MachineConfigPool.Duration, 10*time.Second
	DeferCleanup(func(ctx SpecContext) {
		Expect(openshift.DeleteIgnoringAbsent(ctx, dc, openshift.KubeletConfigGVR, "custom-kubelet")).To(Succeed())
		Expect(openshift.LabelPool(ctx, dc, "worker", "custom-kubelet", "")).To(Succeed())
		Expect(openshift.WaitPoolsUpdated(ctx, dc, timeout, poll)).To(Succeed())
	}, NodeTimeout(timeout+time.Minute))
	Expect(openshift.LabelPool(ctx, dc, "worker", "custom-kubelet", "sysctl")).To(Succeed())
	_, err = openshift.ApplyYAML(ctx, dc, openshift.KubeletConfigGVR, fixtures.MustRead("sysctl/kubeletconfig-custom-kubelet.yaml"))
	Expect(err).NotTo(HaveOccurred())
	Expect(openshift.WaitPoolsUpdated(ctx, dc, timeout, poll)).To(Succeed())
}

// matrixByNode is the outcome matrix as one result per node (failed when
// any of its cells differs), so that the run's per-node tally and
// `diff` count this spec on each node as they count the others.
func matrixByNode(cells []sc.Cell) []verdict.Result {
	var out []verdict.Result
	index := map[string]int{}
	for _, c := range cells {
		i, ok := index[c.Node]
		if !ok {
			i = len(out)
			index[c.Node] = i
			out = append(out, verdict.Result{Node: c.Node, State: verdict.Passed})
		}
		if m := c.Mismatch(); m != "" {
			r := &out[i]
			r.State = verdict.Failed
			if r.Finding != "" {
				r.Finding += "; "
			}
			r.Finding += m
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node < out[j].Node })
	return out
}
