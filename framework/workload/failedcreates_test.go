package workload

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// The DaemonSet controller's refusals are what a probe that never got a
// pod fails with, each once.
func TestFailedCreates(t *testing.T) {
	ev := func(typ, reason, msg string) corev1.Event {
		return corev1.Event{Type: typ, Reason: reason, Message: msg, Count: 1}
	}
	got := FailedCreates([]corev1.Event{
		ev(corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: p"),
		ev(corev1.EventTypeWarning, "FailedCreate", `Error creating: pods "p-abcde" is forbidden: denied`),
		ev(corev1.EventTypeWarning, "FailedCreate", `Error creating: pods "p-fghij" is forbidden: denied`),
	})
	if !strings.Contains(got, "forbidden: denied") || strings.Contains(got, "SuccessfulCreate") || strings.Count(got, "forbidden") != 1 {
		t.Fatalf("got %q", got)
	}
	if FailedCreates([]corev1.Event{ev(corev1.EventTypeNormal, "SuccessfulCreate", "Created pod: p")}) != "" {
		t.Fatal("no refusal: want empty")
	}
}
