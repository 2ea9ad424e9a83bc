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
	"k8s.io/client-go/kubernetes"

	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/nodestate"
	"github.com/nodeconform/nodeconform/framework/profile"
	"github.com/nodeconform/nodeconform/framework/report"
)

// cgroupfsCluster is the kind cluster TestCgroupfsCluster creates and
// deletes (kindconfigs/cgroupfs.yaml), beside the lab cluster.
const cgroupfsCluster = "nodeconform-cgroupfs"

// TestCgroupfsCluster judges a whole cluster on the cgroupfs driver at
// cgroup root "/", one the suites did not grow up on (the lab runs
// systemd at kind's /kubelet): its pod cgroups are plain directories
// (/kubepods/burstable/pod<uid>), gVisor's sandboxes get plain cgroup
// paths, and the kubelet negative controls move the root to a directory
// they make first.
//   - The cgroups and runtimeclass suites pass with the default profile
//     declaring cgroupfs and root "/", every node judged, no pod cgroup a
//     slice.
//   - Worker 2's kubelet then runs without QoS cgroups
//     (--cgroups-per-qos=false): on systemd no pod starts there
//     (TestBrokenNodeIsAFinding); on cgroupfs pods run, outside any pod
//     cgroup, in containerd's own /k8s.io. Exactly the profile, QoS
//     placement, OOM and pids specs fail, each naming worker 2 alone, and
//     the kubelet negative controls move to worker 1 and pass.
func TestCgroupfsCluster(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to create the cgroupfs kind cluster (make cgroupfs-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	t.Setenv("NODECONFORM_CLUSTER", cgroupfsCluster)
	kind := cluster.NewKind(cgroupfsCluster)
	if ok, _ := kind.Exists(); ok {
		t.Logf("kind cluster %q exists: reusing it", cgroupfsCluster)
	}
	t.Cleanup(func() {
		if err := kind.Delete(); err != nil {
			t.Errorf("delete kind cluster %q: %v", cgroupfsCluster, err)
		}
	})
	p, err := profile.Load(labProfile())
	if err != nil {
		t.Fatal(err)
	}
	// Load folds the defaults into each group.
	cgroupfs, root := "cgroupfs", "/"
	for i := range p.Spec.Groups {
		p.Spec.Groups[i].Node.CgroupDriver, p.Spec.Groups[i].Node.CgroupRoot = &cgroupfs, &root
	}
	prof := filepath.Join(t.TempDir(), "cgroupfs-profile.yaml")
	if err := os.WriteFile(prof, mustEncode(t, p), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	o := Options{Mode: ModeApply, KindConfig: "cgroupfs", KeepCluster: true, Profile: prof}

	o.Suites = []string{"cgroups", "runtimeclass"}
	res := runSuites(ctx, t, dir, "cgroupfs", o)
	for _, s := range failed(res) {
		t.Errorf("%s: %s: %s", s.Suite, s.Name, s.Failure)
	}
	rc, err := cluster.LoadKubeconfig(cluster.DefaultKubeconfigPath(cgroupfsCluster), "")
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(rc)
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	judged := 0
	for _, s := range res.Specs {
		if s.Suite != "cgroups" || !strings.Contains(s.Name, profileSpecs) {
			continue
		}
		results, _ := s.Evidence["nodes"].([]any)
		if s.State != report.Passed || len(results) != len(nodes.Items) {
			t.Errorf("profile spec declaring cgroupfs: %s on %d of %d nodes", s.State, len(results), len(nodes.Items))
		}
		judged++
	}
	if judged != 1 {
		t.Errorf("%d cgroups profile specs in the run, want 1", judged)
	}
	// The placement spec's evidence holds each pod cgroup it read.
	placed := false
	for _, s := range res.Specs {
		if !strings.Contains(s.Name, "under the matching QoS cgroup") {
			continue
		}
		b, _ := json.Marshal(s.Evidence)
		raw := string(b)
		placed = strings.Contains(raw, `"/kubepods/burstable/pod`)
		if !placed || strings.Contains(raw, ".slice") {
			t.Errorf("QoS placement on cgroupfs at root /: want pod cgroups under /kubepods and no slice, evidence %s", raw)
		}
	}
	if !placed {
		t.Error("no QoS placement spec read a cgroupfs pod cgroup")
	}

	// Worker 2 without QoS cgroups.
	w2 := ""
	for _, n := range nodes.Items {
		if n.Labels["nodeconform.io/worker"] == "2" {
			w2 = n.Name
		}
	}
	if w2 == "" {
		t.Fatal("no worker labelled nodeconform.io/worker=2")
	}
	undo := setKubeletFlag(ctx, t, cs, w2, "--cgroups-per-qos=false --enforce-node-allocatable=", func(k nodestate.Kubelet) bool {
		return k.CgroupsPerQOS != nil && !*k.CgroupsPerQOS
	})
	defer undo()
	o.Suites = []string{"cgroups"}
	res = runSuites(ctx, t, dir, "cgroupfs-no-qos", o)
	want := []string{profileSpecs, "under the matching QoS cgroup", "allocates past limits.memory", "pod pids limit"}
	f := failed(res)
	for _, part := range unmatched(f, want) {
		t.Errorf("no failing spec matches %q on a cgroupfs worker without QoS cgroups", part)
	}
	if len(f) != len(want) {
		t.Errorf("want %d specs failing (%q), got %d", len(want), want, len(f))
	}
	for _, s := range f {
		t.Logf("failed as wanted: %s: %s", s.Name, s.Failure)
		failsAlone(t, s, w2, len(nodes.Items)-1)
	}
	controls := 0
	for _, s := range res.Specs {
		if strings.Contains(s.Name, "with the kubelet misconfigured") && s.State == report.Passed {
			controls++
		}
	}
	if controls == 0 {
		t.Error("no kubelet negative control passed: with worker 2 unfit, they must run on worker 1")
	}
}
