// Package workload creates the namespaces and probe pods specs run in, and
// runs probe subcommands inside pods, decoding their JSON answers.
package workload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/klient"

	"github.com/nodeconform/nodeconform/framework/cost"
	"github.com/nodeconform/nodeconform/framework/probeapi"
)

// ManagedLabel marks every object nodeconform creates, so leftovers of an
// interrupted run can be found and removed.
const ManagedLabel = "nodeconform.io/managed"

// NamespaceInput configures CreateNamespace.
type NamespaceInput struct {
	Clientset kubernetes.Interface
	// Prefix of the generated name, e.g. the suite name.
	Prefix string
	// PodSecurity is the Pod Security Admission level the namespace
	// enforces, audits and warns at (privileged, baseline, restricted).
	// Required: a cluster-wide default (the PodSecurity admission
	// configuration's, often restricted in production) must not decide
	// which of a suite's pods exist, nor flood its output with warnings.
	PodSecurity string
	// Labels are added to the namespace.
	Labels map[string]string
	// PullSecret is a docker config.json the namespace's pods pull with
	// (GrantPull); nil: the nodes' own credentials, if any.
	PullSecret []byte
	// PullTimeout bounds GrantPull's waits (zero: GrantPullTimeout).
	PullTimeout time.Duration
}

// CreateNamespace creates a uniquely named namespace labelled as ours.
func CreateNamespace(ctx context.Context, in NamespaceInput) (*corev1.Namespace, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		GenerateName: "nodeconform-" + in.Prefix + "-",
		Labels:       map[string]string{ManagedLabel: "true"},
	}}
	for k, v := range in.Labels {
		ns.Labels[k] = v
	}
	if in.PodSecurity == "" {
		return nil, fmt.Errorf("namespace %s…: no Pod Security level given", ns.GenerateName)
	}
	for _, mode := range []string{"enforce", "audit", "warn"} {
		ns.Labels["pod-security.kubernetes.io/"+mode] = in.PodSecurity
	}
	created, err := in.Clientset.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil || len(in.PullSecret) == 0 {
		return created, err
	}
	if err := GrantPull(ctx, in.Clientset, created.Name, in.PullSecret, in.PullTimeout); err != nil {
		_, _ = StartNamespaceDeletion(context.WithoutCancel(ctx), in.Clientset, created.Name)
		return nil, err
	}
	return created, nil
}

// StartNamespaceDeletion deletes a namespace without waiting for it, its
// workloads first: the namespace controller leaves a deleted namespace
// alone for a fixed 5 s (namespaceDeletionGracePeriod in
// kube-controller-manager) before it deletes the content, so pods deleted
// here terminate during those 5 s instead of after them, and the
// namespace goes about 5 s after this call. gone is true when the
// namespace did not exist.
func StartNamespaceDeletion(ctx context.Context, cs kubernetes.Interface, name string) (gone bool, err error) {
	bg := metav1.DeletePropagationBackground
	opts := metav1.DeleteOptions{PropagationPolicy: &bg}
	all := metav1.ListOptions{}
	// Controllers before pods, so that none is recreated; errors here
	// only cost the head start: the namespace's deletion removes them.
	_ = cs.AppsV1().DaemonSets(name).DeleteCollection(ctx, opts, all)
	_ = cs.AppsV1().Deployments(name).DeleteCollection(ctx, opts, all)
	_ = cs.AppsV1().ReplicaSets(name).DeleteCollection(ctx, opts, all)
	_ = cs.BatchV1().Jobs(name).DeleteCollection(ctx, opts, all)
	_ = cs.CoreV1().Pods(name).DeleteCollection(ctx, metav1.DeleteOptions{}, all)
	forceOnNodesNotReady(ctx, cs, name)
	err = cs.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return true, nil
	}
	return false, err
}

// forceOnNodesNotReady deletes with no grace period the pods of namespace
// ns bound to a node that is not Ready: a kubelet that is gone never
// confirms their deletion, and the namespace would wait for them until
// the node returns or is removed. Their containers, if they still run,
// are stopped by that kubelet when it returns and finds no pod object.
// Best effort: the namespace's deletion goes on either way.
func forceOnNodesNotReady(ctx context.Context, cs kubernetes.Interface, ns string) {
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{ResourceVersion: "0"})
	if err != nil {
		return
	}
	down := map[string]bool{}
	for i := range nodes.Items {
		if !NodeIsReady(&nodes.Items[i]) {
			down[nodes.Items[i].Name] = true
		}
	}
	if len(down) == 0 {
		return
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return
	}
	zero := int64(0)
	for _, p := range pods.Items {
		if down[p.Spec.NodeName] {
			_ = cs.CoreV1().Pods(ns).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		}
	}
}

