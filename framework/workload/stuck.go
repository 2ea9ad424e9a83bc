package workload

import (
	"context"
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
		if e.Type == corev1.EventTypeWarning && stuckReasons[e.Reason] && !slow(e.Message) {
			return true
		}
	}
	return false
}

func slow(message string) bool {
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
}

// DefaultStuckAfter is Stuck's After when unset: long enough that a
// sandbox error seen once while a kubelet restarts is not a verdict.
const DefaultStuckAfter = 15 * time.Second

// Check reads the events of pod, which is not Ready, and reports whether
// it has been Broken for After. Call it on every poll.
func (s *Stuck) Check(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod) bool {
	return s.observe(pod.Spec.NodeName, Broken(pod, Events(ctx, cs, pod.Namespace, pod.Name)), time.Now())
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
