package e2e

import (
	"context"
	"fmt"
	"strings"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ExpectRestartedAfter waits (timeouts.podReady) until the pod's first
// container was restarted after terminating with reason (e.g. OOMKilled)
// and returns its status.
func (e *Env) ExpectRestartedAfter(ctx context.Context, g gomega.Gomega, ns, pod, reason string) corev1.ContainerStatus {
	var status corev1.ContainerStatus
	var seen string
	g.Eventually(ctx, func(ctx context.Context) string {
		got, err := e.Clientset.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		if err != nil {
			seen = err.Error()
			return ""
		}
		if len(got.Status.ContainerStatuses) == 0 {
			seen = fmt.Sprintf("phase %s %s %s, no container status (%s)", got.Status.Phase, got.Status.Reason, got.Status.Message, podConditions(got))
			return ""
		}
		status = got.Status.ContainerStatuses[0]
		seen = containerState(status)
		if t := status.LastTerminationState.Terminated; t != nil && status.RestartCount > 0 {
			return t.Reason
		}
		return ""
	}).WithTimeout(e.Config.Timeouts.PodReady.Duration).WithPolling(e.Config.Intervals.Poll.Duration).Should(gomega.Equal(reason),
		func() string {
			return fmt.Sprintf("pod %s/%s restarted after %s; last seen: %s", ns, pod, reason, seen)
		})
	return status
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
