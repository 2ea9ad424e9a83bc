package workload

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
)

// stuckReasons are warning event reasons after which a pod will not become
// Ready without someone fixing its node or its image. Transient warnings
// (FailedMount "failed to sync configmap cache" right after a kubelet
// restart) are not among them, and even these must persist for
// Stuck.After.
var stuckReasons = map[string]bool{"FailedCreatePodSandBox": true, "ErrImagePull": true,
	"ImagePullBackOff": true, "Failed": true, "InvalidImageName": true}

// slowMarks are in the messages of runtime calls that timed out, and of
// the retries containerd refuses while the first call still runs
// ("failed to reserve container name ... is reserved for ..."): the
// kubelet retries them, and a loaded node (a QEMU/TCG VM under a suite's
// pods) gets there, so they say the node is slow, not broken. Seen on
// the VM: nfd-worker's CreateContainer "context deadline exceeded".
var slowMarks = []string{"context deadline exceeded", "DeadlineExceeded", "failed to reserve"}

// Broken reports whether a pod that is not Ready shows a reason it will
// not recover from by itself: it failed, or one of its warning events is
// among stuckReasons (unless its message is a timeout: slowMarks), and
// none of its containers is running (a container that started is on its
// way to Ready).
func Broken(pod *corev1.Pod, events []corev1.Event) bool {
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Running != nil {
			return false
		}
	}
	if pod.Status.Phase == corev1.PodFailed {
		return true
	}
	for _, e := range events {
		if e.Type == corev1.EventTypeWarning && stuckReasons[e.Reason] && !Slow(e.Message) {
			return true
		}
	}
	return false
}

// Lasting tells a condition that has held for a while (a controller
// reporting that it cannot create pods) from one that came and went.
type Lasting struct{ since time.Time }

// Holds notes that the condition holds now and reports whether it has
// held, without a Reset, for at least d.
func (l *Lasting) Holds(d time.Duration) bool {
	if l.since.IsZero() {
		l.since = time.Now()
	}
	return time.Since(l.since) >= d
}

// Reset notes that the condition does not hold.
func (l *Lasting) Reset() { l.since = time.Time{} }

// Slow reports whether an event's or condition's message is a timeout
// (slowMarks): a node or webhook that was slow, which may pass.
func Slow(message string) bool {
	for _, m := range slowMarks {
		if strings.Contains(message, m) {
			return true
		}
	}
	return false
}

// Stuck tells a DaemonSet's pods that will not become Ready without
// someone fixing their node (no sandbox, no image) from those still on
// their way, so that a wait for the DaemonSet ends once every node is
// either Ready or given up on, instead of at its timeout. It keeps a clock
// per node: a pod the DaemonSet controller recreates on the same node
// does not start it again.
type Stuck struct {
	// After is how long a pod must stay Broken, poll after poll, before
	// its node is given up on (zero: DefaultStuckAfter).
	After time.Duration
	since map[string]time.Time
	// nodes caches each node's NotReady sentence for nodeTTL: a wait
	// polls every pod that is not Ready, often, and many share a node.
	nodes map[string]nodeLook
}

type nodeLook struct {
	notReady string
	at       time.Time
}

const nodeTTL = 5 * time.Second

// DefaultStuckAfter is Stuck's After when unset: long enough that a
// sandbox error seen once while a kubelet restarts is not a verdict.
const DefaultStuckAfter = 15 * time.Second

// UnschedulableAfter is how long a DaemonSet's pod must have been
// unschedulable before its node is given up on: a node whose CPU,
// memory or pod slots are taken stays so, but room made by a pod that
// is terminating comes only once it is gone, after its grace period
// (30 s by default).
const UnschedulableAfter = 45 * time.Second

// Unschedulable returns since when the scheduler has found no room for
// pod (its PodScheduled condition False, reason Unschedulable), or false.
// A DaemonSet's pod has one node to go to.
func Unschedulable(pod *corev1.Pod) (time.Time, bool) {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable {
			return c.LastTransitionTime.Time, true
		}
	}
	return time.Time{}, false
}

// Check reads the events of pod, which is not Ready, and reports whether
// it has been Broken, or its node not Ready, for After, or unschedulable
// for UnschedulableAfter by its condition's own time (so that each
// process attaching to a DaemonSet does not wait it again). Call it on
// every poll.
func (s *Stuck) Check(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) bool {
	node := TargetNode(pod)
	if since, ok := Unschedulable(pod); ok {
		return !since.IsZero() && time.Since(since) >= UnschedulableAfter
	}
	broken := Broken(pod, Events(ctx, cs, pod.Namespace, pod.Name)) || s.nodeNotReady(ctx, cs, node) != ""
	return s.observe(node, broken, time.Now())
}

