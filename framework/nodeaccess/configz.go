package nodeaccess

import (
	"context"
	"encoding/json"
	"fmt"

	"k8s.io/client-go/kubernetes"
)

// KubeletConfig decodes a node's running kubelet configuration (the node
// proxy's /configz, what the kubelet actually uses, not a file) into out,
// a struct with the KubeletConfiguration fields the caller needs.
func KubeletConfig(ctx context.Context, cs kubernetes.Interface, node string, out any) error {
	raw, err := cs.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes/" + node + "/proxy/configz").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("configz of node %s: %w", node, err)
	}
	wrapper := struct {
		KubeletConfig any `json:"kubeletconfig"`
	}{KubeletConfig: out}
	if err := json.Unmarshal(raw, &wrapper); err != nil {
		return fmt.Errorf("configz of node %s: %w", node, err)
	}
	return nil
}
