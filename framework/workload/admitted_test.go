package workload

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func podWith(r corev1.ResourceRequirements) *corev1.Pod {
	return &corev1.Pod{Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "probe", Resources: r}}}}
}

func TestResourcesChanged(t *testing.T) {
	q := resource.MustParse
	limits := corev1.ResourceList{corev1.ResourceCPU: q("500m"), corev1.ResourceMemory: q("256Mi")}
	for _, tc := range []struct {
		name            string
		asked, admitted corev1.ResourceRequirements
		want            string
	}{
		{"none as none", corev1.ResourceRequirements{}, corev1.ResourceRequirements{}, ""},
		{"same values written otherwise", corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: q("0.1")}},
			corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: q("100m")}}, ""},
		{"BestEffort given defaults", corev1.ResourceRequirements{},
			corev1.ResourceRequirements{Limits: limits, Requests: corev1.ResourceList{corev1.ResourceCPU: q("50m")}},
			"container probe: limits none admitted as cpu=500m,memory=256Mi, requests none admitted as cpu=50m"},
		{"a limit capped", corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: q("1Gi")}},
			corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: q("256Mi")}},
			"container probe: limits memory=1Gi admitted as memory=256Mi"},
	} {
		if got := ResourcesChanged(podWith(tc.asked), podWith(tc.admitted)); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
	asked, admitted := podWith(corev1.ResourceRequirements{}), podWith(corev1.ResourceRequirements{})
	admitted.Spec.Resources = &corev1.ResourceRequirements{Limits: limits}
	if got, want := ResourcesChanged(asked, admitted), "pod: limits none admitted as cpu=500m,memory=256Mi"; got != want {
		t.Errorf("pod-level: got %q, want %q", got, want)
	}
	// A sidecar injected by admission (seen on the lab with a policy
	// appending a pause container to every pod).
	asked, admitted = podWith(corev1.ResourceRequirements{}), podWith(corev1.ResourceRequirements{})
	admitted.Spec.Containers = append(admitted.Spec.Containers, corev1.Container{Name: "mesh-proxy", Image: "registry.k8s.io/pause:3.10.2"})
	if got, want := ResourcesChanged(asked, admitted), "container mesh-proxy added by admission (registry.k8s.io/pause:3.10.2, requests none, limits none)"; got != want {
		t.Errorf("sidecar: got %q, want %q", got, want)
	}
}

// The pod's own container's status, wherever the kubelet sorted it, and
// a renamed container when the annotation names one no longer there.
func TestMainContainerStatus(t *testing.T) {
	p := ProbePod(ProbePodInput{Namespace: "ns", Name: "p", Image: "img"})
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "istio-proxy"})
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "istio-proxy", ContainerID: "containerd://s"}, {Name: "probe", ContainerID: "containerd://p"}}
	if s, ok := MainContainerStatus(p); !ok || s.ContainerID != "containerd://p" {
		t.Errorf("got %+v %v, want the probe container's status", s, ok)
	}
	p.Spec.Containers[0].Name = "a" // as primitives' two-container pod renames it
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "a", ContainerID: "containerd://a"}, {Name: "istio-proxy"}}
	if s, ok := MainContainerStatus(p); !ok || s.Name != "a" {
		t.Errorf("renamed: got %+v %v, want container a", s, ok)
	}
}