// TargetNode is the node pod is bound to or, before the scheduler has
// bound it, the one a DaemonSet's pod is pinned to (its node affinity's
// metadata.name term); "" when neither.
func TargetNode(pod *corev1.Pod) string {
	if pod.Spec.NodeName != "" {
		return pod.Spec.NodeName
	}
	a := pod.Spec.Affinity
	if a == nil || a.NodeAffinity == nil || a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return ""
	}
	for _, t := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		for _, f := range t.MatchFields {
			if f.Key == "metadata.name" && f.Operator == corev1.NodeSelectorOpIn && len(f.Values) == 1 {
				return f.Values[0]
			}
		}
	}
	return ""
}

func (s *Stuck) nodeNotReady(ctx context.Context, cs kubernetes.Interface, node string) string {
	if l, ok := s.nodes[node]; ok && time.Since(l.at) < nodeTTL {
		return l.notReady
	}
	why := NodeNotReady(ctx, cs, node)
	if s.nodes == nil {
		s.nodes = map[string]nodeLook{}
	}
	s.nodes[node] = nodeLook{notReady: why, at: time.Now()}
	return why
}

func (s *Stuck) observe(node string, broken bool, now time.Time) bool {
	if !broken {
		delete(s.since, node)
		return false
	}
	if s.since == nil {
		s.since = map[string]time.Time{}
	}
	first, seen := s.since[node]
	if !seen {
		s.since[node], first = now, now
	}
	after := s.After
	if after == 0 {
		after = DefaultStuckAfter
	}
	return now.Sub(first) >= after
}

// hopelessWaiting are the waiting reasons of a container the kubelet
// keeps retrying to the same end until someone changes the node, the
// image or the pod: a create the runtime refuses (a mount the node does
// not share, a missing device), an image the node does not have and
// cannot pull. A crash loop is not among them: the container started.
var hopelessWaiting = map[string]bool{"CreateContainerError": true, "ErrImagePull": true,
	"ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true}

// transientMarks are in the errors of a runtime call made while the
// runtime restarts (a suite restarting containerd), whose next attempt
// reaches the new runtime, and of waits that ran out inside the runtime
// or a sandbox ("timed out waiting for the sandbox"), which a slow node
// (QEMU/TCG) may get past on the next attempt.
var transientMarks = []string{"code = Unavailable", "connection refused", "transport is closing", "timed out", "i/o timeout"}

func transient(message string) bool {
	if Slow(message) {
		return true
	}
	for _, m := range transientMarks {
		if strings.Contains(message, m) {
			return true
		}
	}
	return false
}

// Hopeless says why a pod the kubelet has tried to start will not become
// Ready by itself, or "" while it may. Unlike Broken, which judges a
// DaemonSet's pod as a whole, it judges the pod's present state: a
// container waiting for a hopeless reason (even while its other
// containers run), or a sandbox not made yet (condition
// PodReadyToStartContainers False) after sandbox failures. Either needs
// the kubelet to have failed twice (warning events, timeouts and a
// restarting runtime not counted): a single failure may be one its retry
// does not repeat, and a sandbox that failed once and is now booting
// slowly (gVisor under emulation) still carries that event.
func Hopeless(pod *corev1.Pod, events []corev1.Event) string {
	failures := func(reasons ...string) (n int32, last string) {
		var seen time.Time
		for _, e := range events {
			if e.Type != corev1.EventTypeWarning || transient(e.Message) {
				continue
			}
			for _, r := range reasons {
				if e.Reason != r {
					continue
				}
				n += eventCount(e)
				if t := lastSeen(e); !t.Before(seen) {
					seen, last = t, e.Message
				}
			}
		}
		return n, last
	}
	if s, ok := refusedContainer(pod); ok {
		// The kubelet's events for these: "Failed" (a create or pull
		// error, "Error: ..."), "InspectFailed" (an image name it cannot
		// parse), "ErrImageNeverPull".
		if n, _ := failures("Failed", "InspectFailed", "ErrImageNeverPull"); n >= 2 {
			w := s.State.Waiting
			return fmt.Sprintf("container %s: %s: %s", s.Name, w.Reason, w.Message)
		}
	}
	if noSandbox(pod) {
		if n, last := failures("FailedCreatePodSandBox"); n >= 2 {
			return "no sandbox: " + last
		}
	}
	return ""
}

// MayBeHopeless is Hopeless without the events, for a poll that lists
// events only when they could change the answer.
func MayBeHopeless(pod *corev1.Pod) bool {
	_, refused := refusedContainer(pod)
	return refused || noSandbox(pod)
}

// refusedContainer is the pod's first container (init containers first)
// waiting for a hopeless reason with a message that is not transient.
func refusedContainer(pod *corev1.Pod) (corev1.ContainerStatus, bool) {
	for _, s := range append(append([]corev1.ContainerStatus(nil), pod.Status.InitContainerStatuses...), pod.Status.ContainerStatuses...) {
		if w := s.State.Waiting; w != nil && hopelessWaiting[w.Reason] && !transient(w.Message) {
			return s, true
		}
	}
	return corev1.ContainerStatus{}, false
}

// noSandbox reports whether the kubelet says the pod's sandbox is not
// made (condition PodReadyToStartContainers False).
func noSandbox(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReadyToStartContainers {
			return c.Status == corev1.ConditionFalse
		}
	}
	return false
}
