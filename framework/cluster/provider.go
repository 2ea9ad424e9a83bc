// Package cluster gives specs a Kubernetes cluster through one interface,
// whether nodeconform created it with kind or the user pointed at an
// existing one, so the same specs run on both.
package cluster

import (
	"context"
	"fmt"
	"os"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// Provider is a cluster the suites can run against.
type Provider interface {
	// Kind says which provider this is: "kind" or "existing".
	Kind() string
	// Name identifies the cluster in reports.
	Name() string
	// KubeconfigPath is a kubeconfig file for the cluster.
	KubeconfigPath() string
	// RESTConfig is the client configuration.
	RESTConfig() *rest.Config
	// LoadImageArchive makes an image archive (docker save format)
	// available on every node; providers that cannot do so return an error
	// telling the user to push the image to a registry instead.
	LoadImageArchive(ctx context.Context, archive string) error
	// CollectLogs writes node and component logs under dir.
	CollectLogs(ctx context.Context, dir string) error
}

// restConfigFromKubeconfig loads a kubeconfig and checks the API server
// answers within timeout, so a wrong or stale kubeconfig fails fast.
func restConfigFromKubeconfig(ctx context.Context, path, context string, timeout time.Duration) (*rest.Config, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: context}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	if err := Ping(ctx, cfg, timeout); err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

// Ping asks the API server for its version within timeout.
func Ping(ctx context.Context, cfg *rest.Config, timeout time.Duration) error {
	c := rest.CopyConfig(cfg)
	c.Timeout = timeout
	cs, err := kubernetes.NewForConfig(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := cs.Discovery().ServerVersion()
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("API server %s unreachable: %w", cfg.Host, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("API server %s did not answer within %s", cfg.Host, timeout)
	}
}

// LoadKubeconfig returns the client configuration of a kubeconfig context
// without contacting the server.
func LoadKubeconfig(path, context string) (*rest.Config, error) {
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: path}
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}
