// Package nodeaccess reads and changes nodes through nodeconform's probe:
// a privileged, hostPID DaemonSet in a namespace of its own, into which the
// framework execs probe subcommands and gets typed JSON back. It works the
// same on kind and on real clusters, like `oc debug node/<name>`.
package nodeaccess

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/klient"

	"github.com/nodeconform/nodeconform/framework/cost"
	"github.com/nodeconform/nodeconform/framework/probeapi"
	"github.com/nodeconform/nodeconform/framework/procfs"
	"github.com/nodeconform/nodeconform/framework/readonly"
	"github.com/nodeconform/nodeconform/framework/workload"
)

// DaemonSetName is the probe DaemonSet's name.
const DaemonSetName = "nodeconform-probe"

// Input configures Deploy.
type Input struct {
	Clientset kubernetes.Interface
	Klient    klient.Client
	Image     string
	// Labels go on the namespace (run identity, managed marker).
	Labels  map[string]string
	Timeout time.Duration
	// PullSecret is a docker config.json the probe pods pull Image with
	// (workload.GrantPull); nil: the nodes' own credentials, if any.
	PullSecret []byte
	// PullTimeout bounds GrantPull's waits (zero: workload.GrantPullTimeout).
	PullTimeout time.Duration
}

// Probes is a deployed probe DaemonSet.
type Probes struct {
	Namespace string
	// pods maps node name to the probe pod on it; refreshed while other
	// goroutines exec (a revert retrying while a kubelet restarts), so
	// only read and replaced under mu.
	pods map[string]string
	mu   sync.RWMutex
	// ReadyAfter is how long the DaemonSet took to be ready on every node.
	ReadyAfter time.Duration
	// ReadOnly (verify mode) refuses node commands that could change the
	// node; see framework/readonly.
	ReadOnly bool
	// Problems maps a node whose probe never became Ready to why (its
	// pod's state and events): checks on that node fail with it.
	Problems map[string]string
	// stuck tells the not-Ready probe pods that will stay so (broken
	// for workload.DefaultStuckAfter).
	stuck workload.Stuck
	cs    kubernetes.Interface
	kl    klient.Client
	// sessions maps a probe pod to its session (session.go).
	sessions map[string]*slot
	smu      sync.Mutex
	// startFn, when set, makes a session's exec instead of startSession
	// (unit tests).
	startFn func(ctx context.Context, pod string) (*session, error)
}

// Deploy creates the namespace (Pod Security privileged) and the DaemonSet,
// and waits until a probe pod is Ready on every node.
func Deploy(ctx context.Context, in Input) (*Probes, error) {
	p, err := Create(ctx, in)
	if err != nil {
		return p, err
	}
	return p, p.Wait(ctx, in.Timeout)
}

// Wait waits until a probe pod is Ready on every node it was scheduled
// to, or stuck for a reason its node's events name (Problems); an error
// only if it is Ready nowhere.
func (p *Probes) Wait(ctx context.Context, timeout time.Duration) error {
	start := time.Now()
	if err := p.waitReady(ctx, timeout); err != nil {
		return err
	}
	p.ReadyAfter = time.Since(start)
	return nil
}

// Create creates the namespace (Pod Security privileged) and the
// DaemonSet without waiting: a runner's probe, shared by its suites,
// starts while their processes do (each Attaches and Waits).
func Create(ctx context.Context, in Input) (*Probes, error) {
	labels := map[string]string{
		workload.ManagedLabel:                "true",
		"pod-security.kubernetes.io/enforce": "privileged",
		"pod-security.kubernetes.io/audit":   "privileged",
		"pod-security.kubernetes.io/warn":    "privileged",
	}
	for k, v := range in.Labels {
		labels[k] = v
	}
	ns, err := in.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "nodeconform-probe-", Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create probe namespace: %w", err)
	}
	p := &Probes{Namespace: ns.Name, pods: map[string]string{}, cs: in.Clientset, kl: in.Klient}
	if len(in.PullSecret) > 0 {
		if err := workload.GrantPull(ctx, in.Clientset, ns.Name, in.PullSecret, in.PullTimeout); err != nil {
			return p, err
		}
	}
	if _, err := in.Clientset.AppsV1().DaemonSets(ns.Name).Create(ctx, daemonSet(ns.Name, in.Image), metav1.CreateOptions{}); err != nil {
		return p, fmt.Errorf("create probe DaemonSet: %w", err)
	}
	return p, nil
}

