package e2e

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	coordv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/kind/pkg/log"

	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/nodeaccess"
	"github.com/nodeconform/nodeconform/framework/nodechange"
	"github.com/nodeconform/nodeconform/framework/workload"
)

// A run proves it is alive with a Lease in a namespace of its own,
// renewed while it runs. A later run removes what runs without a fresh
// lease left behind (SIGKILL, a crashed runner), and never touches a live
// run's objects, on this machine or another.
const (
	ownerNamespacePrefix = "nodeconform-run-"
	ownerLease           = "owner"
)

var (
	ownersMu sync.Mutex
	owners   = map[string]context.CancelFunc{}
)

// startOwner creates the run's owner namespace and lease and renews the
// lease every third of its duration until stopOwner.
func startOwner(ctx context.Context, cs kubernetes.Interface, run string, d time.Duration) error {
	ns := ownerNamespacePrefix + run
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
		Labels: map[string]string{RunLabel: run, workload.ManagedLabel: "true"}}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("create owner namespace %s: %w", ns, err)
	}
	secs := int32(d.Seconds())
	now := metav1.NewMicroTime(time.Now())
	holder := run
	lease := &coordv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: ownerLease, Namespace: ns},
		Spec: coordv1.LeaseSpec{HolderIdentity: &holder, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now}}
	if _, err := cs.CoordinationV1().Leases(ns).Create(ctx, lease, metav1.CreateOptions{}); err != nil {
		_ = cs.CoreV1().Namespaces().Delete(context.WithoutCancel(ctx), ns, metav1.DeleteOptions{})
		return fmt.Errorf("create owner lease in %s: %w", ns, err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ownersMu.Lock()
	owners[run] = cancel
	ownersMu.Unlock()
	go func() {
		t := time.NewTicker(d / 3)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
			}
			l, err := cs.CoordinationV1().Leases(ns).Get(rctx, ownerLease, metav1.GetOptions{})
			if err != nil {
				continue
			}
			now := metav1.NewMicroTime(time.Now())
			l.Spec.RenewTime = &now
			_, _ = cs.CoordinationV1().Leases(ns).Update(rctx, l, metav1.UpdateOptions{})
		}
	}()
	return nil
}

func stopOwner(run string) {
	ownersMu.Lock()
	defer ownersMu.Unlock()
	if cancel, ok := owners[run]; ok {
		cancel()
		delete(owners, run)
	}
}

// liveRuns returns a predicate: is a run alive? A run is alive while its
// owner lease is fresh, while it is younger than two lease durations (its
// ID is its start time: it may not have written its lease yet), and
// whenever its lease cannot be read for any reason but absence — a
// transient error must never get a live run's objects swept. Call it
// after listing what might be swept, so a run that starts in between is
// seen alive.
func liveRuns(ctx context.Context, cs kubernetes.Interface, d time.Duration) (func(run string) bool, error) {
	list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: RunLabel})
	if err != nil {
		return nil, err
	}
	live := map[string]bool{}
	for _, ns := range list.Items {
		if !strings.HasPrefix(ns.Name, ownerNamespacePrefix) || ns.DeletionTimestamp != nil {
			continue
		}
		run := ns.Labels[RunLabel]
		l, err := cs.CoordinationV1().Leases(ns.Name).Get(ctx, ownerLease, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			// Namespace without a lease: alive only while young (below).
		case err != nil:
			live[run] = true
		case l.Spec.RenewTime == nil || l.Spec.LeaseDurationSeconds == nil:
		case time.Since(l.Spec.RenewTime.Time) < time.Duration(*l.Spec.LeaseDurationSeconds)*time.Second:
			live[run] = true
		}
	}
	return func(run string) bool {
		if live[run] {
			return true
		}
		if ns, err := strconv.ParseInt(run, 16, 64); err == nil && time.Since(time.Unix(0, ns)) < 2*d {
			return true
		}
		return false
	}, nil
}

