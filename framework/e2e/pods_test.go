package e2e

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestTerminatedWith(t *testing.T) {
	oom := &corev1.ContainerStateTerminated{Reason: "OOMKilled", ExitCode: 137}
	errored := &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 1}
	for _, tc := range []struct {
		name string
		s    corev1.ContainerStatus
		want bool
	}{
		{"running, never ended", corev1.ContainerStatus{State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}, false},
		{"ended now, not restarted", corev1.ContainerStatus{State: corev1.ContainerState{Terminated: oom}}, true},
		{"restarted after it", corev1.ContainerStatus{RestartCount: 1, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}, LastTerminationState: corev1.ContainerState{Terminated: oom}}, true},
		{"ended for another reason", corev1.ContainerStatus{State: corev1.ContainerState{Terminated: errored}}, false},
		{"waiting after another reason", corev1.ContainerStatus{RestartCount: 1, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}, LastTerminationState: corev1.ContainerState{Terminated: errored}}, false},
	} {
		if got := terminatedWith(tc.s, "OOMKilled"); got != tc.want {
			t.Errorf("%s: terminatedWith = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// The second budget of expectContainer starts once the container has run.
func TestStarted(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    corev1.ContainerStatus
		want bool
	}{
		{"creating", corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}, false},
		{"running", corev1.ContainerStatus{State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}, true},
		{"ended", corev1.ContainerStatus{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "OOMKilled"}}}, true},
		{"back-off after a run", corev1.ContainerStatus{RestartCount: 1, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}, true},
	} {
		if got := started(tc.s); got != tc.want {
			t.Errorf("%s: started = %v, want %v", tc.name, got, tc.want)
		}
	}
}