// Attach returns the Probes of an already deployed namespace (other Ginkgo
// processes attach to what process 1 deployed).
func Attach(ctx context.Context, cs kubernetes.Interface, kl klient.Client, namespace string) (*Probes, error) {
	p := &Probes{Namespace: namespace, pods: map[string]string{}, cs: cs, kl: kl}
	return p, p.refresh(ctx)
}

func (p *Probes) refresh(ctx context.Context) error {
	pods, err := p.cs.CoreV1().Pods(p.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + DaemonSetName})
	if err != nil {
		return err
	}
	fresh := map[string]string{}
	for _, pod := range pods.Items {
		if pod.DeletionTimestamp == nil && pod.Status.Phase == corev1.PodRunning {
			fresh[pod.Spec.NodeName] = pod.Name
		}
	}
	p.mu.Lock()
	p.pods = fresh
	p.mu.Unlock()
	return nil
}

// PodOn returns the probe pod on node.
func (p *Probes) PodOn(node string) (string, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	pod, ok := p.pods[node]
	return pod, ok
}

// Ready is how many nodes have a probe pod.
func (p *Probes) Ready() int {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return len(p.pods)
}

// probeContainer is the probe DaemonSet's container, named in every exec:
// a cluster that injects a sidecar into every pod (a service mesh, an
// agent) gives the pod a second one, and an exec naming none is refused.
const probeContainer = "probe"

