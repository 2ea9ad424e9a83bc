package runner

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/report"
)

// singleCluster is the kind cluster TestSingleNodeCluster creates and
// deletes (kindconfigs/single.yaml), beside the lab cluster.
const singleCluster = "nodeconform-single"

// TestSingleNodeCluster runs nodeconform on a cluster of one node, the
// control plane, which also runs the pods (an edge or single-node
// OpenShift cluster), a shape no other test has:
//   - every suite passes (the cluster suite skipped its whole pod
//     traffic container for want of two workers, Services and DNS
//     unchecked); only the traffic between nodes is skipped, naming the
//     node, and the Service and DNS specs pass on it;
//   - kube-proxy's DaemonSet deleted: the new Service's spec fails, and
//     the DNS spec after it still runs and passes (its name resolves
//     through the rules kube-proxy left for kube-dns; the Ordered
//     container used to skip it after the Service failure);
//   - CoreDNS scaled to zero: the DNS spec fails.
func TestSingleNodeCluster(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to create the single-node kind cluster (make single-e2e)")
	}
	// Below make single-e2e's go test timeout (30m), whose panic would
	// skip the cleanup.
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Minute)
	defer cancel()
	t.Setenv("NODECONFORM_CLUSTER", singleCluster)
	kind := cluster.NewKind(singleCluster)
	// A cluster left by a killed run has its kube-proxy and CoreDNS broken.
	if ok, _ := kind.Exists(); ok {
		if err := kind.Delete(); err != nil {
			t.Fatalf("delete the kind cluster %q a killed run left: %v", singleCluster, err)
		}
	}
	t.Cleanup(func() {
		if err := kind.Delete(); err != nil {
			t.Errorf("delete kind cluster %q: %v", singleCluster, err)
		}
	})
	dir := t.TempDir()
	o := Options{Mode: ModeApply, KindConfig: "single", KeepCluster: true}
	res := runSuites(ctx, t, dir, "all", o)
	for _, s := range failed(res) {
		t.Errorf("%s: %s: %s", s.Suite, s.Name, s.Failure)
	}
	state := func(res report.Results, name string) report.Spec {
		for _, s := range res.Specs {
			if s.Suite == "cluster" && strings.Contains(s.Name, name) {
				return s
			}
		}
		t.Fatalf("no cluster spec %q in the run", name)
		return report.Spec{}
	}
	const podIP, service, dns = "by pod IP", "ClusterIP Service", "through cluster DNS"
	rc, err := cluster.LoadKubeconfig(cluster.DefaultKubeconfigPath(singleCluster), "")
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(rc)
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != 1 {
		t.Fatalf("want one node: %v %v", len(nodes.Items), err)
	}
	node := nodes.Items[0].Name
	if s := state(res, podIP); s.State != report.Skipped || !strings.Contains(s.Skip, node) {
		t.Errorf("traffic between nodes on one node: %s %q", s.State, s.Skip)
	}
	for _, n := range []string{service, dns} {
		if s := state(res, n); s.State != report.Passed {
			t.Errorf("%s on a single node: %s %s", n, s.State, s.Failure)
		}
	}

	// The cluster's networking broken behind nodeconform's back, a
	// shorter retry window so that each failure costs 20 s, not 90.
	cfg := filepath.Join(dir, "short.yaml")
	if err := os.WriteFile(cfg, []byte("timeouts:\n  networkCheck: 5s\n  networkCheckWindow: 20s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o.Suites, o.ConfigFile = []string{"cluster"}, cfg
	if err := cs.AppsV1().DaemonSets("kube-system").Delete(ctx, "kube-proxy", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	res = runSuites(ctx, t, dir, "no-kube-proxy", o)
	if s := state(res, service); s.State != report.Failed {
		t.Errorf("a Service with no kube-proxy: %s", s.State)
	}
	if s := state(res, dns); s.State != report.Passed {
		t.Errorf("DNS after the Service spec failed: %s %s%s (it must run on its own)", s.State, s.Skip, s.Failure)
	}
	zero := []byte(`{"spec":{"replicas":0}}`)
	if _, err := cs.AppsV1().Deployments("kube-system").Patch(ctx, "coredns", types.MergePatchType, zero, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	o.Focus = []string{dns}
	res = runSuites(ctx, t, dir, "no-coredns", o)
	if s := state(res, dns); s.State != report.Failed || !strings.Contains(s.Failure, "DNS lookup") {
		t.Errorf("DNS with CoreDNS at zero replicas: %s %s", s.State, s.Failure)
	}
}
