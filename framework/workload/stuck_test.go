package workload

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
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
