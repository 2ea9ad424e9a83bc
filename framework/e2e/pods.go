package e2e

import (
	"context"
	"fmt"
	"strings"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"

	"github.com/nodeconform/nodeconform/framework/workload"
)

// ExpectRestartedAfter waits (timeouts.podReady for the start, as much
// again after it) until the pod's first container was restarted after
// terminating with reason (e.g. OOMKilled) and returns its status. It
// watches the pod (workload.WaitPod), so the restart is seen as it
// happens rather than up to a poll interval later.
func (e *Env) ExpectRestartedAfter(ctx context.Context, g gomega.Gomega, ns, pod, reason string) corev1.ContainerStatus {
	return e.expectContainer(ctx, g, ns, pod, "restarted after "+reason, func(s corev1.ContainerStatus) bool {
		t := s.LastTerminationState.Terminated
		return t != nil && s.RestartCount > 0 && t.Reason == reason
	})
}

// ExpectTerminated waits (timeouts.podReady for the start, as much again
// after it) until the kubelet reports the pod's first container
// terminated with reason, before a restart (its state) or after one (its
// last termination), and returns its status: for a spec whose property
// is the termination, not the restart, which a sandboxed runtime may take
// many seconds more to make.
func (e *Env) ExpectTerminated(ctx context.Context, g gomega.Gomega, ns, pod, reason string) corev1.ContainerStatus {
	return e.expectContainer(ctx, g, ns, pod, "terminated with "+reason, func(s corev1.ContainerStatus) bool {
		return terminatedWith(s, reason)
	})
}

// terminatedWith reports whether a container's current state or last
// termination is a termination with reason.
func terminatedWith(s corev1.ContainerStatus, reason string) bool {
	for _, t := range []*corev1.ContainerStateTerminated{s.State.Terminated, s.LastTerminationState.Terminated} {
		if t != nil && t.Reason == reason {
			return true
		}
	}
	return false
}

// expectContainer watches the pod until its own container's status
// (workload.MainContainerStatus, not a sidecar's) satisfies done, and
// fails g naming what was last seen if it does not.
// The wait has two budgets of timeouts.podReady each: one for the
// container to start, one from then on for done. A sandbox that took
// most of the first to start (3 minutes for gVisor under QEMU/TCG beside
// three other sandboxes' boots) still has the whole second to, say,
// allocate past its limit, which took 30 s there alone.
func (e *Env) expectContainer(ctx context.Context, g gomega.Gomega, ns, pod, what string, done func(corev1.ContainerStatus) bool) corev1.ContainerStatus {
	var status corev1.ContainerStatus
	seen := "pod not seen"
	timeout := e.Config.Timeouts.PodReady.Duration
	// The start's wait gives up on a pod the kubelet cannot start
	// (workload.Hopeless); the wait after it needs no such judge.
	watch := func(starting bool, until func(corev1.ContainerStatus) bool) error {
		wait := workload.WaitPod
		if starting {
			wait = workload.WaitStarting
		}
		_, err := wait(ctx, e.Clientset, ns, pod, timeout, func(p *corev1.Pod) (bool, error) {
			st, ok := workload.MainContainerStatus(p)
			if !ok {
				seen = fmt.Sprintf("phase %s %s %s, no container status (%s)", p.Status.Phase, p.Status.Reason, p.Status.Message, podConditions(p))
				return false, nil
			}
			status = st
			seen = containerState(status)
			return until(status), nil
		})
		return err
	}
	err := watch(true, func(s corev1.ContainerStatus) bool { return done(s) || started(s) })
	g.Expect(err).NotTo(gomega.HaveOccurred(), "pod %s/%s: its container did not start (in at most %s, waiting until %s); last seen: %s", ns, pod, timeout, what, seen)
	if !done(status) {
		err = watch(false, done)
	}
	g.Expect(err).NotTo(gomega.HaveOccurred(), "pod %s/%s: not %s within %s of its container's start; last seen: %s", ns, pod, what, timeout, seen)
	return status
}

// started reports whether a container has run at all.
func started(s corev1.ContainerStatus) bool {
	return s.State.Running != nil || s.State.Terminated != nil || s.LastTerminationState.Terminated != nil || s.RestartCount > 0
}

// containerState is a container status in one line, for failure messages.
func containerState(s corev1.ContainerStatus) string {
	out := fmt.Sprintf("restarts %d", s.RestartCount)
	describe := func(label string, st corev1.ContainerState) {
		switch {
		case st.Terminated != nil:
			out += fmt.Sprintf(", %s terminated %s (exit %d, signal %d) %s", label, st.Terminated.Reason, st.Terminated.ExitCode, st.Terminated.Signal, st.Terminated.Message)
		case st.Waiting != nil:
			out += fmt.Sprintf(", %s waiting %s %s", label, st.Waiting.Reason, st.Waiting.Message)
		case st.Running != nil:
			out += fmt.Sprintf(", %s running since %s", label, st.Running.StartedAt.Format("15:04:05"))
		}
	}
	describe("now", s.State)
	describe("last", s.LastTerminationState)
	return out
}

func podConditions(p *corev1.Pod) string {
	var parts []string
	for _, c := range p.Status.Conditions {
		parts = append(parts, fmt.Sprintf("%s=%s %s", c.Type, c.Status, c.Message))
	}
	return strings.Join(parts, "; ")
}
