package nfd

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeconform/nodeconform/framework/workload"
)

// workerSelector selects the nfd-worker pods of a Deployment
// (fixtures/nfd/deployment.yaml.tmpl).
const workerSelector = "app=nfd-worker"

// Workers maps every node that has an nfd-worker pod of this deployment to
// "" when the pod is Ready, else to why not (the pod's description). A node
// missing from the map has no worker. Nil for an attached NFD: the
// cluster's own workers are found by its operator, not by nodeconform.
func (d *Deployment) Workers(ctx context.Context) (map[string]string, error) {
	if d == nil || d.attached || d.Namespace == "" {
		return nil, nil
	}
	pods, err := d.cs.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: workerSelector})
	if err != nil {
		return nil, fmt.Errorf("list nfd-worker pods in %s: %w", d.Namespace, err)
	}
	out := map[string]string{}
	for _, p := range pods.Items {
		if p.Spec.NodeName == "" || p.DeletionTimestamp != nil {
			continue
		}
		if workload.IsReady(&p) {
			out[p.Spec.NodeName] = ""
		} else if _, seen := out[p.Spec.NodeName]; !seen {
			out[p.Spec.NodeName] = "pod " + p.Name + " not Ready: " + workload.Describe(ctx, d.cs, d.Namespace, p.Name)
		}
	}
	return out, nil
}

// LabelFinding judges one node for a rule's label: want is whether the
// rule holds on the node (its ground truth), has whether the node carries
// the label, workers is Workers' map (nil: not judged). It returns "" when
// the node passes, else one sentence without the node's name. A node whose
// nfd-worker is missing or not Ready fails even when its label happens to
// be right: an absent label there proves nothing about NFD.
func LabelFinding(node, label string, want, has bool, workers map[string]string) string {
	var out []string
	switch {
	case has && !want:
		out = append(out, "false positive: has "+label+" but is not eligible")
	case !has && want:
		out = append(out, "false negative: eligible but has no "+label)
	}
	if workers != nil {
		if why, ok := workers[node]; !ok {
			out = append(out, "no nfd-worker pod on the node")
		} else if why != "" {
			out = append(out, "nfd-worker "+why)
		}
	}
	return strings.Join(out, "; ")
}
