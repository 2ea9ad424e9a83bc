package openshift

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KataConfigGVR is the OpenShift sandboxed containers operator's KataConfig.
var KataConfigGVR = schema.GroupVersionResource{Group: "kataconfiguration.openshift.io", Version: "v1", Resource: "kataconfigs"}

// HasKataConfigAPI reports whether the sandboxed containers operator is
// installed (its KataConfig API is served).
func HasKataConfigAPI(dc discovery.DiscoveryInterface) (bool, error) {
	return hasResource(dc, KataConfigGVR)
}

// KataConfigStatus is the installation progress a KataConfig reports
// (operator 1.3 and later: an InProgress condition and node counts).
type KataConfigStatus struct {
	InProgress string `json:"inProgress"`
	Message    string `json:"message,omitempty"`
	Nodes      int64  `json:"nodeCount"`
	Ready      int64  `json:"readyNodeCount"`
	Failed     int64  `json:"failedNodeCount"`
}

// KataConfigStatusOf reads a KataConfig's status.
func KataConfigStatusOf(u *unstructured.Unstructured) KataConfigStatus {
	var s KataConfigStatus
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if ok && m["type"] == "InProgress" {
			s.InProgress, _ = m["status"].(string)
			s.Message, _ = m["message"].(string)
		}
	}
	s.Nodes, _, _ = unstructured.NestedInt64(u.Object, "status", "kataNodes", "nodeCount")
	s.Ready, _, _ = unstructured.NestedInt64(u.Object, "status", "kataNodes", "readyNodeCount")
	failed, _, _ := unstructured.NestedSlice(u.Object, "status", "kataNodes", "failedToInstall")
	s.Failed = int64(len(failed))
	return s
}

// Done reports whether the runtime is installed on every selected node;
// an error means it never will be (nodes failed to install).
func (s KataConfigStatus) Done() (bool, error) {
	if s.Failed > 0 {
		return false, fmt.Errorf("kata failed to install on %d node(s): %s", s.Failed, s.Message)
	}
	if s.InProgress == "False" && s.Nodes == 0 {
		return false, fmt.Errorf("installation finished on no node (with checkNodeEligibility, no node has feature.node.kubernetes.io/runtime.kata=true): %s", s.Message)
	}
	return s.InProgress == "False" && s.Ready == s.Nodes, nil
}

// WaitKataConfig waits until the KataConfig name has installed the runtime
// on every node it selected. With checkNodeEligibility those are the nodes
// NFD labelled feature.node.kubernetes.io/runtime.kata=true.
func WaitKataConfig(ctx context.Context, dc dynamic.Interface, name string, timeout, poll time.Duration) (KataConfigStatus, error) {
	deadline := time.Now().Add(timeout)
	var last KataConfigStatus
	for {
		u, err := dc.Resource(KataConfigGVR).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			last = KataConfigStatusOf(u)
			done, err := last.Done()
			if err != nil {
				return last, fmt.Errorf("KataConfig %s: %w", name, err)
			}
			if done {
				return last, nil
			}
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("KataConfig %s not installed within %s: %+v", name, timeout, last)
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(poll):
		}
	}
}

// KataInstalledNodes are the nodes a KataConfig reports the runtime
// installed on (status.kataNodes.installed).
func KataInstalledNodes(u *unstructured.Unstructured) []string {
	nodes, _, _ := unstructured.NestedStringSlice(u.Object, "status", "kataNodes", "installed")
	return nodes
}
