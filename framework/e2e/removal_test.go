package e2e

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// A dead run's namespace that has been terminating for longer than a
// runner waits is stuck: its pods are forced out and it is waited for; a
// younger one is a runner's deferred deletion and is left alone.
func TestRemoveRunEndsStuckNamespaces(t *testing.T) {
	const run = "r1"
	ns := func(name string, deleted time.Duration) *corev1.Namespace {
		n := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{RunLabel: run}}}
		if deleted > 0 {
			n.DeletionTimestamp = &metav1.Time{Time: time.Now().Add(-deleted)}
			n.Finalizers = []string{"kubernetes"}
		}
		return n
	}
	stuckPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "old", Name: "probe", DeletionTimestamp: &metav1.Time{Time: time.Now().Add(-10 * time.Minute)}, Finalizers: []string{"x"}}}
	kinds := map[schema.GroupVersionResource]string{}
	for _, gvr := range runScopedKinds {
		kinds[gvr] = gvr.Resource + "List"
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kinds)

	t.Run("report only", func(t *testing.T) {
		cs := fake.NewClientset(ns("old", 10*time.Minute), ns("young", 10*time.Second), ns("live", 0), stuckPod)
		found, err := removeRun(context.Background(), cs, dyn, run, removal{ReportOnly: true, SkipTerminating: true, StuckAfter: 2 * time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		got := strings.Join(found, "; ")
		if !strings.Contains(got, "namespace/old (stuck: being deleted for 10m0s)") || !strings.Contains(got, "namespace/live") || strings.Contains(got, "young") {
			t.Fatalf("found %q: want old as stuck, live, and not young", got)
		}
	})
	t.Run("without StuckAfter every terminating namespace is left", func(t *testing.T) {
		cs := fake.NewClientset(ns("old", 10*time.Minute), stuckPod)
		found, err := removeRun(context.Background(), cs, dyn, run, removal{ReportOnly: true, SkipTerminating: true})
		if err != nil || len(found) != 0 {
			t.Fatalf("found %q, %v: want nothing", found, err)
		}
	})
	t.Run("forced out", func(t *testing.T) {
		cs := fake.NewClientset(ns("old", 10*time.Minute), stuckPod)
		var grace *int64
		// The namespace controller's part: the namespace goes once its
		// pods are gone.
		cs.PrependReactor("delete-collection", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			grace = a.(k8stesting.DeleteCollectionActionImpl).DeleteOptions.GracePeriodSeconds
			go func() { _ = cs.Tracker().Delete(corev1.SchemeGroupVersion.WithResource("namespaces"), "", "old") }()
			return true, nil, nil
		})
		found, err := removeRun(context.Background(), cs, dyn, run, removal{SkipTerminating: true, StuckAfter: 2 * time.Minute, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if len(found) != 1 || grace == nil || *grace != 0 {
			t.Fatalf("found %q, pods deleted with grace %v: want the stuck namespace, its pods deleted with grace 0", found, grace)
		}
		if _, err := cs.CoreV1().Namespaces().Get(context.Background(), "old", metav1.GetOptions{}); err == nil {
			t.Fatal("namespace old is still there")
		}
	})
}

// Credentials that may not list a labelled cluster-scoped kind (a
// least-privilege verify-mode account and NodeFeatureRules) still
// remove the run's namespaces: the forbidden list ended removeRun before
// them, and such a run left every namespace behind (seen on the
// production-like target, 2026-12-07).
func TestRemoveRunPastAForbiddenKind(t *testing.T) {
	const run = "r1"
	kinds := map[schema.GroupVersionResource]string{}
	for _, gvr := range runScopedKinds {
		kinds[gvr] = gvr.Resource + "List"
	}
	dyn := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kinds)
	dyn.PrependReactor("list", "nodefeaturerules", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "nfd.k8s-sigs.io", Resource: "nodefeaturerules"}, "", errors.New("no"))
	})
	cs := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "mine", Labels: map[string]string{RunLabel: run}}})
	found, err := removeRun(context.Background(), cs, dyn, run, removal{NoWait: true})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(found, ";") != "namespace/mine" {
		t.Fatalf("found %v, want the run's namespace", found)
	}
	var deleted bool
	for _, a := range cs.Actions() {
		deleted = deleted || (a.GetVerb() == "delete" && a.GetResource().Resource == "namespaces")
	}
	if !deleted {
		t.Error("the run's namespace was not deleted")
	}
}