// DeleteNamespace deletes a namespace and waits until it is gone, so a run
// leaves nothing behind.
func DeleteNamespace(ctx context.Context, cs kubernetes.Interface, name string, timeout time.Duration) error {
	gone, err := startDeletion(ctx, cs, name)
	if gone || err != nil {
		return err
	}
	return waitNamespaceGone(ctx, cs, name, timeout)
}

// ForceNamespaceGone ends a namespace stuck in deletion on its pods (a
// kubelet that cannot tear one down, a node gone): it deletes them with
// no grace period, which removes their objects without the kubelet's
// confirmation, as `kubectl delete --force` does, and waits until the
// namespace is gone (not with a zero timeout). A namespace held by
// something else (a finalizer of another object) is named with the
// namespace controller's reason.
func ForceNamespaceGone(ctx context.Context, cs kubernetes.Interface, name string, timeout time.Duration) error {
	zero := int64(0)
	if err := cs.CoreV1().Pods(name).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, metav1.ListOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("force-delete the pods of namespace %s: %w", name, err)
	}
	if timeout <= 0 {
		return nil
	}
	err := waitNamespaceGone(ctx, cs, name, timeout)
	if err == nil {
		return nil
	}
	ns, gerr := cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	if gerr != nil {
		return err
	}
	var why []string
	for _, c := range ns.Status.Conditions {
		if c.Status == corev1.ConditionTrue {
			why = append(why, string(c.Type)+": "+c.Message)
		}
	}
	return fmt.Errorf("%w (namespace controller: %s)", err, strings.Join(why, "; "))
}

// StopNamespace deletes a namespace and waits until its pods are gone, not
// the namespace itself (which takes the namespace controller at least
// 5 s): for a workload that must have stopped writing to the cluster
// before the next step, in a namespace labelled so that its run's end
// waits for it.
func StopNamespace(ctx context.Context, cs kubernetes.Interface, name string, timeout time.Duration) error {
	gone, err := startDeletion(ctx, cs, name)
	if gone || err != nil {
		return err
	}
	return WaitPodsGone(ctx, cs, name, timeout)
}

// startDeletion counts the namespace's controller pods for the run's cost
// figures, then starts its deletion.
func startDeletion(ctx context.Context, cs kubernetes.Interface, name string) (gone bool, err error) {
	CountControllerPods(ctx, cs, name)
	return StartNamespaceDeletion(ctx, cs, name)
}

// ProbePodInput describes a pod running the probe image.
type ProbePodInput struct {
	Namespace string
	Name      string
	Image     string
	// Args of the probe (default: sleep).
	Args []string
	// NodeName pins the pod to a node; empty lets the scheduler choose.
	NodeName string
	Labels   map[string]string
	Port     int32
}

// ProbePod returns the pod object of in.
func ProbePod(in ProbePodInput) *corev1.Pod {
	args := in.Args
	if len(args) == 0 {
		args = []string{"sleep"}
	}
	labels := map[string]string{ManagedLabel: "true"}
	for k, v := range in.Labels {
		labels[k] = v
	}
	grace := int64(1)
	c := corev1.Container{
		Name:            "probe",
		Image:           in.Image,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Args:            args,
	}
	if in.Port != 0 {
		c.Ports = []corev1.ContainerPort{{ContainerPort: in.Port, Protocol: corev1.ProtocolTCP}}
		c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intOrPort(in.Port)}}, PeriodSeconds: 1}
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: in.Name, Namespace: in.Namespace, Labels: labels,
			Annotations: map[string]string{DefaultContainerAnnotation: c.Name}},
		Spec: corev1.PodSpec{
			NodeName:                      in.NodeName,
			Containers:                    []corev1.Container{c},
			TerminationGracePeriodSeconds: &grace,
			Tolerations:                   []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
		},
	}
}