// waitReady waits until the probe is Ready on every node it was scheduled
// to, or until every pod that is not Ready is stuck for a reason its
// node's events name (no sandbox, no image) and every node the DaemonSet
// controller cannot create a pod for has been refused for Stuck's time (an
// admission policy or quota that refuses some nodes' pods): those nodes go
// to Problems and the others are usable. Only a probe Ready nowhere is an
// error.
func (p *Probes) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	// Since when the controller has reported that it cannot create pods:
	// a pod created since restarts it (the controller backs off between
	// attempts, and one may have failed for a moment).
	var refused workload.Lasting
	lastCurrent := int32(-1)
	for {
		ds, err := p.cs.AppsV1().DaemonSets(p.Namespace).Get(ctx, DaemonSetName, metav1.GetOptions{})
		if err == nil {
			s := ds.Status
			last = fmt.Sprintf("%d/%d ready", s.NumberReady, s.DesiredNumberScheduled)
			if s.CurrentNumberScheduled != lastCurrent {
				lastCurrent = s.CurrentNumberScheduled
				refused.Reset()
			}
			var why string
			if s.DesiredNumberScheduled > 0 && s.CurrentNumberScheduled < s.DesiredNumberScheduled {
				why = workload.FailedCreates(workload.Events(ctx, p.cs, p.Namespace, DaemonSetName))
			}
			givenUp := false
			if why == "" {
				refused.Reset()
			} else {
				givenUp = refused.Holds(workload.DefaultStuckAfter)
			}
			// No pod at all while the controller reports that creating
			// them fails (a policy refusing privileged pods, a quota):
			// that will not change by itself.
			if givenUp && s.CurrentNumberScheduled == 0 {
				return fmt.Errorf("probe DaemonSet in %s cannot create its pods (it needs privileged, hostPID pods on every node): %s", p.Namespace, why)
			}
			final := time.Now().After(deadline)
			if s.DesiredNumberScheduled > 0 && (s.UpdatedNumberScheduled == s.DesiredNumberScheduled || givenUp || final) {
				stuck, pending, pods, err := p.classify(ctx, final)
				if err != nil {
					return err
				}
				if givenUp || final {
					waiting, err := p.notCreated(ctx, ds, pods, stuck, why, final)
					if err != nil {
						return err
					}
					pending += waiting
				}
				if pending == 0 && p.Ready()+len(stuck) >= int(s.DesiredNumberScheduled) {
					p.Problems = stuck
					if p.Ready() == 0 {
						return fmt.Errorf("probe DaemonSet in %s ready on no node: %s", p.Namespace, p.describeProblems())
					}
					return nil
				}
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("probe DaemonSet in %s not scheduled within %s (%s): %s", p.Namespace, timeout, last, p.describePods(ctx))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// notCreated accounts for each node the probe DaemonSet targets (every
// Linux node: its pods tolerate every taint) that has no probe pod among
// pods (the DaemonSet's, as classify listed them), and returns how many of them are still to be waited for. The controller's
// events do not name the node (its pods' names are generated), and a
// controller that keeps failing on one node may not have tried the others
// (it creates in doubling batches and stops at a failure), so each such
// node's pod is put to admission as a dry run: a refusal is that node's
// Problem, in admission's own words; a node whose pod admission accepts
// is waited for, until final (the wait's timeout), when it is a Problem
// naming the controller's reports (why).
func (p *Probes) notCreated(ctx context.Context, ds *appsv1.DaemonSet, pods []corev1.Pod, stuck map[string]string, why string, final bool) (int, error) {
	nodes, err := p.cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: corev1.LabelOSStable + "=linux"})
	if err != nil {
		return 0, err
	}
	has := map[string]bool{}
	for _, pod := range pods {
		if pod.DeletionTimestamp == nil {
			has[workload.TargetNode(&pod)] = true
		}
	}
	waiting := 0
	for _, n := range nodes.Items {
		if has[n.Name] {
			continue
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{GenerateName: DaemonSetName + "-", Namespace: p.Namespace,
				Labels: ds.Spec.Template.Labels, Annotations: ds.Spec.Template.Annotations},
			Spec: *ds.Spec.Template.Spec.DeepCopy(),
		}
		workload.PinToNode(pod, n.Name)
		_, err := p.cs.CoreV1().Pods(p.Namespace).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		switch {
		case err == nil && !final:
			waiting++
		case err == nil:
			stuck[n.Name] = "no probe pod made on the node within the wait, though admission accepts it; the DaemonSet controller reports: " + orNothing(why)
		case ctx.Err() != nil:
			return 0, ctx.Err()
		case workload.RBACRefused(err):
			// nodeconform's own account may not dry-run pods there: the
			// controller's reports are all there is to go by.
			stuck[n.Name] = "no probe pod: the DaemonSet controller cannot create it (it needs a privileged, hostPID pod on the node): " + orNothing(why)
		default:
			stuck[n.Name] = "no probe pod: admission refuses it on this node (it needs a privileged, hostPID pod there): " + err.Error()
		}
	}
	return waiting, nil
}

func orNothing(why string) string {
	if why == "" {
		return "nothing"
	}
	return why
}

// classify refreshes the Ready pods and returns, per node, why each probe
// pod that is not Ready is stuck, how many are still starting, and the
// DaemonSet's pods it read; final (the deadline passed) counts every pod
// that is not Ready as stuck.
func (p *Probes) classify(ctx context.Context, final bool) (map[string]string, int, []corev1.Pod, error) {
	if err := p.refreshReady(ctx); err != nil {
		return nil, 0, nil, err
	}
	pods, err := p.cs.CoreV1().Pods(p.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + DaemonSetName})
	if err != nil {
		return nil, 0, nil, err
	}
	stuck := map[string]string{}
	pending := 0
	for _, pod := range pods.Items {
		node := workload.TargetNode(&pod)
		if _, ok := p.PodOn(node); ok || pod.DeletionTimestamp != nil {
			continue
		}
		if p.stuck.Check(ctx, p.cs, &pod) || final {
			stuck[node] = "probe pod " + pod.Name + " not Ready: " + workload.Describe(ctx, p.cs, p.Namespace, pod.Name)
		} else {
			pending++
		}
	}
	return stuck, pending, pods.Items, nil
}

// refreshReady keeps only probe pods that are Running and Ready.
func (p *Probes) refreshReady(ctx context.Context) error {
	if err := p.refresh(ctx); err != nil {
		return err
	}
	pods, err := p.cs.CoreV1().Pods(p.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + DaemonSetName})
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pod := range pods.Items {
		if !workload.IsReady(&pod) {
			delete(p.pods, pod.Spec.NodeName)
		}
	}
	return nil
}

