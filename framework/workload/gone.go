package workload

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"

	"github.com/nodeconform/nodeconform/framework/cost"
)

// WaitNone waits until none of the objects lw lists satisfies left (nil:
// until lw lists nothing). It lists once and then watches, so it returns
// as the last one goes instead of up to a poll interval later, and it
// re-lists by itself when a watch breaks. When ctx ends first, it returns
// the keys (namespace/name) of the objects still left, sorted, or, if no
// list ever succeeded, the last list's error.
func WaitNone(ctx context.Context, lw *cache.ListWatch, objType runtime.Object, left func(obj any) bool) ([]string, error) {
	var mu sync.Mutex
	var listErr error
	list := lw.ListWithContextFunc
	recorded := *lw
	recorded.ListWithContextFunc = func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
		obj, err := list(ctx, o)
		mu.Lock()
		listErr = err
		mu.Unlock()
		return obj, err
	}
	var store cache.Store
	remaining := func() []string {
		var out []string
		for _, o := range store.List() {
			if left == nil || left(o) {
				k, _ := cache.MetaNamespaceKeyFunc(o)
				out = append(out, k)
			}
		}
		sort.Strings(out)
		return out
	}
	// The informer updates its store before it passes an event on, so
	// the store holds at least what the event says.
	_, err := watchtools.UntilWithSync(ctx, listThenWatch{&recorded}, objType,
		func(s cache.Store) (bool, error) {
			store = s
			return len(remaining()) == 0, nil
		},
		func(watch.Event) (bool, error) { return len(remaining()) == 0, nil })
	if err == nil {
		return nil, nil
	}
	if store == nil {
		mu.Lock()
		defer mu.Unlock()
		if listErr != nil {
			return nil, fmt.Errorf("%w (last list: %w)", err, listErr)
		}
		return nil, err
	}
	return remaining(), err
}

// listThenWatch asks the reflector for a plain list, then a watch, instead
// of client-go's streamed watch-list: the lists here are small, every
// API server serves both, and it is the path the unit tests exercise.
type listThenWatch struct{ *cache.ListWatch }

// IsWatchListSemanticsUnSupported is what client-go's reflector asks
// (util/watchlist.DoesClientNotSupportWatchListSemantics).
func (listThenWatch) IsWatchListSemanticsUnSupported() bool { return true }

// PodsOf lists and watches the pods of namespace ns that match sel (as
// Namespaces does; the zero ListOptions: every pod).
func PodsOf(cs kubernetes.Interface, ns string, sel metav1.ListOptions) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return cs.CoreV1().Pods(ns).List(ctx, withSelector(o, sel))
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return cs.CoreV1().Pods(ns).Watch(ctx, withSelector(o, sel))
		},
	}
}

// withSelector is o, the reflector's options, with sel's selectors.
func withSelector(o, sel metav1.ListOptions) metav1.ListOptions {
	o.LabelSelector, o.FieldSelector = sel.LabelSelector, sel.FieldSelector
	return o
}

// Namespaces lists and watches the namespaces that match sel (a label
// selector, or a field selector such as metadata.name=x).
func Namespaces(cs kubernetes.Interface, sel metav1.ListOptions) *cache.ListWatch {
	return &cache.ListWatch{
		ListWithContextFunc: func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return cs.CoreV1().Namespaces().List(ctx, withSelector(o, sel))
		},
		WatchFuncWithContext: func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return cs.CoreV1().Namespaces().Watch(ctx, withSelector(o, sel))
		},
	}
}

// WaitPodsGone waits until namespace ns has no pod left, within timeout.
func WaitPodsGone(ctx context.Context, cs kubernetes.Interface, ns string, timeout time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	left, err := WaitNone(wctx, PodsOf(cs, ns, metav1.ListOptions{}), &corev1.Pod{}, nil)
	if err != nil {
		return fmt.Errorf("pods of namespace %s still there after %s: %s: %w", ns, timeout, strings.Join(left, ", "), err)
	}
	return nil
}

// WaitPod watches pod ns/name until done says it is done or fails, within
// timeout, and returns the pod as last seen. Watching (one pod, by field
// selector) returns as the pod changes instead of up to a poll interval
// later: a spec that waits for several pods in turn lost half an
// interval on each. A pod deleted while watched ends the wait with an
// error; one never seen is waited for until timeout.
func WaitPod(ctx context.Context, cs kubernetes.Interface, ns, name string, timeout time.Duration, done func(*corev1.Pod) (bool, error)) (*corev1.Pod, error) {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	lw := PodsOf(cs, ns, metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	var last *corev1.Pod
	check := func(obj any) (bool, error) {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Name != name {
			return false, nil
		}
		last = p
		return done(p)
	}
	_, err := watchtools.UntilWithSync(wctx, listThenWatch{lw}, &corev1.Pod{},
		func(s cache.Store) (bool, error) {
			obj, exists, err := s.GetByKey(ns + "/" + name)
			// Missing is not final: the reflector's first list may be
			// served from the API server's cache, older than a pod just
			// created; the watch after it brings the pod.
			if err != nil || !exists {
				return false, err
			}
			return check(obj)
		},
		func(ev watch.Event) (bool, error) {
			if p, ok := ev.Object.(*corev1.Pod); ok && p.Name == name && ev.Type == watch.Deleted {
				return false, fmt.Errorf("pod %s/%s was deleted", ns, name)
			}
			return check(ev.Object)
		})
	return last, err
}

// waitNamespaceGone waits until namespace name no longer exists.
func waitNamespaceGone(ctx context.Context, cs kubernetes.Interface, name string, timeout time.Duration) error {
	defer cost.Time(cost.PhaseNamespaceGone, time.Now())
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	sel := metav1.ListOptions{FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()}
	if _, err := WaitNone(wctx, Namespaces(cs, sel), &corev1.Namespace{}, nil); err != nil {
		return fmt.Errorf("namespace %s still exists after %s: %w", name, timeout, err)
	}
	return nil
}