// PinToNode makes the scheduler place the pod on node (node affinity on
// metadata.name, as DaemonSets do), instead of spec.nodeName, which skips
// the scheduler: the kubelet then rejects the pod outright (OutOfcpu)
// while pods of an earlier spec still terminate there, where the
// scheduler waits for the room. The node name is matched exactly; the
// hostname label may differ from it on real clusters.
func PinToNode(p *corev1.Pod, node string) {
	p.Spec.NodeName = ""
	p.Spec.Affinity = &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{node}}},
		}}},
	}}
}

// CreateReady creates the pod and waits until it is Ready, returning the
// pod as the API server last saw it. On timeout the error holds the pod's
// status and events, which is what a person would look at first.
func CreateReady(ctx context.Context, kl klient.Client, cs kubernetes.Interface, pod *corev1.Pod, timeout time.Duration) (*corev1.Pod, error) {
	defer cost.Time(cost.PhasePodReady, time.Now())
	if err := kl.Resources().Create(ctx, pod); err != nil {
		return nil, fmt.Errorf("create pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return waitReady(ctx, cs, pod, timeout)
}

// WaitReady waits until a pod created earlier is Ready, as CreateReady
// does after its create: for a pod started ahead of the spec that needs
// it, whose start then overlaps the specs before. The suite's timings
// count the wait only, the part of the start still in the way.
func WaitReady(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, timeout time.Duration) (*corev1.Pod, error) {
	defer cost.Time(cost.PhasePodReady, time.Now())
	return waitReady(ctx, cs, pod, timeout)
}

func waitReady(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, timeout time.Duration) (*corev1.Pod, error) {
	got, err := WaitStarting(ctx, cs, pod.Namespace, pod.Name, timeout, func(p *corev1.Pod) (bool, error) {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			return false, fmt.Errorf("it ended (phase %s) without being Ready", p.Status.Phase)
		}
		return IsReady(p), nil
	})
	// Callers read what the API server filled in (spec.nodeName, the
	// pod's IP) from the pod they passed.
	if got != nil {
		got.DeepCopyInto(pod)
	}
	if IsHopeless(err) {
		return got, fmt.Errorf("pod %s/%s %w: %s", pod.Namespace, pod.Name, err, Describe(ctx, cs, pod.Namespace, pod.Name))
	}
	if err != nil {
		return got, fmt.Errorf("pod %s/%s not Ready within %s: %v: %s", pod.Namespace, pod.Name, timeout, err, Describe(ctx, cs, pod.Namespace, pod.Name))
	}
	return got, nil
}

// hopelessShare: a pod Hopeless for this share of its ready timeout in a
// row is given up on (15 s of the default 2 minutes, longer where the
// configuration allows a slow node more), instead of waiting out the
// timeout on a node that will not run it.
const hopelessShare = 8

// hopelessPoll is how often a waited-for pod is judged by Hopeless: its
// events are listed only while its state could make it so.
var hopelessPoll = 2 * time.Second

type hopelessError struct {
	why   string
	after time.Duration
}

func (h hopelessError) Error() string {
	return fmt.Sprintf("will not start: %s (so for %s after at least two failed attempts)", h.why, h.after)
}

// IsHopeless reports whether err is (or wraps) WaitStarting giving up on
// a Hopeless pod: trying the same pod on the same node again is futile.
func IsHopeless(err error) bool {
	var h hopelessError
	return errors.As(err, &h)
}

// WaitStarting is WaitPod for a pod on its way to start, which also gives
// up once the pod has been Hopeless for an eighth of timeout
// (hopelessShare), with an error saying why (IsHopeless).
func WaitStarting(ctx context.Context, cs kubernetes.Interface, ns, name string, timeout time.Duration, done func(*corev1.Pod) (bool, error)) (*corev1.Pod, error) {
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The judge reads the pod as the wait's watch last saw it (a pod that
	// does not change is not sent again, and needs no new read).
	var last atomic.Pointer[corev1.Pod]
	go watchHopeless(wctx, cancel, cs, last.Load, timeout/hopelessShare)
	got, err := WaitPod(wctx, cs, ns, name, timeout, func(p *corev1.Pod) (bool, error) {
		last.Store(p)
		return done(p)
	})
	var h hopelessError
	if err != nil && errors.As(context.Cause(wctx), &h) {
		return got, h
	}
	return got, err
}

// watchHopeless cancels ctx with a hopelessError once the pod (as pod
// returns it; nil while not seen) has been Hopeless for after, poll after
// poll.
func watchHopeless(ctx context.Context, cancel context.CancelCauseFunc, cs kubernetes.Interface, pod func() *corev1.Pod, after time.Duration) {
	t := time.NewTicker(hopelessPoll)
	defer t.Stop()
	var since time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		why := ""
		if p := pod(); p != nil && MayBeHopeless(p) {
			why = Hopeless(p, Events(ctx, cs, p.Namespace, p.Name))
		}
		switch {
		case why == "":
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		}
		if why != "" && time.Since(since) >= after {
			cancel(hopelessError{why: why, after: after})
			return
		}
	}
}

