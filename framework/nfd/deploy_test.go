package nfd

import (
	"strings"
	"testing"
	"time"

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
