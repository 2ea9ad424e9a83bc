package workload

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
)

func pod(name, rv string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: rv}}
}

// stub lists items once and then serves w.
func stub(items []corev1.Pod, w watch.Interface, listErr error) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(context.Context, metav1.ListOptions) (runtime.Object, error) {
			if listErr != nil {
				return nil, listErr
			}
			return &corev1.PodList{ListMeta: metav1.ListMeta{ResourceVersion: "10"}, Items: items}, nil
		},
		WatchFuncWithContext: func(context.Context, metav1.ListOptions) (watch.Interface, error) { return w, nil },
	}
}

// waitInBackground runs WaitNone over items and then w's events.
func waitInBackground(t *testing.T, items []corev1.Pod, w watch.Interface, left func(any) bool) <-chan error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	done := make(chan error, 1)
	go func() {
		_, err := WaitNone(ctx, stub(items, w, nil), &corev1.Pod{}, left)
		done <- err
	}()
	return done
}

// stillWaiting fails if the wait returned within 200 ms.
func stillWaiting(t *testing.T, done <-chan error, why string) {
	t.Helper()
	select {
	case err := <-done:
		t.Fatalf("returned with %s: %v", why, err)
	case <-time.After(200 * time.Millisecond):
	}
}

// returned fails unless the wait returns without error within 5 s.
func returned(t *testing.T, done <-chan error, after string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("did not return after %s", after)
	}
}

func TestWaitNoneReturnsWhenTheLastGoes(t *testing.T) {
	w := watch.NewFake()
	done := waitInBackground(t, []corev1.Pod{*pod("a", "1"), *pod("b", "2")}, w, nil)
	w.Delete(pod("a", "11"))
	stillWaiting(t, done, "b still there")
	w.Delete(pod("b", "12"))
	returned(t, done, "the last pod went")
}

func TestWaitNoneEmptyAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if left, err := WaitNone(ctx, stub(nil, watch.NewFake(), nil), &corev1.Pod{}, nil); err != nil || left != nil {
		t.Fatalf("got %v, %v", left, err)
	}
}

// Only what left selects is waited for: a namespace not being deleted
// does not hold the wait, one whose deletion starts later does.
func TestWaitNoneOnlyWhatLeftSelects(t *testing.T) {
	terminating := func(o any) bool { return o.(*corev1.Pod).DeletionTimestamp != nil }
	now := metav1.Now()
	dying := pod("dying", "1")
	dying.DeletionTimestamp = &now
	w := watch.NewFake()
	done := waitInBackground(t, []corev1.Pod{*pod("live", "2"), *dying}, w, terminating)
	late := pod("live", "11")
	late.DeletionTimestamp = &now
	w.Modify(late)
	w.Delete(pod("dying", "12"))
	stillWaiting(t, done, "live being deleted")
	w.Delete(pod("live", "13"))
	returned(t, done, "live went")
}

func TestWaitNoneNamesWhatIsLeft(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	left, err := WaitNone(ctx, stub([]corev1.Pod{*pod("b", "1"), *pod("a", "2")}, watch.NewFake(), nil), &corev1.Pod{}, nil)
	if err == nil {
		t.Fatal("no error with pods left")
	}
	if want := []string{"ns/a", "ns/b"}; !reflect.DeepEqual(left, want) {
		t.Fatalf("left %v, want %v", left, want)
	}
}

func TestWaitNoneNamesTheListError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := WaitNone(ctx, stub(nil, nil, errors.New(`pods is forbidden: User "x" cannot list`)), &corev1.Pod{}, nil)
	if err == nil || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("want the list error, got %v", err)
	}
}

func readyPod(name string, ready corev1.ConditionStatus, phase corev1.PodPhase) *corev1.Pod {
	p := pod(name, "")
	p.Status.Phase = phase
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}}
	return p
}

// waitPodInBackground runs waitReady on pod "a" of cs.
func waitPodInBackground(t *testing.T, cs *fake.Clientset) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := waitReady(context.Background(), cs, pod("a", ""), 5*time.Second)
		done <- err
	}()
	return done
}

