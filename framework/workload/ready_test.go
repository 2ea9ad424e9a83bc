package workload

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestReadySince(t *testing.T) {
	seen := time.Date(2026, 12, 3, 23, 0, 10, 500_000_000, time.UTC)
	pod := func(status corev1.ConditionStatus, at time.Time) *corev1.Pod {
		return &corev1.Pod{Status: corev1.PodStatus{Conditions: []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at.Add(-time.Minute))},
			{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.NewTime(at)},
		}}}
	}
	for _, c := range []struct {
		name string
		p    *corev1.Pod
		want time.Time
	}{
		{"ready seconds before it was seen: the condition's second, rounded up", pod(corev1.ConditionTrue, seen.Add(-4*time.Second).Truncate(time.Second)), seen.Add(-3 * time.Second).Truncate(time.Second)},
		{"ready in the second it was seen: never later than seen", pod(corev1.ConditionTrue, seen.Truncate(time.Second)), seen},
		{"not ready: seen", pod(corev1.ConditionFalse, seen.Add(-4*time.Second)), seen},
		{"no conditions: seen", &corev1.Pod{}, seen},
	} {
		if got := ReadySince(c.p, seen); !got.Equal(c.want) {
			t.Errorf("%s: ReadySince = %s, want %s", c.name, got, c.want)
		}
	}
}
