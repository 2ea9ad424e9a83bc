package runner

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodeconform/nodeconform/framework/access"
	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/profile"
	"github.com/nodeconform/nodeconform/framework/report"
)

// TestProductionLikeCluster judges the production-like target, prepared
// by hack/prodlike before the run (encapsulation on every node, per-pool
// allowlists, the operator's kata overhead), reached only through its
// kubeconfig in verify mode with the probe pulled from the registry:
//   - every suite passes against its profile, the encapsulated column
//     runs, and verify mode changes nothing (the snapshot proof);
//   - a deliberately wrong profile fails with drift messages naming node,
//     field, wanted and found, and the overhead mismatch fails one spec
//     while admission and the pod cgroup are still checked.
func TestProductionLikeCluster(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 and prepare the target (make prodlike-e2e)")
	}
	var st struct{ Kubeconfig, ProbeImage, Profile string }
	data, err := os.ReadFile(os.Getenv("NODECONFORM_PRODLIKE_STATE"))
	if err != nil {
		t.Fatalf("production-like target not prepared (go run ./hack/prodlike up): %v", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		t.Fatal(err)
	}
	// The run holds only what `nodeconform rbac` grants, as a CI service
	// account would: every suite must pass with exactly that role.
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Minute)
	defer cancel()
	least := leastPrivilege(ctx, t, st.Kubeconfig, access.ClusterRole("nodeconform-e2e", access.For(Suites, ModeVerify)))
	res := proveVerifyChangesNothing(t, verifyTarget{kubeconfig: st.Kubeconfig, probeImage: st.ProbeImage, profile: st.Profile, runKubeconfig: least})
	for _, s := range failed(res) {
		t.Errorf("%s: %s: %s", s.Suite, s.Name, s.Failure)
	}
	byName := map[string]report.Spec{}
	for _, s := range res.Specs {
		byName[s.Name] = s
	}
	for _, want := range []string{"runs kubelet and the runtime in one namespace that is not systemd's", "the profile declares"} {
		ran := false
		for n, s := range byName {
			if strings.Contains(n, want) && s.State == report.Passed {
				ran = true
			}
		}
		if !ran {
			t.Errorf("no spec %q passed on the encapsulated cluster", want)
		}
	}

	// The target runs kube-proxy in its nftables mode: the kube-proxy spec
	// must have judged that mode on every node, not skipped it.
	proxySpec := false
	for n, s := range byName {
		if !strings.Contains(n, "has kube-proxy's rules on every node") {
			continue
		}
		proxySpec = true
		nodes, _ := s.Evidence["nodes"].([]any)
		if s.State != report.Passed || len(nodes) == 0 {
			t.Errorf("kube-proxy spec %s (%s), judged on %d nodes", s.State, s.Skip, len(nodes))
		}
		for _, v := range nodes {
			ev, _ := v.(map[string]any)["evidence"].(map[string]any)
			if ev["mode"] != "nftables" {
				t.Errorf("kube-proxy spec judged mode %v on %v, want nftables", ev["mode"], v.(map[string]any)["node"])
			}
		}
	}
	if !proxySpec {
		t.Error("no kube-proxy spec in the run")
	}

	// A wrong profile: drift named.
	rc, err := cluster.LoadKubeconfig(st.Kubeconfig, "")
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(rc)
	nodeOf := func(pool string) string {
		l, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "nodeconform.io/pool=" + pool})
		if err != nil || len(l.Items) != 1 {
			t.Fatalf("pool %s: %v", pool, err)
		}
		return l.Items[0].Name
	}
	p, err := profile.Load(st.Profile)
	if err != nil {
		t.Fatal(err)
	}
	off := "off"
	for i := range p.Spec.Groups {
		g := &p.Spec.Groups[i]
		switch g.Name {
		case "messaging":
			l := []string{"kernel.msg*"}
			g.Node.AllowedUnsafeSysctls = &l
		case "shm":
			g.Node.Encapsulation = &off
		}
	}
	p.Spec.RuntimeClasses[0].Overhead = map[string]resource.Quantity{"cpu": resource.MustParse("500m"), "memory": resource.MustParse("500Mi")}
	wrong := filepath.Join(t.TempDir(), "wrong-profile.yaml")
	out, err := profile.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(wrong, out, 0o644); err != nil {
		t.Fatal(err)
	}
	wr := runSuites(ctx, t, t.TempDir(), "wrong-profile", Options{Kubeconfig: least, ProbeImage: st.ProbeImage, Profile: wrong,
		Suites: []string{"sysctl", "encapsulation", "runtimeclass"}})
	wantFail := map[string]string{
		"has on each node the kubelet allowlist the profile declares":       "node " + nodeOf("messaging") + ": allowedUnsafeSysctls: wanted kernel.msg*, found kernel.msg*,net.core.somaxconn",
		"has on each node the encapsulation the profile declares":           "node " + nodeOf("shm") + ": encapsulation: wanted off, found on",
		"declares the expected handler, overhead.podFixed and nodeSelector": "cpu",
	}
	got := map[string]report.Spec{}
	for _, s := range wr.Specs {
		for short := range wantFail {
			if strings.HasSuffix(s.Name, short) {
				got[short] = s
			}
		}
		if s.State == report.Failed {
			known := false
			for short := range wantFail {
				known = known || strings.HasSuffix(s.Name, short)
			}
			if !known {
				t.Errorf("unexpected failure with the wrong profile: %s: %s", s.Name, s.Failure)
			}
		}
	}
	for short, msg := range wantFail {
		s := got[short]
		if s.State != report.Failed || !strings.Contains(s.Failure, msg) {
			t.Errorf("%q: want failed with %q, got %s: %s", short, msg, s.State, s.Failure)
		}
	}
	// The overhead mismatch hides nothing: admission and the pod cgroup
	// are checked against the overhead the cluster declares.
	for _, s := range wr.Specs {
		if (strings.Contains(s.Name, "has admission copy the RuntimeClass overhead") || strings.Contains(s.Name, "limits plus the overhead into the pod cgroup")) && s.State != report.Passed {
			t.Errorf("%s: %s (%s%s)", s.Name, s.State, s.Skip, s.Failure)
		}
	}

	// An account short of two permissions (one every probe suite uses,
	// one only the runtimeclass suite does) is refused before the run
	// creates anything, both named.
	refusedForMissing(ctx, t, st.Kubeconfig, st.ProbeImage, []string{"create pods/exec in every namespace", "list runtimeclasses.node.k8s.io (cluster-scoped)"})
	eachSuiteWithItsOwnRole(ctx, t, st.Kubeconfig, st.ProbeImage, st.Profile)
}