func TestWaitReadyReturnsWhenThePodTurnsReady(t *testing.T) {
	cs := fake.NewClientset(readyPod("a", corev1.ConditionFalse, corev1.PodPending), readyPod("b", corev1.ConditionTrue, corev1.PodRunning))
	done := waitPodInBackground(t, cs)
	stillWaiting(t, done, "a not Ready (b is)")
	if _, err := cs.CoreV1().Pods("ns").UpdateStatus(context.Background(), readyPod("a", corev1.ConditionTrue, corev1.PodRunning), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	returned(t, done, "a turned Ready")
}

// A pod that ended, or went, can never be Ready: the wait says so at once.
func TestWaitReadyFailsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(cs *fake.Clientset) error
		want   string
	}{
		{"ended", func(cs *fake.Clientset) error {
			_, err := cs.CoreV1().Pods("ns").UpdateStatus(context.Background(), readyPod("a", corev1.ConditionFalse, corev1.PodFailed), metav1.UpdateOptions{})
			return err
		}, "phase Failed"},
		{"deleted", func(cs *fake.Clientset) error {
			return cs.CoreV1().Pods("ns").Delete(context.Background(), "a", metav1.DeleteOptions{})
		}, "was deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset(readyPod("a", corev1.ConditionFalse, corev1.PodPending))
			done := waitPodInBackground(t, cs)
			stillWaiting(t, done, "a pending")
			if err := tc.change(cs); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("got %v, want an error saying %q", err, tc.want)
				}
			case <-time.After(3 * time.Second):
				t.Fatal("still waiting")
			}
		})
	}
}

// A pod the first list does not show may come with the watch (a list
// served from the API server's cache); a pod that never comes times out.
func TestWaitReadyPodCreatedAfterTheList(t *testing.T) {
	cs := fake.NewClientset()
	done := waitPodInBackground(t, cs)
	stillWaiting(t, done, "no pod yet")
	if _, err := cs.CoreV1().Pods("ns").Create(context.Background(), readyPod("a", corev1.ConditionTrue, corev1.PodRunning), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	returned(t, done, "a created Ready")
	_, err := waitReady(context.Background(), fake.NewClientset(), pod("a", ""), 300*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "not Ready within") {
		t.Fatalf("got %v, want a timeout", err)
	}
}

// Callers read spec.nodeName from the pod they passed, as they did when
// e2e-framework's condition fetched the pod into it.
func TestWaitReadyFillsInThePod(t *testing.T) {
	ready := readyPod("a", corev1.ConditionTrue, corev1.PodRunning)
	ready.Spec.NodeName = "worker"
	p := pod("a", "")
	if _, err := waitReady(context.Background(), fake.NewClientset(ready), p, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if p.Spec.NodeName != "worker" {
		t.Fatalf("spec.nodeName %q, want worker", p.Spec.NodeName)
	}
}

// A pod the kubelet cannot start (a create refused at every attempt) is
// given up on after its share of the timeout, with the reason; one that
// failed only once is waited for.
func TestWaitReadyGivesUpOnAHopelessPod(t *testing.T) {
	defer func(p time.Duration) { hopelessPoll = p }(hopelessPoll)
	hopelessPoll = 20 * time.Millisecond
	const refused = `path "/mnt/x" is mounted on "/" but it is not a shared mount`
	stuck := readyPod("a", corev1.ConditionFalse, corev1.PodPending)
	stuck.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "probe", State: corev1.ContainerState{
		Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerError", Message: refused}}}}
	failed := func(name string) *corev1.Event {
		return &corev1.Event{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name},
			InvolvedObject: corev1.ObjectReference{Kind: "Pod", Namespace: "ns", Name: "a"},
			Type:           corev1.EventTypeWarning, Reason: "Failed", Message: "Error: " + refused}
	}
	for _, tc := range []struct {
		name    string
		events  int
		want    string
		notWant string
	}{
		{"refused twice", 2, "will not start: container probe: CreateContainerError", "not Ready within"},
		{"refused once", 1, "not Ready within", "will not start"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := fake.NewClientset(stuck.DeepCopy())
			for i := 0; i < tc.events; i++ {
				if _, err := cs.CoreV1().Events("ns").Create(context.Background(), failed(fmt.Sprintf("e%d", i)), metav1.CreateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			_, err := waitReady(context.Background(), cs, pod("a", ""), 1600*time.Millisecond)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), tc.notWant) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			if hopeless := tc.events >= 2; IsHopeless(err) != hopeless {
				t.Fatalf("IsHopeless(%v) = %v, want %v", err, !hopeless, hopeless)
			}
			if took := time.Since(start); tc.want != "not Ready within" && took > time.Second {
				t.Fatalf("gave up after %s, want about 1600ms/%d", took, hopelessShare)
			}
		})
	}
}

// A pod bound to a node that is not Ready is deleted with no grace period
// (its kubelet would never confirm it); the others are left to their
// kubelets.
func TestForceOnNodesNotReady(t *testing.T) {
	node := func(name string, ready corev1.ConditionStatus) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name},
			Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: ready}}}}
	}
	pod := func(name, node string) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name}, Spec: corev1.PodSpec{NodeName: node}}
	}
	cs := fake.NewClientset(node("up", corev1.ConditionTrue), node("down", corev1.ConditionUnknown),
		pod("on-up", "up"), pod("on-down", "down"), pod("unbound", ""))
	forceOnNodesNotReady(context.Background(), cs, "ns")
	left, err := cs.CoreV1().Pods("ns").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range left.Items {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "on-up,unbound" {
		t.Fatalf("pods left: %v, want on-up and unbound", names)
	}
}
