package workload

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ResourcesChanged says how admission changed the resources a pod asked
// for (container requests and limits, and the pod-level ones), or "" when
// it admitted them as asked. A LimitRange's defaults or a mutating
// admission policy or webhook can give a pod limits it did not ask for:
// then a BestEffort pod, or a container meant to run without a CPU limit,
// cannot exist in that namespace, and a check built on one must say so
// rather than blame the node.
func ResourcesChanged(asked, admitted *corev1.Pod) string {
	var out []string
	got := map[string]corev1.ResourceRequirements{}
	admittedAll := containers(admitted)
	for _, c := range admittedAll {
		got[c.Name] = c.Resources
	}
	built := map[string]bool{}
	for _, c := range containers(asked) {
		built[c.Name] = true
		if d := requirementsChanged(c.Resources, got[c.Name]); d != "" {
			out = append(out, "container "+c.Name+": "+d)
		}
	}
	// A sidecar injected into every pod (a service mesh, an agent) makes
	// the pod's QoS class and its cgroup totals its own too.
	for _, c := range admittedAll {
		if !built[c.Name] {
			out = append(out, fmt.Sprintf("container %s added by admission (%s, requests %s, limits %s)", c.Name, c.Image, listString(c.Resources.Requests), listString(c.Resources.Limits)))
		}
	}
	var a, g corev1.ResourceRequirements
	if asked.Spec.Resources != nil {
		a = *asked.Spec.Resources
	}
	if admitted.Spec.Resources != nil {
		g = *admitted.Spec.Resources
	}
	if d := requirementsChanged(a, g); d != "" {
		out = append(out, "pod: "+d)
	}
	return strings.Join(out, "; ")
}

// containers are a pod's init and regular containers, in that order.
func containers(p *corev1.Pod) []corev1.Container {
	return append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...)
}

func requirementsChanged(asked, got corev1.ResourceRequirements) string {
	var out []string
	for _, kind := range []struct {
		name       string
		asked, got corev1.ResourceList
	}{{"limits", asked.Limits, got.Limits}, {"requests", asked.Requests, got.Requests}} {
		if !sameList(kind.asked, kind.got) {
			out = append(out, fmt.Sprintf("%s %s admitted as %s", kind.name, listString(kind.asked), listString(kind.got)))
		}
	}
	return strings.Join(out, ", ")
}

func sameList(a, b corev1.ResourceList) bool {
	if len(a) != len(b) {
		return false
	}
	for k, q := range a {
		if o, ok := b[k]; !ok || o.Cmp(q) != 0 {
			return false
		}
	}
	return true
}

func listString(l corev1.ResourceList) string {
	if len(l) == 0 {
		return "none"
	}
	var parts []string
	for k, q := range l {
		parts = append(parts, string(k)+"="+q.String())
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}

// AdmittedAsAsked returns an error naming what admission changed in the
// resources of the pod asked for (as built, before its create) in the pod
// as admitted, and how to exempt the run's namespaces from it.
func AdmittedAsAsked(asked, admitted *corev1.Pod) error {
	d := ResourcesChanged(asked, admitted)
	if d == "" {
		return nil
	}
	return fmt.Errorf("admission changed the resources of pod %s/%s (%s): a LimitRange in its namespace or a mutating admission policy or webhook did, so the pod this check needs cannot exist there; exempt namespaces labelled %s=true from it",
		admitted.Namespace, admitted.Name, d, ManagedLabel)
}
