package nodeaccess

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// A node the DaemonSet controller made no probe pod for is a Problem
// naming the refusal; a node with a pod (Ready or not) is left to the
// pod's own wait, and a node the DaemonSet does not target (not Linux) is
// not named.
func TestNotCreated(t *testing.T) {
	node := func(name, os string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelOSStable: os}}}
	}
	pod := func(name, node string, deleted bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": DaemonSetName}}, Spec: corev1.PodSpec{NodeName: node}}
		if deleted {
			now := metav1.NewTime(time.Now())
			p.DeletionTimestamp = &now
			p.Finalizers = []string{"x"}
		}
		return p
	}
	cs := fake.NewClientset(node("a", "linux"), node("b", "linux"), node("c", "linux"), node("d", "linux"), node("w", "windows"),
		pod("p1", "a", false), pod("p2", "b", false), pod("p3", "d", true))
	p := &Probes{Namespace: "ns", pods: map[string]string{}, cs: cs}
	stuck := map[string]string{"b": "probe pod p2 not Ready: no sandbox"}
	if err := p.notCreated(context.Background(), stuck, "FailedCreate: denied"); err != nil {
		t.Fatal(err)
	}
	if len(stuck) != 3 || stuck["b"] != "probe pod p2 not Ready: no sandbox" {
		t.Fatalf("stuck: %v", stuck)
	}
	for _, n := range []string{"c", "d"} {
		if !strings.Contains(stuck[n], "cannot create it") || !strings.HasSuffix(stuck[n], "FailedCreate: denied") {
			t.Errorf("node %s: %q", n, stuck[n])
		}
	}
}