// Describe summarises a pod's phase, container states and events.
func Describe(ctx context.Context, cs kubernetes.Interface, ns, name string) string {
	var b strings.Builder
	p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err.Error()
	}
	if p.Spec.NodeName == "" {
		fmt.Fprintf(&b, "phase=%s, not scheduled", p.Status.Phase)
	} else {
		fmt.Fprintf(&b, "phase=%s node=%s", p.Status.Phase, p.Spec.NodeName)
	}
	if why := NodeNotReady(ctx, cs, TargetNode(p)); why != "" {
		fmt.Fprintf(&b, " (%s)", why)
	}
	for _, s := range p.Status.ContainerStatuses {
		switch {
		case s.State.Waiting != nil:
			fmt.Fprintf(&b, "; %s waiting: %s %s", s.Name, s.State.Waiting.Reason, s.State.Waiting.Message)
		case s.State.Terminated != nil:
			fmt.Fprintf(&b, "; %s terminated: %s (exit %d)", s.Name, s.State.Terminated.Reason, s.State.Terminated.ExitCode)
		}
	}
	for _, line := range SummarizeEvents(Events(ctx, cs, ns, name)) {
		b.WriteString("; event ")
		b.WriteString(line)
	}
	return b.String()
}

// NodeNotReady says why node is not Ready ("node w2 not Ready: Ready
// Unknown since … (NodeStatusUnknown: Kubelet stopped posting node
// status.)"), or "" when it is Ready, unnamed, has not reported yet or
// cannot be read: a pod bound to a node whose kubelet is gone never
// starts and shows no event saying so.
func NodeNotReady(ctx context.Context, cs kubernetes.Interface, node string) string {
	if node == "" {
		return ""
	}
	n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	if c, ok := ReadyCondition(n); ok && c.Status != corev1.ConditionTrue {
		return "node " + node + " not Ready: " + ReadySentence(c)
	}
	return ""
}

// ReadyCondition is the node's Ready condition; false when it has none
// (a node whose kubelet has not reported yet).
func ReadyCondition(n *corev1.Node) (corev1.NodeCondition, bool) {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c, true
		}
	}
	return corev1.NodeCondition{}, false
}

// NodeIsReady reports whether the node's Ready condition is True.
func NodeIsReady(n *corev1.Node) bool {
	c, ok := ReadyCondition(n)
	return ok && c.Status == corev1.ConditionTrue
}

// ReadySentence describes a Ready condition as findings name it ("Ready
// Unknown since 2026-12-06T18:04:06Z (NodeStatusUnknown: Kubelet stopped
// posting node status.)").
func ReadySentence(c corev1.NodeCondition) string {
	return fmt.Sprintf("Ready %s since %s (%s: %s)", c.Status, c.LastTransitionTime.UTC().Format(time.RFC3339), c.Reason, c.Message)
}

// containerID is a runtime's 64-hex container or sandbox ID: the kubelet
// repeats an event once per attempt, each naming the attempt's new ID.
var containerID = regexp.MustCompile(`\b[0-9a-f]{64}\b`)

