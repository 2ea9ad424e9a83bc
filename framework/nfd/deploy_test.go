package nfd

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

func TestRender(t *testing.T) {
	legacy := "sources:\n  custom:\n  - name: x\n    labels: {a: b}\n"
	manifest, err := Render("nodeconform/nfd:abc", "ns1", 3*time.Second, legacy)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeAll(manifest)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.GetKind()]++
		if o.GetNamespace() != "ns1" && o.GetKind() != "ClusterRole" && o.GetKind() != "ClusterRoleBinding" {
			t.Errorf("%s %s in namespace %q", o.GetKind(), o.GetName(), o.GetNamespace())
		}
		if o.GetKind() == "ConfigMap" {
			conf := o.Object["data"].(map[string]any)["nfd-worker.conf"].(string)
			var c struct {
				Core struct {
					SleepInterval  string   `json:"sleepInterval"`
					FeatureSources []string `json:"featureSources"`
					LabelSources   []string `json:"labelSources"`
				} `json:"core"`
				Sources map[string]any `json:"sources"`
			}
			if err := yaml.UnmarshalStrict([]byte(conf), &c); err != nil {
				t.Fatalf("worker config: %v\n%s", err, conf)
			}
			if c.Core.SleepInterval != "3s" || strings.Join(c.Core.FeatureSources, ",") != "cpu,kernel" || c.Sources["custom"] == nil {
				t.Errorf("worker config = %+v", c)
			}
		}
	}
	want := map[string]int{"ServiceAccount": 2, "ClusterRole": 1, "ClusterRoleBinding": 1, "Role": 1, "RoleBinding": 1, "ConfigMap": 1, "Deployment": 1, "DaemonSet": 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d %s, want %d", kinds[k], k, n)
		}
	}
	if strings.Count(manifest, "image: nodeconform/nfd:abc") != 2 {
		t.Error("image not set on both workloads")
	}
}

func TestCRDs(t *testing.T) {
	objs, err := decodeAll(string(fixture("crds.yaml")))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.GetName())
	}
	if got := strings.Join(names, " "); got != "nodefeatures.nfd.k8s-sigs.io nodefeaturegroups.nfd.k8s-sigs.io nodefeaturerules.nfd.k8s-sigs.io" {
		t.Errorf("CRDs: %s", got)
	}
}

func TestLabelFinding(t *testing.T) {
	const l = "feature.node.kubernetes.io/runtime.kata"
	ready := map[string]string{"a": "", "b": "pod nfd-worker-x not Ready: Running, readiness probe failed"}
	for _, c := range []struct {
		name      string
		node      string
		want, has bool
		workers   map[string]string
		finding   string
	}{
		{"eligible and labelled", "a", true, true, ready, ""},
		{"neither", "a", false, false, ready, ""},
		{"false positive", "a", false, true, ready, "false positive: has " + l + " but is not eligible"},
		{"false negative", "a", true, false, ready, "false negative: eligible but has no " + l},
		{"worker not ready, label right", "b", false, false, ready, "nfd-worker pod nfd-worker-x not Ready: Running, readiness probe failed"},
		{"worker not ready, label wrong", "b", true, false, ready, "false negative: eligible but has no " + l + "; nfd-worker pod nfd-worker-x not Ready: Running, readiness probe failed"},
		{"no worker pod", "c", false, false, ready, "no nfd-worker pod on the node"},
		{"attached NFD: workers not judged", "c", true, true, nil, ""},
	} {
		if got := LabelFinding(c.node, l, c.want, c.has, c.workers); got != c.finding {
			t.Errorf("%s: got %q, want %q", c.name, got, c.finding)
		}
	}
}

func TestReadyOn(t *testing.T) {
	pod := func(node string, ready bool, deleting bool) corev1.Pod {
		p := corev1.Pod{Spec: corev1.PodSpec{NodeName: node}}
		status := corev1.ConditionFalse
		if ready {
			status = corev1.ConditionTrue
		}
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status}}
		if deleting {
			p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
		}
		return p
	}
	for _, c := range []struct {
		name  string
		pods  []corev1.Pod
		nodes []string
		want  bool
	}{
		{"all ready", []corev1.Pod{pod("a", true, false), pod("b", true, false)}, []string{"a", "b"}, true},
		{"one running, not ready", []corev1.Pod{pod("a", true, false), pod("b", false, false)}, []string{"a", "b"}, false},
		{"no pod on a node", []corev1.Pod{pod("a", true, false)}, []string{"a", "b"}, false},
		{"only a deleting pod ready", []corev1.Pod{pod("a", true, false), pod("b", true, true)}, []string{"a", "b"}, false},
		{"old pod not ready, new one ready", []corev1.Pod{pod("a", false, true), pod("a", true, false)}, []string{"a"}, true},
		{"unjudged node not ready", []corev1.Pod{pod("a", true, false), pod("c", false, false)}, []string{"a"}, true},
	} {
		if got := readyOn(c.pods, c.nodes); got != c.want {
			t.Errorf("%s: readyOn = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestSetterNote(t *testing.T) {
	node := func(labels map[string]string, owned string) *corev1.Node {
		n := &corev1.Node{}
		n.Labels = labels
		if owned != "" {
			n.Annotations = map[string]string{featureLabelsAnnotation: owned}
		}
		return n
	}
	on := map[string]string{KataLabel: "true", "example.com/other": "x"}
	for _, c := range []struct {
		name string
		n    *corev1.Node
		want string
	}{
		{"listed without the default namespace", node(on, "cpu-cpuid.SSE4, runtime.kata"), "nfd-master set it"},
		{"listed with a namespace of its own", node(on, "example.com/other"), "not set by nfd-master"},
		{"no annotation", node(on, ""), "not set by nfd-master"},
		{"a longer name with the same prefix is not it", node(on, "runtime.kata-extra"), "not set by nfd-master"},
		{"label not on the node", node(map[string]string{}, "runtime.kata"), ""},
	} {
		got := SetterNote(c.n, KataLabel)
		if (c.want == "") != (got == "") || !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: SetterNote = %q, want it to start with %q", c.name, got, c.want)
		}
	}
	if got := SetterNote(node(on, "example.com/other"), "example.com/other"); !strings.HasPrefix(got, "nfd-master set it") {
		t.Errorf("a label in its own namespace listed as such: SetterNote = %q", got)
	}
}
