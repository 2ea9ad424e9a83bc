package nfd

import (
	"context"
	"fmt"
	"maps"
	"slices"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"

	"github.com/nodeconform/nodeconform/framework/workload"
)

// Eligible returns the nodes where eligible is true, sorted.
func Eligible(eligible map[string]bool) []string {
	var out []string
	for n, ok := range eligible {
		if ok {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// Running reports whether the cluster already runs NFD: its NodeFeature
// API is served and nfd-worker has published features for some node.
func Running(ctx context.Context, dc discovery.DiscoveryInterface, dyn dynamic.Interface) (bool, error) {
	res, err := dc.ServerResourcesForGroupVersion(NodeFeatures.GroupVersion().String())
	if err != nil {
		return false, nil // the group is not served
	}
	served := false
	for _, r := range res.APIResources {
		served = served || r.Name == NodeFeatures.Resource
	}
	if !served {
		return false, nil
	}
	list, err := dyn.Resource(NodeFeatures).List(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return false, fmt.Errorf("list NodeFeatures: %w", err)
	}
	return len(list.Items) > 0, nil
}

// Attach returns a handle on an NFD the cluster already runs, to apply
// and remove rules with the same calls as on a Deployment. Remove then
// deletes only the rules applied through it; AddNodeFeature needs a
// namespace (set Namespace to one the run owns).
func Attach(config *rest.Config, labels map[string]string) (*Deployment, error) {
	cs, err := kubernetes.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		return nil, err
	}
	l := map[string]string{workload.ManagedLabel: "true"}
	maps.Copy(l, labels)
	return &Deployment{cs: cs, dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), labels: l, attached: true}, nil
}