// SummarizeEvents is events in time order (a repeated one where it first
// appears), one line per distinct type, reason and message ("Warning
// Failed: … (×9)"): a pod stuck on one error gets that error once in a
// failure message, not a screenful of retries. Container IDs are elided
// to compare messages, and the kubelet's "(combined from similar
// events): " prefix dropped.
func SummarizeEvents(events []corev1.Event) []string {
	sorted := append([]corev1.Event(nil), events...)
	sort.SliceStable(sorted, func(i, j int) bool { return lastSeen(sorted[i]).Before(lastSeen(sorted[j])) })
	type line struct {
		text  string
		count int32
	}
	var lines []*line
	index := map[string]*line{}
	for _, e := range sorted {
		msg := strings.TrimPrefix(e.Message, "(combined from similar events): ")
		msg = containerID.ReplaceAllString(msg, "…")
		text := fmt.Sprintf("%s %s: %s", e.Type, e.Reason, msg)
		n := eventCount(e)
		if l, ok := index[text]; ok {
			l.count += n
			continue
		}
		l := &line{text: text, count: n}
		index[text] = l
		lines = append(lines, l)
	}
	out := make([]string, 0, len(lines))
	for _, l := range lines {
		if l.count > 1 {
			out = append(out, fmt.Sprintf("%s (×%d)", l.text, l.count))
			continue
		}
		out = append(out, l.text)
	}
	return out
}

// eventCount is how many times an event happened (at least once), from
// whichever of the core and events.k8s.io fields its reporter counted in.
func eventCount(e corev1.Event) int32 {
	n := e.Count
	if e.Series != nil && e.Series.Count > n {
		n = e.Series.Count
	}
	return max(n, 1)
}

// lastSeen is when an event last happened, from whichever of the core
// and events.k8s.io fields its reporter filled in.
func lastSeen(e corev1.Event) time.Time {
	switch {
	case e.Series != nil && !e.Series.LastObservedTime.IsZero():
		return e.Series.LastObservedTime.Time
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// failedPodName is a pod named in a controller's FailedCreate message
// ("pods \"p-x7k2q\" is forbidden").
var failedPodName = regexp.MustCompile(`pods "[^"]*"`)

// FailedCreates is a controller's (a DaemonSet's, a ReplicaSet's)
// FailedCreate warnings among events, one line per distinct message, or
// "" when there are none: why the pods it should have made do not exist
// (an admission policy refusing them, a quota).
func FailedCreates(events []corev1.Event) string {
	var refused []corev1.Event
	for _, e := range events {
		// A timeout (a webhook that did not answer in time) may pass.
		if e.Type == corev1.EventTypeWarning && e.Reason == "FailedCreate" && !Slow(e.Message) {
			// Each attempt names its own pod: the refusals are alike.
			e.Message = failedPodName.ReplaceAllString(e.Message, `pods "…"`)
			refused = append(refused, e)
		}
	}
	return strings.Join(SummarizeEvents(refused), "; ")
}

// Events are the events about an object of a namespace (none when they
// cannot be listed: callers poll or only describe).
func Events(ctx context.Context, cs kubernetes.Interface, ns, name string) []corev1.Event {
	list, err := cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return nil
	}
	return list.Items
}

// ExecJSON runs a probe subcommand in a pod's own container (see
// defaultContainer) and decodes its one-line JSON answer into out. A
// failing probe's JSON error is returned as the error.
func ExecJSON(ctx context.Context, kl klient.Client, ns, pod string, args []string, out any) error {
	return ExecJSONIn(ctx, kl, ns, pod, "", args, out)
}

// ExecJSONIn is ExecJSON in a named container ("" for the pod's default:
// see defaultContainer).
func ExecJSONIn(ctx context.Context, kl klient.Client, ns, pod, container string, args []string, out any) error {
	var stdout, stderr bytes.Buffer
	cmd := append([]string{"/nodeconform-probe"}, args...)
	if container == "" {
		container = chosenContainer(ns, pod)
	}
	var err error
	for attempt := 1; ; attempt++ {
		stdout.Reset()
		stderr.Reset()
		start := time.Now()
		err = kl.Resources().ExecInPod(ctx, ns, pod, container, cmd, &stdout, &stderr)
		cost.Time(cost.PhaseExec, start)
		if container == "" && mustNameContainer(err) {
			if container, err = defaultContainer(ctx, ns, pod, func(ctx context.Context) (*corev1.Pod, error) {
				var p corev1.Pod
				return &p, kl.Resources(ns).Get(ctx, pod, ns, &p)
			}); err != nil {
				return err
			}
			attempt-- // not an attempt: the exec did not reach the pod
			continue
		}
		if !execAgain(attempt, args, stdout.Bytes(), err) {
			break
		}
		cost.Time(cost.PhaseExecRetried, start)
		select {
		case <-ctx.Done():
			if err == nil { // a cut stream
				err = ctx.Err()
			}
			return fmt.Errorf("exec %v in %s/%s: %w (stderr: %s)", args, ns, pod, err, strings.TrimSpace(stderr.String()))
		case <-time.After(time.Duration(attempt) * time.Second):
		}
	}
	if err != nil && ExecNotStarted(err) {
		err = fmt.Errorf("%w (the runtime did not start the exec in %d attempts)", err, ExecAttempts)
	}
	if err == nil && streamCut(stdout.Bytes()) {
		err = fmt.Errorf("the exec ended with neither an answer nor an exit status: its stream was cut (%s)", cutOutcome(args))
	}
	return DecodeAnswer(ns, pod, args, stdout.Bytes(), stderr.Bytes(), err, out)
}

// DefaultContainerAnnotation names a pod's main container, as kubectl
// reads it; ProbePod sets it.
const DefaultContainerAnnotation = "kubectl.kubernetes.io/default-container"

// MainContainerStatus is the status of the pod's own container: the one
// its DefaultContainerAnnotation names, else its first container. Not
// ContainerStatuses[0]: the kubelet sorts statuses by name, so a sidecar
// the cluster injected ("istio-proxy") may come first.
func MainContainerStatus(p *corev1.Pod) (corev1.ContainerStatus, bool) {
	name := mainContainer(p)
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == name {
			return s, true
		}
	}
	return corev1.ContainerStatus{}, false
}

