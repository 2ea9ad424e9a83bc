package nodeaccess

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/nodeconform/nodeconform/framework/workload"
)

// A node with no probe pod is put to admission as a dry run: one whose pod
// admission refuses is a Problem in admission's words, one whose pod it
// accepts is waited for until the wait's timeout. A node with a pod, bound
// or not yet, is left to the pod's own wait, and a node the DaemonSet does
// not target (not Linux) is not named.
func TestNotCreated(t *testing.T) {
	node := func(name, os string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelOSStable: os}}}
	}
	pod := func(name, node string, bound, deleted bool) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": DaemonSetName}}}
		workload.PinToNode(p, node)
		if bound {
			p.Spec.NodeName = node
		}
		if deleted {
			now := metav1.NewTime(time.Now())
			p.DeletionTimestamp = &now
			p.Finalizers = []string{"x"}
		}
		return p
	}
	ds := daemonSet("ns", "probe:x")
	for _, final := range []bool{false, true} {
		cs := fake.NewClientset(node("a", "linux"), node("b", "linux"), node("c", "linux"), node("d", "linux"), node("w", "windows"),
			pod("p1", "a", true, false), pod("p2", "b", false, false), pod("p3", "d", true, true))
		var asked []string
		cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			c := a.(k8stesting.CreateActionImpl)
			if !slicesEqual(c.CreateOptions.DryRun, []string{metav1.DryRunAll}) {
				t.Errorf("a create that is not a dry run")
			}
			n := workload.TargetNode(c.GetObject().(*corev1.Pod))
			asked = append(asked, n)
			if n == "c" {
				return true, nil, errors.New(`pods "nodeconform-probe-x" is forbidden: ValidatingAdmissionPolicy 'p' denied request: not on c`)
			}
			return true, c.GetObject(), nil
		})
		p := &Probes{Namespace: "ns", pods: map[string]string{}, cs: cs}
		list, err := cs.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		stuck := map[string]string{"b": "probe pod p2 not Ready: not scheduled"}
		waiting, err := p.notCreated(context.Background(), ds, list.Items, stuck, "FailedCreate: denied (×3)", final)
		if err != nil {
			t.Fatal(err)
		}
		if !slicesEqual(asked, []string{"c", "d"}) {
			t.Errorf("final %v: dry runs for %v, want c and d", final, asked)
		}
		if stuck["b"] != "probe pod p2 not Ready: not scheduled" || !strings.Contains(stuck["c"], "admission refuses it") || !strings.HasSuffix(stuck["c"], "not on c") {
			t.Errorf("final %v: stuck %v", final, stuck)
		}
		switch {
		case !final && (waiting != 1 || len(stuck) != 2):
			t.Errorf("before the timeout: waiting %d, stuck %v", waiting, stuck)
		case final && (waiting != 0 || !strings.HasSuffix(stuck["d"], "FailedCreate: denied (×3)")):
			t.Errorf("at the timeout: waiting %d, stuck %v", waiting, stuck)
		}
	}
}

func slicesEqual(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// At the wait's timeout, a node the DaemonSet controller made no pod for
// (its pod admitted by a dry run, so not a refusal) is a Problem and the
// nodes with a Ready probe are usable: the wait does not fail them all.
func TestWaitReadyNamesANodeWithoutAPodAtTheTimeout(t *testing.T) {
	node := func(name string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelOSStable: "linux"}}}
	}
	ready := func(name, node string) *corev1.Pod {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "ns", Labels: map[string]string{"app": DaemonSetName}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
		workload.PinToNode(p, node)
		p.Spec.NodeName = node
		return p
	}
	ds := daemonSet("ns", "probe:x")
	ds.Status = appsv1.DaemonSetStatus{DesiredNumberScheduled: 3, CurrentNumberScheduled: 2, UpdatedNumberScheduled: 2, NumberReady: 2}
	cs := fake.NewClientset(node("a"), node("b"), node("c"), ready("p1", "a"), ready("p2", "b"), ds)
	cs.PrependReactor("create", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
		return true, a.(k8stesting.CreateActionImpl).GetObject(), nil
	})
	p := &Probes{Namespace: "ns", pods: map[string]string{}, cs: cs}
	if err := p.waitReady(context.Background(), time.Second); err != nil {
		t.Fatal(err)
	}
	if p.Ready() != 2 || len(p.Problems) != 1 || !strings.Contains(p.Problems["c"], "no probe pod made on the node within the wait") {
		t.Fatalf("ready %v, problems %v", p.Nodes(), p.Problems)
	}
}
