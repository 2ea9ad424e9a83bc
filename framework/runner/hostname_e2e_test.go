package runner

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kindcmd "sigs.k8s.io/kind/pkg/cmd"

	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/profile"
	"github.com/nodeconform/nodeconform/framework/report"
)

// TestHostnameLabelIsNotTheNodeName runs on a cluster whose nodes'
// kubernetes.io/hostname labels are not their names, as where a cloud
// provider names the node or an admin relabelled it (here the control
// plane and worker 2, relabelled behind nodeconform's back):
//   - `profile capture` selects the hostname group by the label's values,
//     so every node is in the group made for it (it named the nodes and
//     left worker 2 in no group, never judged);
//   - the sysctl suite's workload templates reach every judged node (their
//     DaemonSet selected hostnames by node name and never became Ready);
//   - the RuntimeClass scheduling spec selects its tainted target by its
//     hostname label (it waited 2 min for a pod no node matched).
func TestHostnameLabelIsNotTheNodeName(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run on the kind cluster (make findings-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cs := kindClient(t)
	const key = "kubernetes.io/hostname"
	relabel := func(node, value string) {
		t.Helper()
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{key: value}}})
		if _, err := cs.CoreV1().Nodes().Patch(ctx, node, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
			t.Fatalf("label %s: %v", node, err)
		}
	}
	prefix := config.Default().Cluster.Name
	for _, n := range []string{prefix + "-control-plane", prefix + "-worker2"} {
		relabel(n, n+".corp.example")
		t.Cleanup(func() {
			patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{key: n}}})
			if _, err := cs.CoreV1().Nodes().Patch(context.Background(), n, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
				t.Errorf("restore %s's hostname label: %v", n, err)
			}
		})
	}

	captured, err := e2e.CaptureProfile(ctx, e2e.Settings{SourceDir: e2e.FindModuleRoot(), KindConfig: "default"}, "relabelled", kindcmd.NewLogger())
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	data, err := profile.Encode(captured)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("captured:\n%s", data)
	if !strings.Contains(string(data), prefix+"-worker2.corp.example") {
		t.Errorf("the captured profile does not select worker 2 by its hostname label")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "relabelled.yaml")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}

	res := runSuites(ctx, t, dir, "relabelled", Options{Mode: ModeApply, Profile: path, Suites: []string{"sysctl", "runtimeclass"},
		Focus: []string{"carries sysctls from Deployment", "merges the RuntimeClass's nodeSelector"}})
	if f := failed(res); len(f) != 0 {
		t.Errorf("failed on a cluster whose hostname labels are not the node names: %+v", f)
	}
	passed := 0
	for _, s := range res.Specs {
		if s.State == report.Passed {
			passed++
		}
	}
	if passed != 2 {
		t.Errorf("want the two specs passed, got %d", passed)
	}
}
