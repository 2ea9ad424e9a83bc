package e2e

import (
	"context"

	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ExpectRestartedAfter waits (timeouts.podReady) until the pod's first
// container was restarted after terminating with reason (e.g. OOMKilled)
// and returns its status.
func (e *Env) ExpectRestartedAfter(ctx context.Context, g gomega.Gomega, ns, pod, reason string) corev1.ContainerStatus {
	var status corev1.ContainerStatus
	g.Eventually(ctx, func(ctx context.Context) string {
		got, err := e.Clientset.CoreV1().Pods(ns).Get(ctx, pod, metav1.GetOptions{})
		if err != nil || len(got.Status.ContainerStatuses) == 0 {
			return ""
		}
		status = got.Status.ContainerStatuses[0]
		if t := status.LastTerminationState.Terminated; t != nil && status.RestartCount > 0 {
			return t.Reason
		}
		return ""
	}).WithTimeout(e.Config.Timeouts.PodReady.Duration).WithPolling(e.Config.Intervals.Poll.Duration).Should(gomega.Equal(reason), "pod %s/%s restarted after %s", ns, pod, reason)
	return status
}
