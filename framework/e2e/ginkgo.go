package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	kindcmd "sigs.k8s.io/kind/pkg/cmd"

	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/cost"
	"github.com/nodeconform/nodeconform/framework/nodechange"
	"github.com/nodeconform/nodeconform/framework/workload"
)

// RegisterSuite wires the shared setup into a Ginkgo suite: process 1
// brings the cluster up once, every process connects, and after all
// processes are done any namespace left by an interrupted spec is removed.
// It returns a pointer filled in before the first spec runs.
func RegisterSuite(opts ...SuiteOption) **Env {
	env := new(*Env)
	var lock *clusterLock
	ginkgo.SynchronizedBeforeSuite(func(ctx context.Context) []byte {
		s := SettingsFromEnv()
		id := s.lockID()
		var o suiteOptions
		for _, f := range opts {
			f(&o)
		}
		var err error
		lock, err = lockCluster(ctx, id, TreeConfig().Timeouts.ClusterLock.Duration, o.sharesCluster)
		gomega.Expect(err).NotTo(gomega.HaveOccurred(), "lock the cluster for this suite")
		data, err := Up(ctx, s, nil, opts...)
		if err != nil {
			// The error on the first line: the run's summary shows a
			// failure's first informative line.
			ginkgo.Fail("cluster setup: " + err.Error())
		}
		return data
	}, func(data []byte) {
		e, err := Connect(data)
		if err != nil && ginkgo.GinkgoParallelProcess() == 1 {
			// Nothing else would remove what Up created for this run.
			if aerr := Abandon(context.Background(), data); aerr != nil {
				err = fmt.Errorf("%w; and removing this run's objects failed: %v", err, aerr)
			}
		}
		gomega.Expect(err).NotTo(gomega.HaveOccurred(), "connect to cluster")
		*env = e
	})
	ginkgo.SynchronizedAfterSuite(func() {
		if ginkgo.GinkgoParallelProcess() != 1 {
			writeCost(*env)
		}
	}, func(ctx context.Context) {
		defer lock.release()
		e := *env
		// After the removal: cleanup's requests are part of the cost.
		defer writeCost(e)
		if e == nil {
			return
		}
		cfg := e.Config
		// Anything left in this run's node journals is a revert that did
		// not finish (Ctrl-C while a kubelet restarted, a node that came
		// back late): undo it now, and say so. Removal gets its own
		// deadline, so a slow undo cannot leave the probe behind.
		var undone []string
		var undoErr error
		// A run that never began to record an entry has none to undo:
		// reading every node's journal would cost an exec per node.
		if e.Nodes != nil && e.Mode == "apply" && nodechange.MayHaveWritten(e.RunID) {
			uctx, cancel := context.WithTimeout(ctx, 2*cfg.Timeouts.NodeRestart.Duration)
			undone, undoErr = undoOwn(uctx, e.Nodes, e.RunID, cfg, kindcmd.NewLogger())
			cancel()
			// Left over, the entries are a dead run's: the next run's
			// start replays them without the marker.
			nodechange.ForgetRun(e.RunID)
		}
		if len(undone) > 0 {
			ginkgo.AddReportEntry("undoneAtSuiteEnd", undone)
			fmt.Fprintf(ginkgo.GinkgoWriter, "node changes whose revert had not finished, undone at the suite's end:\n  %s\n", strings.Join(undone, "\n  "))
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Timeouts.NamespaceDeletion.Duration)
		defer cancel()
		removeErr := RemoveLeftovers(rctx, e)
		gomega.Expect(undoErr).NotTo(gomega.HaveOccurred(), "undo node changes left in this run's journal (undone: %v)", undone)
		gomega.Expect(removeErr).NotTo(gomega.HaveOccurred(), "remove this run's objects")
	}, ginkgo.NodeTimeout(2*TreeConfig().Timeouts.NodeRestart.Duration+2*TreeConfig().Timeouts.NamespaceDeletion.Duration))
	return env
}

type suiteOptions struct{ nodeAccess, nfdImage, sharesCluster bool }

// SuiteOption configures RegisterSuite.
type SuiteOption func(*suiteOptions)

// WithNodeAccess deploys the probe DaemonSet once per run (Env.Nodes).
func WithNodeAccess() SuiteOption { return func(o *suiteOptions) { o.nodeAccess = true } }

// SharesCluster lets the suite run beside other suites that share it
// (the cluster lock held shared): for a suite that changes nothing on the
// nodes another suite would see (no kubelet or runtime restart, no node
// configuration) and none of whose specs depends on a node's free CPU or
// memory or on a quiet CPU. The runner runs these side by side first
// (runner.Concurrent); every other suite holds the lock alone.
func SharesCluster() SuiteOption { return func(o *suiteOptions) { o.sharesCluster = true } }

// WithNFDImage builds the NFD image and loads it into kind clusters
// (Env.NFDImage), for suites that deploy NFD where the cluster has none.
func WithNFDImage() SuiteOption { return func(o *suiteOptions) { o.nfdImage = true } }