// mainContainer is the container the pod's DefaultContainerAnnotation
// names, when the pod has it (a pod built from ProbePod may rename its
// containers), else its first ("" for none).
func mainContainer(p *corev1.Pod) string {
	if name := p.Annotations[DefaultContainerAnnotation]; name != "" {
		for _, c := range p.Spec.Containers {
			if c.Name == name {
				return name
			}
		}
	}
	if len(p.Spec.Containers) > 0 {
		return p.Spec.Containers[0].Name
	}
	return ""
}

// chosenContainers caches defaultContainer's answer per namespace/pod.
var chosenContainers sync.Map

// defaultContainer is the container a request naming none (an exec, a
// log read) means, for a pod that has more than one because the cluster
// injected a sidecar (a service mesh, a security agent): the pod's
// DefaultContainerAnnotation, else its first container, since injectors
// append theirs after the pod's own. Asked only when the API server
// refuses such a request without a container (mustNameContainer): one
// request per pod on such clusters, none elsewhere.
func defaultContainer(ctx context.Context, ns, name string, get func(context.Context) (*corev1.Pod, error)) (string, error) {
	p, err := get(ctx)
	if err != nil {
		return "", fmt.Errorf("pod %s/%s has several containers and cannot be read to choose one: %w", ns, name, err)
	}
	c := mainContainer(p)
	if c == "" {
		return "", fmt.Errorf("pod %s/%s has no container", ns, name)
	}
	chosenContainers.Store(ns+"/"+name, c)
	return c, nil
}

// chosenContainer is defaultContainer's earlier answer for a pod, or "".
func chosenContainer(ns, name string) string {
	if c, ok := chosenContainers.Load(ns + "/" + name); ok {
		return c.(string)
	}
	return ""
}

// mustNameContainer reports the API server's refusal of a request that
// names no container in a pod of several.
func mustNameContainer(err error) bool {
	return err != nil && strings.Contains(err.Error(), "a container name must be specified")
}

// execAgain decides whether an exec of the probe command args, which
// printed stdout and ended with err on its attempt-th run, runs again.
// The runtime or the kubelet may refuse it before it starts
// (ExecNotStarted, kubeletRefused), or its stream may be cut: client-go
// reports an exec whose error stream closed without the status the
// kubelet always sends at the end (a connection dropped under load, a
// kubelet or runtime restart) as a success with whatever output arrived,
// and every probe subcommand answers with a JSON line, so no output at
// all is such a cut. A command that never started goes again; a cut one
// only if it changes nothing, since it may have run.
func execAgain(attempt int, args []string, stdout []byte, err error) bool {
	if attempt >= ExecAttempts {
		return false
	}
	if err != nil {
		return ExecNotStarted(err) || kubeletRefused(err)
	}
	return streamCut(stdout) && probeapi.ReadOnly(args)
}

