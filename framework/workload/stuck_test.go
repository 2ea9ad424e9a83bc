package workload

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestBroken(t *testing.T) {
	warn := func(reason string) []corev1.Event {
		return []corev1.Event{{Type: corev1.EventTypeWarning, Reason: reason}}
	}
	waiting := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending}}
	running := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodRunning,
		ContainerStatuses: []corev1.ContainerStatus{{State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}}}
	failed := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodFailed}}
	for _, c := range []struct {
		name   string
		pod    *corev1.Pod
		events []corev1.Event
		want   bool
	}{
		{"no sandbox", waiting, warn("FailedCreatePodSandBox"), true},
		{"no image", waiting, warn("ErrImagePull"), true},
		{"failed pod", failed, nil, true},
		{"still pulling", waiting, nil, false},
		{"transient mount warning", waiting, warn("FailedMount"), false},
		{"a normal event of a broken reason", waiting, []corev1.Event{{Type: corev1.EventTypeNormal, Reason: "Failed"}}, false},
		{"a container started after the warning", running, warn("FailedCreatePodSandBox"), false},
		// A runtime call that timed out is retried by the kubelet.
		{"container create timed out", waiting, []corev1.Event{{Type: corev1.EventTypeWarning, Reason: "Failed", Message: "Error: context deadline exceeded"}}, false},
		{"retry refused while the first create runs", waiting, []corev1.Event{{Type: corev1.EventTypeWarning, Reason: "Failed",
			Message: `Error: failed to reserve container name "nfd-worker_nfd-worker-n4b7r_ns_uid_0": name "nfd-worker_..." is reserved for "abc"`}}, false},
		{"sandbox timed out", waiting, []corev1.Event{{Type: corev1.EventTypeWarning, Reason: "FailedCreatePodSandBox", Message: "Failed to create pod sandbox: rpc error: code = DeadlineExceeded desc = context deadline exceeded"}}, false},
		{"a timeout beside a real failure", waiting, []corev1.Event{{Type: corev1.EventTypeWarning, Reason: "Failed", Message: "Error: context deadline exceeded"},
			{Type: corev1.EventTypeWarning, Reason: "FailedCreatePodSandBox", Message: `Failed to create pod sandbox: rpc error: code = Unknown desc = no runtime for "x" is configured`}}, true},
	} {
		if got := Broken(c.pod, c.events); got != c.want {
			t.Errorf("%s: Broken = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestStuckNeedsAfterInARow(t *testing.T) {
	s := Stuck{After: 10 * time.Second}
	t0 := time.Now()
	if s.observe("n1", true, t0) {
		t.Fatal("stuck at the first broken poll")
	}
	if s.observe("n1", true, t0.Add(9*time.Second)) {
		t.Fatal("stuck before After")
	}
	if !s.observe("n1", true, t0.Add(10*time.Second)) {
		t.Fatal("not stuck after After broken")
	}
	// A poll that is not broken starts the clock again.
	if s.observe("n1", false, t0.Add(11*time.Second)) || s.observe("n1", true, t0.Add(12*time.Second)) {
		t.Fatal("stuck right after recovering")
	}
	if s.observe("n2", true, t0.Add(20*time.Second)) {
		t.Fatal("another node shares the clock")
	}
	var d Stuck
	d.observe("n", true, t0)
	if d.observe("n", true, t0.Add(DefaultStuckAfter-time.Second)) || !d.observe("n", true, t0.Add(DefaultStuckAfter)) {
		t.Fatal("a zero After is not DefaultStuckAfter")
	}
}

func TestHopeless(t *testing.T) {
	waitingOn := func(reason, msg string) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{
			{Name: "probe", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}},
			{Name: "peer", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}},
		}}}
	}
	sandbox := func(status corev1.ConditionStatus) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending,
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReadyToStartContainers, Status: status}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "probe", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}}}
	}
	warn := func(reason, msg string, count int32) corev1.Event {
		return corev1.Event{Type: corev1.EventTypeWarning, Reason: reason, Message: msg, Count: count}
	}
	const notShared = `failed to generate container spec: path "/mnt/x" is mounted on "/" but it is not a shared mount`
	const noRuntime = `Failed to create pod sandbox: rpc error: code = Unknown desc = no runtime for "runsc" is configured`
	for _, c := range []struct {
		name   string
		pod    *corev1.Pod
		events []corev1.Event
		want   string
	}{
		{"create refused twice, beside a running container", waitingOn("CreateContainerError", notShared),
			[]corev1.Event{warn("Failed", "Error: "+notShared, 1), warn("Failed", "Error: "+notShared, 1)}, "container peer: CreateContainerError: " + notShared},
		{"create refused once: the retry may succeed", waitingOn("CreateContainerError", notShared),
			[]corev1.Event{warn("Failed", "Error: "+notShared, 1)}, ""},
		{"create timed out", waitingOn("CreateContainerError", "context deadline exceeded"),
			[]corev1.Event{warn("Failed", "Error: context deadline exceeded", 5)}, ""},
		{"timeouts do not count towards a real failure", waitingOn("CreateContainerError", notShared),
			[]corev1.Event{warn("Failed", "Error: context deadline exceeded", 5), warn("Failed", "Error: "+notShared, 1)}, ""},
		{"runtime restarting", waitingOn("CreateContainerError", "rpc error: code = Unavailable desc = connection error"),
			[]corev1.Event{warn("Failed", "Error: rpc error: code = Unavailable desc = connection error", 3)}, ""},
		{"image never pulled", waitingOn("ErrImageNeverPull", "image x is not present with pull policy of Never"),
			[]corev1.Event{warn("ErrImageNeverPull", "image x is not present with pull policy of Never", 2)}, "container peer: ErrImageNeverPull: image x is not present with pull policy of Never"},
		{"a sandbox's own wait ran out", sandbox(corev1.ConditionFalse), []corev1.Event{warn("FailedCreatePodSandBox", "failed to start sandbox: timed out waiting for the sandbox to start", 3)}, ""},
		{"a crash loop started", waitingOn("CrashLoopBackOff", "back-off 10s"), []corev1.Event{warn("BackOff", "Back-off restarting", 4)}, ""},
		{"no sandbox, again and again", sandbox(corev1.ConditionFalse), []corev1.Event{warn("FailedCreatePodSandBox", noRuntime, 3)}, "no sandbox: " + noRuntime},
		{"no sandbox once", sandbox(corev1.ConditionFalse), []corev1.Event{warn("FailedCreatePodSandBox", noRuntime, 1)}, ""},
		// A sandbox that failed before and is made now: old events stay.
		{"sandbox made after failures", sandbox(corev1.ConditionTrue), []corev1.Event{warn("FailedCreatePodSandBox", noRuntime, 3)}, ""},
		{"sandbox timing out", sandbox(corev1.ConditionFalse), []corev1.Event{warn("FailedCreatePodSandBox", "rpc error: code = DeadlineExceeded desc = context deadline exceeded", 3)}, ""},
		{"a normal event", sandbox(corev1.ConditionFalse), []corev1.Event{{Type: corev1.EventTypeNormal, Reason: "FailedCreatePodSandBox", Count: 3}}, ""},
	} {
		got := Hopeless(c.pod, c.events)
		if got != c.want {
			t.Errorf("%s: Hopeless = %q, want %q", c.name, got, c.want)
		}
		if c.want != "" && !MayBeHopeless(c.pod) {
			t.Errorf("%s: MayBeHopeless is false for a hopeless pod: its events would not be listed", c.name)
		}
	}
}

