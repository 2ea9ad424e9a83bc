package nfd

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
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
	pods, err := d.workerPods(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, p := range pods {
		// A worker not bound yet (no room on its node) is its node's too.
		node := workload.TargetNode(&p)
		if node == "" || p.DeletionTimestamp != nil {
			continue
		}
		if workload.IsReady(&p) {
			out[node] = ""
		} else if _, seen := out[node]; !seen {
			out[node] = "pod " + p.Name + " not Ready: " + workload.Describe(ctx, d.cs, d.Namespace, p.Name)
		}
	}
	return out, nil
}

// ReadyOn reports whether each of nodes has a Ready nfd-worker pod
// of this deployment; true for an attached NFD (Workers is nil there). The
// label specs poll it beside the labels, so that a worker still starting
// on a slow node (the emulated VM after a deploy wait that ended without
// it) gets the spec's window before its node is judged, and one that is
// not Ready by the window's end still fails (Workers, LabelFinding). It
// reads no events, unlike Workers, since it runs every poll.
func (d *Deployment) ReadyOn(ctx context.Context, nodes []string) (bool, error) {
	if d == nil || d.attached || d.Namespace == "" {
		return true, nil
	}
	pods, err := d.workerPods(ctx)
	if err != nil {
		return false, err
	}
	return readyOn(pods, nodes), nil
}

// workerPods lists this deployment's nfd-worker pods.
func (d *Deployment) workerPods(ctx context.Context) ([]corev1.Pod, error) {
	pods, err := d.cs.CoreV1().Pods(d.Namespace).List(ctx, metav1.ListOptions{LabelSelector: workerSelector})
	if err != nil {
		return nil, fmt.Errorf("list nfd-worker pods in %s: %w", d.Namespace, err)
	}
	return pods.Items, nil
}

// readyOn reports whether every node in nodes has a Ready pod among pods
// that is not being deleted.
func readyOn(pods []corev1.Pod, nodes []string) bool {
	ready := map[string]bool{}
	for i := range pods {
		p := &pods[i]
		if p.Spec.NodeName != "" && p.DeletionTimestamp == nil && workload.IsReady(p) {
			ready[p.Spec.NodeName] = true
		}
	}
	for _, n := range nodes {
		if !ready[n] {
			return false
		}
	}
	return true
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

// nfdLabels are the labels nfd-master lists as its own in the node's
// feature-labels annotation, with the default namespace it leaves out.
func nfdLabels(n *corev1.Node) []string {
	var out []string
	for _, name := range strings.Split(n.Annotations[featureLabelsAnnotation], ",") {
		if name = strings.TrimSpace(name); name != "" {
			out = append(out, withDefaultNs(name))
		}
	}
	return out
}

// SetterNote says who set a node's label that should not be there: the
// labels nfd-master writes are listed in the node's feature-labels
// annotation (without the default namespace), so a label absent from it
// was set by hand or by another controller, and NFD's rules are not at
// fault. "" when the label is not on the node.
func SetterNote(n *corev1.Node, label string) string {
	if _, ok := n.Labels[label]; !ok {
		return ""
	}
	if slices.Contains(nfdLabels(n), label) {
		return "nfd-master set it (listed in " + featureLabelsAnnotation + ")"
	}
	return "not set by nfd-master (absent from " + featureLabelsAnnotation + "): labelled by hand or by another controller"
}
