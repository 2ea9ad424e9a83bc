package cluster

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/rest"
)

// Existing is a cluster nodeconform did not create, reached by kubeconfig.
type Existing struct {
	path    string
	context string
	cfg     *rest.Config
}

// NewExisting loads the kubeconfig (and context, "" for current) and checks
// the API server answers within timeout.
func NewExisting(ctx context.Context, kubeconfig, kubeContext string, timeout time.Duration) (*Existing, error) {
	cfg, err := restConfigFromKubeconfig(ctx, kubeconfig, kubeContext, timeout)
	if err != nil {
		return nil, err
	}
	return &Existing{path: kubeconfig, context: kubeContext, cfg: cfg}, nil
}

// Kind implements Provider.
func (e *Existing) Kind() string { return "existing" }

// Name implements Provider.
func (e *Existing) Name() string {
	if e.context != "" {
		return e.context
	}
	return e.cfg.Host
}

// KubeconfigPath implements Provider.
func (e *Existing) KubeconfigPath() string { return e.path }

// RESTConfig implements Provider.
func (e *Existing) RESTConfig() *rest.Config { return rest.CopyConfig(e.cfg) }

// LoadImageArchive implements Provider: an existing cluster pulls from a
// registry, so images must be pushed there by the user.
func (e *Existing) LoadImageArchive(context.Context, string) error {
	return fmt.Errorf("cannot side-load images into existing cluster %s: push the image to a registry its nodes can pull from and pass its reference (e.g. --probe-image)", e.Name())
}

// CollectLogs implements Provider. Node logs of an existing cluster are the
// operator's; nodeconform only collects what it created.
func (e *Existing) CollectLogs(context.Context, string) error { return nil }