// A pod the scheduler finds no room for is unschedulable since its
// condition's time, and stuck once that is UnschedulableAfter ago (not
// since this process first looked); a gated, scheduled or new pod is not.
func TestUnschedulable(t *testing.T) {
	cond := func(status corev1.ConditionStatus, reason string, at time.Time) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: status, Reason: reason, LastTransitionTime: metav1.NewTime(at), Message: "0/3 nodes are available: 1 Insufficient cpu."}}}}
	}
	at := time.Now().Add(-time.Minute).Truncate(time.Second)
	if since, ok := Unschedulable(cond(corev1.ConditionFalse, corev1.PodReasonUnschedulable, at)); !ok || !since.Equal(at) {
		t.Errorf("unschedulable pod: %v %v", since, ok)
	}
	for _, p := range []*corev1.Pod{cond(corev1.ConditionFalse, corev1.PodReasonSchedulingGated, at), cond(corev1.ConditionTrue, "", at), {}} {
		if _, ok := Unschedulable(p); ok {
			t.Errorf("unschedulable: %+v", p.Status)
		}
	}
	var s Stuck
	cs := fake.NewClientset()
	if !s.Check(context.Background(), cs, cond(corev1.ConditionFalse, corev1.PodReasonUnschedulable, at)) {
		t.Error("unschedulable for a minute is not stuck")
	}
	if s.Check(context.Background(), cs, cond(corev1.ConditionFalse, corev1.PodReasonUnschedulable, time.Now().Add(-10*time.Second))) {
		t.Error("unschedulable for 10 s is stuck")
	}
}

// A DaemonSet's pod names its node in a metadata.name term before it is
// bound; a bound pod's node wins.
func TestTargetNode(t *testing.T) {
	pinned := &corev1.Pod{Spec: corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"w1"}}}}}}}}}}
	if got := TargetNode(pinned); got != "w1" {
		t.Errorf("pinned: %q", got)
	}
	pinned.Spec.NodeName = "w2"
	if got := TargetNode(pinned); got != "w2" {
		t.Errorf("bound: %q", got)
	}
	if got := TargetNode(&corev1.Pod{}); got != "" {
		t.Errorf("neither: %q", got)
	}
}
