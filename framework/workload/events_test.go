package workload

import (
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestSummarizeEvents(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	id := func(c byte) string { return strings.Repeat(string(c), 64) }
	ev := func(sec int, typ, reason, msg string, count int32) corev1.Event {
		return corev1.Event{Type: typ, Reason: reason, Message: msg, Count: count, LastTimestamp: metav1.NewTime(t0.Add(time.Duration(sec) * time.Second))}
	}
	notShared := `failed to generate container "%s" spec: path "/run/x" is mounted on "/run" but it is not a shared mount`
	events := []corev1.Event{
		// Listed out of order, as the API server may return them.
		ev(30, "Warning", "Failed", "Error: "+strings.Replace(notShared, "%s", id('b'), 1), 1),
		ev(1, "Normal", "Scheduled", "Successfully assigned ns/p to node-2", 1),
		ev(10, "Warning", "Failed", "Error: "+strings.Replace(notShared, "%s", id('a'), 1), 1),
		ev(5, "Normal", "Pulled", "Container image \"probe\" already present on machine", 3),
		ev(60, "Warning", "Failed", "(combined from similar events): Error: "+strings.Replace(notShared, "%s", id('c'), 1), 4),
		// An events.k8s.io series: its last observation orders it.
		{Type: "Normal", Reason: "Started", Message: "Started container c3", EventTime: metav1.NewMicroTime(t0),
			Series: &corev1.EventSeries{Count: 2, LastObservedTime: metav1.NewMicroTime(t0.Add(7 * time.Second))}},
	}
	got := SummarizeEvents(events)
	want := []string{
		"Normal Scheduled: Successfully assigned ns/p to node-2",
		"Normal Pulled: Container image \"probe\" already present on machine (×3)",
		"Normal Started: Started container c3 (×2)",
		"Warning Failed: Error: " + strings.Replace(notShared, "%s", "…", 1) + " (×6)",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("SummarizeEvents =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if got := SummarizeEvents(nil); len(got) != 0 {
		t.Errorf("SummarizeEvents(nil) = %q, want none", got)
	}
}