// streamCut reports whether a probe exec that ended without an error
// printed nothing: its stream was cut before the answer came.
func streamCut(stdout []byte) bool { return len(bytes.TrimSpace(stdout)) == 0 }

// cutOutcome says what a cut exec of args leaves known.
func cutOutcome(args []string) string {
	if probeapi.ReadOnly(args) {
		return fmt.Sprintf("%d attempts", ExecAttempts)
	}
	return "not run again: the command changes state and may have run"
}

// DecodeAnswer turns what a probe run with args in ns/pod printed, and how
// its exec ended (runErr), into out or an error: the probe's own JSON
// error when it printed one, else the exec's error with its stderr.
func DecodeAnswer(ns, pod string, args []string, stdout, stderr []byte, runErr error, out any) error {
	if runErr != nil {
		var e probeapi.Error
		if json.Unmarshal(stdout, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s in %s/%s: %s", strings.Join(args, " "), ns, pod, e.Error)
		}
		return fmt.Errorf("exec %v in %s/%s: %w (stderr: %s)", args, ns, pod, runErr, strings.TrimSpace(string(stderr)))
	}
	if err := json.Unmarshal(stdout, out); err != nil {
		return fmt.Errorf("decode answer of %v in %s/%s: %w: %q", args, ns, pod, err, string(stdout))
	}
	return nil
}

// ExecAttempts bounds the retries of an exec the runtime never started.
const ExecAttempts = 3

// ExecNotStarted reports whether an exec error means the runtime failed
// before it started the command, so running it again cannot run it twice.
// containerd's CRI fails that way when loading the container's task from
// its shim times out ("failed to exec in container: failed to load task:
// context deadline exceeded"), which a loaded node (a QEMU/TCG VM, a
// 2-core host running a suite) does now and then while the pod itself is
// fine.
func ExecNotStarted(err error) bool {
	return err != nil && strings.Contains(err.Error(), "failed to load task")
}

// kubeletRefused reports whether the kubelet refused an exec before the
// runtime saw it, as one that is restarting does: the API server cannot
// reach it ("error dialing backend"), or it does not know the pod yet
// ("unable to upgrade connection: pod does not exist"). Only a pod exec
// retries these: the node restart waits poll the probe sessions and must
// not wait out a retry while the kubelet is down.
func kubeletRefused(err error) bool {
	if err == nil {
		return false
	}
	for _, s := range []string{"error dialing backend", "unable to upgrade connection: pod does not exist"} {
		if strings.Contains(err.Error(), s) {
			return true
		}
	}
	return false
}

// DeletePods deletes every pod of a namespace and waits until they are
// gone, for specs whose next step (a node restart) must not race with
// pod teardown.
func DeletePods(ctx context.Context, cs kubernetes.Interface, ns string, timeout time.Duration) error {
	if err := cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
		return err
	}
	return WaitPodsGone(ctx, cs, ns, timeout)
}

// IsReady reports whether a pod's Ready condition is true.
func IsReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// ReadySince is when p became Ready as far as its status tells: the Ready
// condition's time, which the API keeps in whole seconds, rounded up to
// the next second, and never later than seen (when the caller saw it
// Ready). A pod started ahead of the spec that waits for it was Ready
// before that spec looked; seen alone would date it late.
func ReadySince(p *corev1.Pod, seen time.Time) time.Time {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && !c.LastTransitionTime.IsZero() {
			if t := c.LastTransitionTime.Add(time.Second); t.Before(seen) {
				return t
			}
		}
	}
	return seen
}

// CountControllerPods adds to the suite's cost the pods namespace ns's
// DaemonSets and Deployments have (made by their controllers, so no
// request of ours counts them). Call it before deleting the namespace.
func CountControllerPods(ctx context.Context, cs kubernetes.Interface, ns string) {
	if !cost.FirstCount(ns) {
		return
	}
	if dss, err := cs.AppsV1().DaemonSets(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, ds := range dss.Items {
			cost.AddControllerPods(int64(ds.Status.DesiredNumberScheduled))
		}
	}
	if ds, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{}); err == nil {
		for _, d := range ds.Items {
			cost.AddControllerPods(int64(d.Status.Replicas))
		}
	}
}