func (p *Probes) describeProblems() string {
	var parts []string
	for _, n := range sortedKeys(p.Problems) {
		parts = append(parts, "node "+n+": "+p.Problems[n])
	}
	return strings.Join(parts, " | ")
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

func (p *Probes) describePods(ctx context.Context) string {
	pods, err := p.cs.CoreV1().Pods(p.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, pod := range pods.Items {
		parts = append(parts, pod.Name+": "+workload.Describe(ctx, p.cs, p.Namespace, pod.Name))
	}
	return strings.Join(parts, " | ")
}

// Nodes returns the node names that have a probe, sorted.
func (p *Probes) Nodes() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return slices.Sorted(maps.Keys(p.pods))
}

// notSentAttempts bounds how often Exec sends a request again that a
// session ended before it reached the probe.
const notSentAttempts = 3

// Exec runs a probe subcommand on node and decodes its JSON into out.
func (p *Probes) Exec(ctx context.Context, node string, args []string, out any) error {
	pod, ok := p.PodOn(node)
	if !ok {
		if err := p.refresh(ctx); err != nil {
			return err
		}
		if pod, ok = p.PodOn(node); !ok {
			return fmt.Errorf("no probe pod on node %s", node)
		}
	}
	var r probeapi.SessionReply
	for attempt := 1; ; attempt++ {
		s, err := p.session(ctx, pod)
		if err != nil {
			return fmt.Errorf("node %s: %w", node, err)
		}
		start := time.Now()
		r, err = s.do(ctx, args)
		cost.Time(cost.PhaseExec, start)
		// A request that never reached the probe did not run: it goes
		// again on the session that replaces the ended one.
		if errors.Is(err, errNotSent) && attempt < notSentAttempts && ctx.Err() == nil {
			continue
		}
		if err != nil {
			return fmt.Errorf("node %s: %w", node, err)
		}
		break
	}
	var runErr error
	switch {
	case r.Error != "":
		runErr = errors.New(r.Error)
	case r.ExitCode != 0:
		runErr = fmt.Errorf("command terminated with exit code %d", r.ExitCode)
	}
	if err := workload.DecodeAnswer(p.Namespace, pod, args, []byte(r.Stdout), []byte(r.Stderr), runErr, out); err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	return nil
}

// HostResult is the outcome of a command run in the node's namespaces.
type HostResult = probeapi.Host

// Host runs a command in the node's namespaces (PID 1's).
func (p *Probes) Host(ctx context.Context, node string, cmd ...string) (HostResult, error) {
	var r HostResult
	if p.ReadOnly {
		if err := readonly.CheckCommand(cmd); err != nil {
			return r, fmt.Errorf("node %s: %w", node, err)
		}
	}
	err := p.Exec(ctx, node, append([]string{"host", "--"}, cmd...), &r)
	return r, err
}

// MustHost is Host that also fails on a non-zero exit, with its output.
func (p *Probes) MustHost(ctx context.Context, node string, cmd ...string) (string, error) {
	r, err := p.Host(ctx, node, cmd...)
	if err != nil {
		return "", err
	}
	if r.ExitCode != 0 {
		return r.Stdout, fmt.Errorf("node %s: %q exited %d: %s%s", node, strings.Join(cmd, " "), r.ExitCode, r.Stdout, r.Stderr)
	}
	return r.Stdout, nil
}

// MustHostRetry is MustHost that retries, for up to retry, while the node
// cannot be reached (its kubelet or runtime restarting cuts the exec path:
// "connection refused", "pod does not exist"); a command that ran and
// failed is not retried. Reverts use it: a revert must not depend on the
// kubelet being up at the moment it starts.
func (p *Probes) MustHostRetry(ctx context.Context, node string, retry time.Duration, cmd ...string) (string, error) {
	r, err := p.HostRetry(ctx, node, retry, cmd...)
	if err != nil {
		return "", err
	}
	if r.ExitCode != 0 {
		return r.Stdout, fmt.Errorf("node %s: %q exited %d: %s%s", node, strings.Join(cmd, " "), r.ExitCode, r.Stdout, r.Stderr)
	}
	return r.Stdout, nil
}

// HostRetry is Host that retries, for up to retry, while the node cannot
// be reached (an error rather than an exit code: the exec path is cut,
// or answers nothing while the runtime restarts).
func (p *Probes) HostRetry(ctx context.Context, node string, retry time.Duration, cmd ...string) (HostResult, error) {
	if p.ReadOnly {
		if err := readonly.CheckCommand(cmd); err != nil {
			return HostResult{}, fmt.Errorf("node %s: %w", node, err)
		}
	}
	deadline := time.Now().Add(retry)
	for {
		r, err := p.Host(ctx, node, cmd...)
		if err == nil {
			return r, nil
		}
		if workload.Refused(err) {
			// Not the node: the API server (RBAC, an admission
			// policy) will refuse every exec, on every node, again.
			return r, fmt.Errorf("%w: %s", err, workload.RefusedAdvice)
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return r, fmt.Errorf("%w (node unreachable for %s)", err, retry)
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(2 * time.Second):
		}
		_ = p.refresh(ctx) // the probe pod may have been recreated
	}
}

// Processes returns the processes of the given names (and PIDs) on node.
func (p *Probes) Processes(ctx context.Context, node string, pids []string, comms []string) ([]procfs.Process, error) {
	args := []string{"ns"}
	for _, x := range pids {
		args = append(args, "--pid", x)
	}
	for _, c := range comms {
		args = append(args, "--comm", c)
	}
	var r probeapi.NS
	err := p.Exec(ctx, node, args, &r)
	return r.Processes, err
}

// MountTables returns the parsed mount tables of processes on node, by
// PID, read in one exec (the probe shares the node's PID namespace, so
// /proc/<pid>/mountinfo is the node process's, paths relative to its root).
func (p *Probes) MountTables(ctx context.Context, node string, pids ...int) (map[int][]procfs.Mount, error) {
	args := []string{"read-all"}
	for _, pid := range pids {
		args = append(args, fmt.Sprintf("/proc/%d/mountinfo", pid))
	}
	var out []probeapi.Read
	if err := p.Exec(ctx, node, args, &out); err != nil {
		return nil, err
	}
	if len(out) != len(pids) {
		return nil, fmt.Errorf("node %s: read %d mount tables, got %d answers", node, len(pids), len(out))
	}
	tables := make(map[int][]procfs.Mount, len(pids))
	for i, pid := range pids {
		m, err := procfs.ParseMountinfo([]byte(out[i].Content))
		if err != nil {
			return nil, fmt.Errorf("node %s: mount table of PID %d: %w", node, pid, err)
		}
		tables[pid] = m
	}
	return tables, nil
}

// probeMemoryLimit bounds the probe on a node. Each Ginkgo process of a
// run keeps a session process there (about 6 MiB each, up to 5 at once
// with the suites side by side) beside the commands they run.
const probeMemoryLimit = "128Mi"

func daemonSet(ns, image string) *appsv1.DaemonSet {
	labels := map[string]string{"app": DaemonSetName, workload.ManagedLabel: "true"}
	privileged := true
	grace := int64(1)
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: DaemonSetName, Namespace: ns, Labels: labels},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": DaemonSetName}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{workload.DefaultContainerAnnotation: probeContainer}},
				Spec: corev1.PodSpec{
					HostPID: true,
					// The probe and every check are Linux's; other nodes
					// are not judged (e2e.SelectNodes).
					NodeSelector:                  map[string]string{corev1.LabelOSStable: "linux"},
					Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
					TerminationGracePeriodSeconds: &grace,
					// No priority class: a critical one (system-node-
					// critical) would have the scheduler and the kubelet
					// evict a production pod from a full node to make
					// room for the probe, and GKE refuses it outside
					// kube-system without a quota for it ("insufficient
					// quota to match these scopes"). A node with no room
					// is a node that cannot be examined (workload.Stuck,
					// after workload.UnschedulableAfter).
					Containers: []corev1.Container{{
						Name:            probeContainer,
						Image:           image,
						ImagePullPolicy: corev1.PullIfNotPresent,
						Args:            []string{"sleep"},
						SecurityContext: &corev1.SecurityContext{Privileged: &privileged},
						Resources: corev1.ResourceRequirements{
							Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("5m"), corev1.ResourceMemory: resource.MustParse("16Mi")},
							Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(probeMemoryLimit)},
						},
					}},
				},
			},
		},
	}
}
