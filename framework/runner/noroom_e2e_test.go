package runner

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeconform/nodeconform/framework/workload"
)

// TestProbeFindsNoRoomOnOneNode runs on a cluster with a worker whose CPU
// is requested in full by a workload (production nodes are often packed
// so): the probe's pod does not fit there.
//   - Before: the probe had priority system-node-critical, so the
//     scheduler evicted the workload to make room (and GKE refuses such
//     pods outside kube-system without a quota for them).
//   - Now: the probe has no priority class, the workload stays, and once
//     the pod has been unschedulable for workload.UnschedulableAfter the
//     worker is a node that cannot be examined, named with the
//     scheduler's reason, while the other nodes are judged.
func TestProbeFindsNoRoomOnOneNode(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run on the kind cluster (make findings-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cs := kindClient(t)
	full := workers(ctx, t, cs)[0]
	// A killed run's filler would keep the worker full for every later run.
	const fillPrefix = "nodeconform-e2e-fill-"
	left, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: workload.ManagedLabel})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range left.Items {
		if strings.HasPrefix(n.Name, fillPrefix) {
			if err := workload.DeleteNamespace(ctx, cs, n.Name, 2*time.Minute); err != nil {
				t.Fatal(err)
			}
		}
	}
	node, err := cs.CoreV1().Nodes().Get(ctx, full, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + full})
	if err != nil {
		t.Fatal(err)
	}
	free := node.Status.Allocatable.Cpu().MilliValue()
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			continue
		}
		// As the scheduler counts: the containers' sum or the largest init
		// container, whichever is more, and the pod's overhead.
		var sum, initMax int64
		for _, c := range p.Spec.Containers {
			sum += c.Resources.Requests.Cpu().MilliValue()
		}
		for _, c := range p.Spec.InitContainers {
			initMax = max(initMax, c.Resources.Requests.Cpu().MilliValue())
		}
		free -= max(sum, initMax) + p.Spec.Overhead.Cpu().MilliValue()
	}
	// The probe asks 5m: leave it 2m.
	if free <= 2 {
		t.Fatalf("%s has %dm of CPU unrequested: nothing to fill", full, free)
	}
	ns, err := workload.CreateNamespace(ctx, workload.NamespaceInput{Clientset: cs, Prefix: strings.TrimSuffix(strings.TrimPrefix(fillPrefix, "nodeconform-"), "-"), PodSecurity: "baseline"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = workload.DeleteNamespace(context.Background(), cs, ns.Name, 2*time.Minute) })
	filler := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "filler", Namespace: ns.Name}, Spec: corev1.PodSpec{NodeName: full,
		Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10.2", ImagePullPolicy: corev1.PullNever,
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: *resource.NewMilliQuantity(free-2, resource.DecimalSI)}}}}}}
	created, err := cs.CoreV1().Pods(ns.Name).Create(ctx, filler, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := workload.WaitReady(ctx, cs, created, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	failsOneNode(ctx, t, cs, "no-room", "primitives", full, "Insufficient cpu")
	p, err := cs.CoreV1().Pods(ns.Name).Get(ctx, "filler", metav1.GetOptions{})
	if err != nil || p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
		t.Errorf("the workload on %s was not left alone: %v %v", full, err, workload.Describe(ctx, cs, ns.Name, "filler"))
	}
}