// runScopedKinds are the cluster-scoped kinds suites create, always with
// the run's label, so an interrupted run's leftovers can be found.
var runScopedKinds = []schema.GroupVersionResource{
	{Group: "node.k8s.io", Version: "v1", Resource: "runtimeclasses"},
	{Group: "nfd.k8s-sigs.io", Version: "v1alpha1", Resource: "nodefeaturerules"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterrolebindings"},
	{Group: "rbac.authorization.k8s.io", Version: "v1", Resource: "clusterroles"},
	{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"},
}

// RemoveLeftovers deletes every namespace and cluster-scoped object this
// run created (an interrupted spec may not have reached its own cleanup),
// its owner lease included.
func RemoveLeftovers(ctx context.Context, e *Env) error {
	stopOwner(e.RunID)
	dyn, err := dynamic.NewForConfig(e.REST)
	if err != nil {
		return err
	}
	// Deferred: the namespaces already being deleted (each spec's, by
	// Env.Namespace's cleanup) are the runner's to wait for, not to delete
	// again.
	deferred := os.Getenv(DeferNamespaceWaitEnv) != ""
	_, err = removeRun(ctx, e.Clientset, dyn, e.RunID, removal{NoWait: deferred, SkipTerminating: deferred, Timeout: e.Config.Timeouts.NamespaceDeletion.Duration})
	return err
}

// DeferNamespaceWaitEnv, set by the runner, lets a suite's end delete its
// namespaces without waiting until they are gone: the runner waits once,
// after its last suite (WaitNamespacesGone), so that namespace teardown
// is off each suite's critical path and nothing is left behind.
const DeferNamespaceWaitEnv = "NODECONFORM_DEFER_NAMESPACE_WAIT"

// removal says how removeRun removes a run.
type removal struct {
	// ReportOnly lists without deleting.
	ReportOnly bool
	// NoWait deletes without waiting for the namespaces to be gone.
	NoWait bool
	// SkipTerminating leaves namespaces already being deleted alone: a
	// runner's deferred deletions, which it waits for itself.
	SkipTerminating bool
	// StuckAfter, with SkipTerminating, takes a namespace being deleted
	// for longer back: no runner waits for it any more (a runner gives
	// up after timeouts.namespaceDeletion and says that cleanup removes
	// it), so it is stuck, mostly on a pod its kubelet cannot tear down.
	// Its pods are force-deleted (workload.ForceNamespaceGone).
	StuckAfter time.Duration
	Timeout    time.Duration
}

// removeRun deletes (or lists) the namespaces and cluster-scoped objects
// labelled with run, and returns what they were.
func removeRun(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, run string, how removal) ([]string, error) {
	reportOnly, timeout := how.ReportOnly, how.Timeout
	sel := metav1.ListOptions{LabelSelector: RunLabel + "=" + run}
	var found []string
	for _, gvr := range runScopedKinds {
		list, err := dyn.Resource(gvr).List(ctx, sel)
		if apierrors.IsNotFound(err) {
			continue // not served here (e.g. no NFD API)
		}
		// Credentials that may not list a kind (a least-privilege
		// verify-mode account and RBAC or CRDs) do not stop the run's
		// namespaces from going: that ended a run with every namespace
		// left behind.
		if apierrors.IsForbidden(err) {
			continue
		}
		if err != nil {
			return found, fmt.Errorf("list %s of run %s: %w", gvr.Resource, run, err)
		}
		for _, it := range list.Items {
			found = append(found, gvr.Resource+"/"+it.GetName())
			if reportOnly {
				continue
			}
			if err := dyn.Resource(gvr).Delete(ctx, it.GetName(), metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return found, fmt.Errorf("delete %s %s: %w", gvr.Resource, it.GetName(), err)
			}
		}
	}
	all, err := cs.CoreV1().Namespaces().List(ctx, sel)
	if err != nil {
		return found, err
	}
	var list []string
	stuck := map[string]bool{}
	for _, ns := range all.Items {
		if how.SkipTerminating && ns.DeletionTimestamp != nil {
			age := time.Since(ns.DeletionTimestamp.Time)
			if how.StuckAfter <= 0 || age < how.StuckAfter {
				continue
			}
			stuck[ns.Name] = true
			list = append(list, ns.Name)
			found = append(found, fmt.Sprintf("namespace/%s (stuck: being deleted for %s)", ns.Name, age.Round(time.Second)))
			continue
		}
		list = append(list, ns.Name)
		found = append(found, "namespace/"+ns.Name)
	}
	if reportOnly {
		return found, nil
	}
	// Namespaces go in parallel: each waits for its pods to terminate
	// (unless NoWait).
	errs := make([]error, len(list))
	var wg sync.WaitGroup
	for i, name := range list {
		wg.Go(func() {
			switch {
			case stuck[name] && how.NoWait:
				errs[i] = workload.ForceNamespaceGone(ctx, cs, name, 0)
			case stuck[name]:
				errs[i] = workload.ForceNamespaceGone(ctx, cs, name, timeout)
			case how.NoWait:
				if _, err := workload.StartNamespaceDeletion(ctx, cs, name); err != nil {
					errs[i] = fmt.Errorf("delete namespace %s: %w", name, err)
				}
			default:
				errs[i] = workload.DeleteNamespace(ctx, cs, name, timeout)
			}
		})
	}
	wg.Wait()
	return found, errors.Join(errs...)
}

// Namespace creates a namespace for the running spec and deletes it when
// the spec ends, whatever its outcome. The suite's end waits until every
// namespace of the run is gone (RemoveLeftovers). podSecurity is the
// lowest Pod Security level the spec's pods need (baseline for plain
// pods): the namespace is labelled with it, whatever the cluster's default.
func (e *Env) Namespace(ctx context.Context, prefix, podSecurity string) string {
	ns, err := workload.CreateNamespace(ctx, workload.NamespaceInput{Clientset: e.Clientset, Prefix: prefix, PodSecurity: podSecurity,
		Labels: map[string]string{RunLabel: e.RunID}, PullSecret: e.PullSecret, PullTimeout: e.Config.Timeouts.PullSecretGrant.Duration})
	gomega.Expect(err).NotTo(gomega.HaveOccurred(), "create namespace")
	ginkgo.DeferCleanup(func(ctx context.Context) {
		workload.CountControllerPods(ctx, e.Clientset, ns.Name)
		_, err := workload.StartNamespaceDeletion(ctx, e.Clientset, ns.Name)
		gomega.Expect(err).NotTo(gomega.HaveOccurred(), "delete namespace %s", ns.Name)
	}, ginkgo.NodeTimeout(e.Config.Timeouts.NamespaceDeletion.Duration))
	return ns.Name
}

// Eventually polls with the configured interval within timeout, and stops
// at the first refusal the API server would repeat (stopOnRefusal).
func (e *Env) Eventually(ctx context.Context, f any, timeout time.Duration) gomega.AsyncAssertion {
	return gomega.Eventually(ctx, stopOnRefusal(f)).WithTimeout(timeout).WithPolling(e.Config.Intervals.Poll.Duration)
}

// String names the cluster in messages.
func (e *Env) String() string {
	return fmt.Sprintf("%s cluster %s", e.Provider, e.Cluster)
}

// TreeConfig is the run's configuration while Ginkgo builds the spec tree
// (decorators such as NodeTimeout are evaluated before any setup runs).
// An unreadable override file falls back to the defaults here; Up reports it.
func TreeConfig() *config.Config {
	s := SettingsFromEnv()
	c, _, err := LoadConfig(s.ConfigFile, s.Profile)
	if err != nil {
		return config.Default()
	}
	return c
}

// SkipInVerify skips the running spec in verify mode for a reason other
// than a node change (a cluster-scoped object, filling a node's capacity).
func (e *Env) SkipInVerify(reason string) {
	if e.Mode == "verify" {
		ginkgo.Skip("verify mode (read-only): " + reason)
	}
}

// RequireApply skips the running spec in verify mode: it would change node
// configuration, which a read-only run must never do.
func (e *Env) RequireApply(what string) {
	if e.Mode == "verify" {
		ginkgo.Skip("verify mode (read-only): " + what + " changes node configuration")
	}
}

// CostEnv names the file prefix a suite process writes its cost figures
// to (<prefix>.<process>.json); the runner sums them per suite.
const CostEnv = "NODECONFORM_COST_FILE"

// writeCost stores this process's request and pod counts where the runner
// asked for them.
func writeCost(e *Env) {
	prefix := os.Getenv(CostEnv)
	if prefix == "" {
		return
	}
	nodes := 0
	if e != nil {
		nodes = len(e.Targets)
	}
	path := fmt.Sprintf("%s.%d.json", prefix, ginkgo.GinkgoParallelProcess())
	if err := cost.Write(path, cost.Snapshot(nodes)); err != nil {
		fmt.Fprintf(ginkgo.GinkgoWriter, "cost figures not written: %v\n", err)
	}
}

// WaitNamespacesGone waits until no namespace of any nodeconform run is
// being deleted (the runner's deferred deletions), and names those still
// there after timeout. It watches the namespaces, so that it returns as
// the last one goes rather than up to a poll interval later.
func WaitNamespacesGone(ctx context.Context, cs kubernetes.Interface, timeout time.Duration) error {
	defer cost.Time(cost.PhaseNamespaceGone, time.Now())
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	terminating := func(o any) bool {
		ns, ok := o.(*corev1.Namespace)
		return ok && ns.DeletionTimestamp != nil
	}
	left, err := workload.WaitNone(wctx, workload.Namespaces(cs, metav1.ListOptions{LabelSelector: RunLabel}), &corev1.Namespace{}, terminating)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("waiting for namespaces %s to be deleted: %w", strings.Join(left, ", "), ctx.Err())
	case left == nil:
		return fmt.Errorf("list the runs' namespaces: %w", err)
	}
	return fmt.Errorf("namespaces still being deleted %s after the last suite: %s (nodeconform cleanup removes what is left)", timeout, strings.Join(left, ", "))
}