// deadRuns lists the runs with objects on the cluster and no fresh lease.
func deadRuns(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, self string, d time.Duration) ([]string, error) {
	seen := map[string]bool{}
	sel := metav1.ListOptions{LabelSelector: RunLabel}
	nss, err := cs.CoreV1().Namespaces().List(ctx, sel)
	if err != nil {
		return nil, err
	}
	for _, ns := range nss.Items {
		seen[ns.Labels[RunLabel]] = true
	}
	for _, gvr := range runScopedKinds {
		list, err := dyn.Resource(gvr).List(ctx, sel)
		if err != nil {
			continue // not served here
		}
		for _, it := range list.Items {
			seen[it.GetLabels()[RunLabel]] = true
		}
	}
	alive, err := liveRuns(ctx, cs, d)
	if err != nil {
		return nil, err
	}
	var out []string
	for r := range seen {
		if r != "" && r != self && !alive(r) {
			out = append(out, r)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Sweep removes what earlier runs without a fresh owner lease left on the
// cluster (namespaces, cluster-scoped objects with their run label); in a
// read-only run it only reports them. It returns what it found.
func Sweep(ctx context.Context, cs kubernetes.Interface, dyn dynamic.Interface, self string, reportOnly bool, cfg *config.Config) ([]string, error) {
	dead, err := deadRuns(ctx, cs, dyn, self, cfg.Timeouts.OwnerLease.Duration)
	if err != nil {
		return nil, err
	}
	var found []string
	for _, r := range dead {
		// Namespaces already being deleted are a runner's deferred
		// deletions (it waits for them), or stuck once they outlast that
		// wait: the runner's final wait named them, and these are ended.
		t := cfg.Timeouts.NamespaceDeletion.Duration
		f, err := removeRun(ctx, cs, dyn, r, removal{ReportOnly: reportOnly, SkipTerminating: true, StuckAfter: t, Timeout: t})
		for _, x := range f {
			found = append(found, "run "+r+": "+x)
		}
		if err != nil {
			return found, err
		}
	}
	return found, nil
}

// ReplayJournals undoes, on every node with a probe, the journal entries
// of runs without a fresh lease (a node left changed by Ctrl-C during a
// restart or a killed runner); reportOnly lists them instead. It returns
// what it found, per node.
func ReplayJournals(ctx context.Context, cs kubernetes.Interface, probes *nodeaccess.Probes, self string, reportOnly bool, cfg *config.Config, logger log.Logger) ([]string, error) {
	return replay(ctx, probes, func() (func(string) bool, error) {
		alive, err := liveRuns(ctx, cs, cfg.Timeouts.OwnerLease.Duration)
		if err != nil {
			return nil, err
		}
		return func(run string) bool { return run != self && !alive(run) }, nil
	}, reportOnly, cfg, logger)
}

// undoOwn undoes what this run's journal still holds at its end: a revert
// that an interrupt or an unreachable node kept from finishing.
func undoOwn(ctx context.Context, probes *nodeaccess.Probes, self string, cfg *config.Config, logger log.Logger) ([]string, error) {
	return replay(ctx, probes, func() (func(string) bool, error) {
		return func(run string) bool { return run == self }, nil
	}, false, cfg, logger)
}

// replay lists every node's journal, then asks pick (decided after the
// listing) which entries to undo, and undoes them, nodes in parallel.
func replay(ctx context.Context, probes *nodeaccess.Probes, pick func() (func(run string) bool, error), reportOnly bool, cfg *config.Config, logger log.Logger) ([]string, error) {
	t := cfg.Timeouts.NodeRestart.Duration
	j := nodechange.Journal{Probes: probes, RestartTimeout: t, Retry: t}
	var mu sync.Mutex
	var errs []string
	fail := func(err error) {
		mu.Lock()
		errs = append(errs, err.Error())
		mu.Unlock()
	}
	nodes := probes.Nodes()
	pending := make([][]nodechange.Entry, len(nodes))
	var wg sync.WaitGroup
	for i, node := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			entries, err := j.Pending(ctx, node)
			if err != nil {
				fail(err)
			}
			pending[i] = entries
		}()
	}
	wg.Wait()
	chosen, err := pick()
	if err != nil {
		return nil, err
	}
	var found []string
	for i, node := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, e := range pending[i] {
				if !chosen(e.Run) {
					continue
				}
				msg := fmt.Sprintf("node %s: journal entry %s of run %s", node, e.Name, e.Run)
				if !reportOnly {
					logger.V(0).Infof("undoing %s", msg)
					if err := j.Undo(ctx, e); err != nil {
						fail(err)
						continue
					}
				}
				mu.Lock()
				found = append(found, msg)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sort.Strings(found)
	if len(errs) > 0 {
		return found, fmt.Errorf("replaying node journals: %s", strings.Join(errs, "; "))
	}
	return found, nil
}
