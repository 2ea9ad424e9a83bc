package e2e

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/klient"

	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/nodeaccess"
)

// ProbeNamespaceEnv hands a runner's probe namespace to its suites.
const ProbeNamespaceEnv = "NODECONFORM_PROBE_NAMESPACE"

// RunProbe is a probe DaemonSet a runner deploys once for all the suites
// it runs, instead of one per suite (each about a second to start, on the
// critical path of the suites that run alone). It is owned by a run of
// its own: a live lease keeps the suites' sweeps off it, and a runner
// killed outright leaves it to the next run's sweep like any dead run.
type RunProbe struct {
	Namespace string
	RunID     string
	cs        kubernetes.Interface
	dyn       dynamic.Interface
	timeout   time.Duration
	once      sync.Once
	err       error
}

// StartRunProbe creates the owner lease and the probe DaemonSet of a
// runner's run on the cluster of kubeconfig/context, without waiting for
// its pods: the suites wait, each for its own verdict on which nodes can
// be examined.
func StartRunProbe(ctx context.Context, kubeconfig, kctx, image string, pullSecret []byte, readOnly bool, cfg *config.Config) (*RunProbe, error) {
	rc, cs, _, err := clients(kubeconfig, kctx, readOnly, cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	r := &RunProbe{RunID: fmt.Sprintf("%x", time.Now().UnixNano()), cs: cs, dyn: dyn, timeout: cfg.Timeouts.NamespaceDeletion.Duration}
	if err := startOwner(ctx, cs, r.RunID, cfg.Timeouts.OwnerLease.Duration); err != nil {
		return nil, err
	}
	p, err := nodeaccess.Create(ctx, nodeaccess.Input{Clientset: cs, Image: image, Labels: map[string]string{RunLabel: r.RunID}, PullSecret: pullSecret,
		PullTimeout: cfg.Timeouts.PullSecretGrant.Duration})
	if p != nil {
		r.Namespace = p.Namespace
	}
	if err != nil {
		return nil, fmt.Errorf("%w%s", err, suffix(r.Remove(context.WithoutCancel(ctx))))
	}
	return r, nil
}

// Remove deletes the probe's namespace and owner lease without waiting
// (the runner's final wait covers them); only the first call acts.
func (r *RunProbe) Remove(ctx context.Context) error {
	r.once.Do(func() {
		stopOwner(r.RunID)
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
		defer cancel()
		_, r.err = removeRun(ctx, r.cs, r.dyn, r.RunID, removal{NoWait: true, Timeout: r.timeout})
	})
	return r.err
}

func suffix(err error) string {
	if err == nil {
		return ""
	}
	return "; and removing the run's probe failed: " + err.Error()
}

// attachProbe uses a probe a runner started (StartRunProbe): a namespace
// without its DaemonSet is named at once rather than waited for.
func attachProbe(ctx context.Context, cs kubernetes.Interface, kl klient.Client, ns string, timeout time.Duration) (*nodeaccess.Probes, error) {
	if _, err := cs.AppsV1().DaemonSets(ns).Get(ctx, nodeaccess.DaemonSetName, metav1.GetOptions{}); err != nil {
		return nil, fmt.Errorf("%s=%s: the runner's probe DaemonSet: %w", ProbeNamespaceEnv, ns, err)
	}
	p, err := nodeaccess.Attach(ctx, cs, kl, ns)
	if err != nil {
		return nil, err
	}
	return p, p.Wait(ctx, timeout)
}
