package runner

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	kindcmd "sigs.k8s.io/kind/pkg/cmd"

	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/nodestate"
	"github.com/nodeconform/nodeconform/framework/profile"
	"github.com/nodeconform/nodeconform/framework/report"
	"github.com/nodeconform/nodeconform/framework/snapshot"
)

// profileSpecs focuses a run on every suite's "equals the profile" spec.
const profileSpecs = "the profile declares"

// TestProfileJudgesDrift proves the profile checks on the kind cluster,
// against states nodeconform's suites did not set up for them:
//   - the shipped lab profile passes; a profile captured from the cluster
//     passes; the captured profile with one value edited fails exactly the
//     spec owning that field, with the value in its message;
//   - a worker whose kubelet allowlist grew (changed with docker exec, not
//     through the suites) fails the sysctl profile spec naming the node,
//     the field, the wanted and the found value, while the kernel-obeys
//     checks still pass; `diff` of the runs before and after shows the
//     drift and fails with --fail-on-drift.
func TestProfileJudgesDrift(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run on the kind cluster (make findings-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cs := kindClient(t)
	dir := t.TempDir()
	lab := labProfile()
	run := func(label, prof string, suites []string, focus ...string) report.Results {
		t.Helper()
		return runSuites(ctx, t, dir, label, Options{Profile: prof, Suites: suites, Focus: focus})
	}
	profileSuites := []string{"sysctl", "cgroups", "encapsulation"}

	// 1. The shipped profile and a captured one pass.
	if f := failed(run("lab", lab, profileSuites, profileSpecs)); len(f) != 0 {
		t.Fatalf("the lab profile fails on the lab cluster: %+v", f)
	}
	captured, err := e2e.CaptureProfile(ctx, e2e.Settings{SourceDir: e2e.FindModuleRoot(), KindConfig: "default"}, "captured", kindcmd.NewLogger())
	if err != nil {
		t.Fatalf("capture: %v", err)
	}
	write := func(file string, p *profile.Profile) string {
		data, err := profile.Encode(p)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, file)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s:\n%s", file, data)
		return path
	}
	if f := failed(run("captured", write("captured.yaml", captured), profileSuites, profileSpecs)); len(f) != 0 {
		t.Fatalf("a profile captured from the cluster fails on it: %+v", f)
	}

	// 2. One value edited: exactly the owning spec fails, naming it.
	edited, err := profile.Parse(mustEncode(t, captured))
	if err != nil {
		t.Fatal(err)
	}
	g := &edited.Spec.Groups[len(edited.Spec.Groups)-1]
	if g.Node.PodPidsLimit == nil {
		t.Fatalf("captured group %s declares no podPidsLimit", g.Name)
	}
	wrong := *g.Node.PodPidsLimit + 1
	g.Node.PodPidsLimit = &wrong
	f := failed(run("edited", write("edited.yaml", edited), profileSuites, profileSpecs))
	if len(f) != 1 || f[0].Suite != "cgroups" || !strings.Contains(f[0].Failure, fmt.Sprintf("podPidsLimit: wanted %d, found %d", wrong, wrong-1)) {
		t.Fatalf("want exactly the cgroups profile spec failing on podPidsLimit %d, got %+v", wrong, f)
	}

	// 3. A worker's allowlist grows behind nodeconform's back.
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "nodeconform.io/worker=2"})
	if err != nil || len(nodes.Items) != 1 {
		t.Fatalf("worker 2: %v %d", err, len(nodes.Items))
	}
	worker := nodes.Items[0].Name
	before := run("before", lab, []string{"sysctl"})
	if f := failed(before); len(f) != 0 {
		t.Fatalf("sysctl suite fails before the change: %+v", f)
	}
	undo := setKubeletFlag(ctx, t, cs, worker, "--allowed-unsafe-sysctls=kernel.msg*", func(k nodestate.Kubelet) bool {
		return profile.CanonicalList(k.AllowedUnsafeSysctls) == "kernel.msg*"
	})
	defer undo()
	after := run("after", lab, []string{"sysctl"})
	f = failed(after)
	want := fmt.Sprintf("node %s: allowedUnsafeSysctls: wanted \"\", found kernel.msg*", worker)
	if len(f) != 1 || !strings.Contains(f[0].Failure, want) {
		t.Fatalf("want only the profile spec failing with %q, got %+v", want, f)
	}
	changes := report.Diff(before, after)
	drift := false
	for _, c := range changes {
		if c.Kind == report.KindDrift && c.Node == worker && c.Field == profile.FieldAllowedUnsafeSysctls {
			drift = true
		}
	}
	var out bytes.Buffer
	report.PrintDiff(&out, changes)
	t.Logf("diff before/after:\n%s", out.String())
	if !drift {
		t.Errorf("diff shows no allowlist drift on %s", worker)
	}
	if len(report.Failures(changes, report.DiffOptions{FailOnDrift: true})) == 0 {
		t.Errorf("diff --fail-on-drift would pass")
	}
}

func failed(res report.Results) []report.Spec {
	var out []report.Spec
	for _, s := range res.Specs {
		if s.State == report.Failed {
			out = append(out, s)
		}
	}
	return out
}

// addKubeletFlag is a node script appending flag to the kubelet's extra
// arguments in file (the kind nodes' /etc/default/kubelet) and restarting
// the kubelet.
func addKubeletFlag(file, flag string) string {
	return fmt.Sprintf(`grep -q '^KUBELET_EXTRA_ARGS=' %[1]s || echo 'KUBELET_EXTRA_ARGS=' >> %[1]s; sed -i 's|^KUBELET_EXTRA_ARGS=\(.*\)$|KUBELET_EXTRA_ARGS=\1 %[2]s|' %[1]s; systemctl restart kubelet`, file, flag)
}

// unmatched returns the parts of want that no spec of f has in its name.
func unmatched(f []report.Spec, want []string) []string {
	var out []string
	for _, part := range want {
		if !slices.ContainsFunc(f, func(s report.Spec) bool { return strings.Contains(s.Name, part) }) {
			out = append(out, part)
		}
	}
	return out
}

func mustEncode(t *testing.T, p *profile.Profile) []byte {
	t.Helper()
	data, err := profile.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// setKubeletFlag adds a flag to a kind node's kubelet (KUBELET_EXTRA_ARGS
// in /etc/default/kubelet, through docker exec: the suites play no part),
// restarts it, and waits until configz shows ready(k). The returned undo
// restores the file and waits for the kubelet to drop the change.
func setKubeletFlag(ctx context.Context, t *testing.T, cs kubernetes.Interface, node, flag string, ready func(nodestate.Kubelet) bool) func() {
	t.Helper()
	const file, saved = "/etc/default/kubelet", "/etc/default/kubelet.nodeconform-test"
	sh := func(script string) {
		t.Helper()
		if err := dockerExec(ctx, node, script); err != nil {
			t.Fatal(err)
		}
	}
	wait := func(what string, ok func(nodestate.Kubelet) bool) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for time.Now().Before(deadline) {
			if k, err := nodestate.ReadKubelet(ctx, cs, node); err == nil && ok(k) {
				return
			}
			time.Sleep(time.Second)
		}
		t.Fatalf("kubelet on %s: %s not seen in configz within 3m", node, what)
	}
	orig, err := nodestate.ReadKubelet(ctx, cs, node)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	undo := func() {
		once.Do(func() {
			// The marker says there was no file: remove ours.
			sh(fmt.Sprintf(`if test -e %[2]s; then if grep -qx '#nodeconform:absent' %[2]s; then rm -f %[2]s %[1]s; else mv %[2]s %[1]s; fi; fi; systemctl restart kubelet`, file, saved))
			origState := orig.State()
			wait("the original configuration", func(k nodestate.Kubelet) bool {
				for f, v := range k.State() {
					if origState[f] != v {
						return false
					}
				}
				return true
			})
		})
	}
	// The copy first, then the undo registered, then the change: a
	// failure anywhere after the copy still restores the node.
	sh(fmt.Sprintf(`set -e; if test -e %[1]s; then cp -p %[1]s %[2]s; else echo '#nodeconform:absent' > %[2]s; fi`, file, saved))
	t.Cleanup(undo)
	sh(fmt.Sprintf("set -e; touch %s; ", file) + addKubeletFlag(file, flag))
	wait(flag, ready)
	return undo
}

// workers returns the kind cluster's workers (nodeconform.io/worker
// label), in label order.
func workers(ctx context.Context, t *testing.T, cs kubernetes.Interface) []string {
	t.Helper()
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: "nodeconform.io/worker"})
	if err != nil || len(list.Items) < 2 {
		t.Fatalf("want 2 workers labelled nodeconform.io/worker: %v", err)
	}
	out := make([]string, len(list.Items))
	for i, n := range list.Items {
		out[i] = n.Name
	}
	return out
}

func kindClient(t *testing.T) kubernetes.Interface {
	t.Helper()
	name := config.Default().Cluster.Name
	if ok, err := cluster.NewKind(name).Exists(); err != nil || !ok {
		t.Fatalf("kind cluster %q does not exist (make cluster first): %v", name, err)
	}
	rc, err := cluster.LoadKubeconfig(cluster.DefaultKubeconfigPath(name), "")
	if err != nil {
		t.Fatal(err)
	}
	return kubernetes.NewForConfigOrDie(rc)
}

// runSuites runs o (verify mode unless set; report and suite
// directories under dir/label) and logs its summary.
func runSuites(ctx context.Context, t *testing.T, dir, label string, o Options) report.Results {
	t.Helper()
	if o.Mode == "" {
		o.Mode = ModeVerify
	}
	o.ReportDir, o.SuitesDir, o.SourceDir, o.Quiet = filepath.Join(dir, label), filepath.Join(dir, "suites"), e2e.FindModuleRoot(), true
	if o.Timeout == 0 {
		o.Timeout = 15 * time.Minute
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(o.SuitesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var summary bytes.Buffer
	res, err := Run(ctx, o, kindcmd.NewLogger(), &summary)
	report.Summary(&summary, res.Specs)
	t.Logf("run %s:\n%s", label, summary.String())
	if err != nil {
		t.Fatalf("run %s: %v", label, err)
	}
	return res
}

// labProfile is the default kind cluster's profile.
func labProfile() string {
	return filepath.Join(e2e.FindModuleRoot(), "kindconfigs", "default-profile.yaml")
}

// TestMisconfiguredWorker breaks one kubelet setting the cgroups suite
// checks on each worker in turn, behind the suites' back: the CFS quota
// switched off (throttling, limit files and the profile spec must fail)
// and the cgroup root moved to "/" (its pods land in /kubepods.slice
// instead of /kubelet.slice/kubelet-kubepods.slice: QoS placement and the
// profile spec must fail). Each failure must name exactly that worker;
// the other nodes pass.
func TestMisconfiguredWorker(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run on the kind cluster (make findings-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	cs := kindClient(t)
	dir := t.TempDir()
	cases := []struct {
		name, flag string
		applied    func(nodestate.Kubelet) bool
		focus      []string
		want       []string // the failing specs, by a part of their names
		// after cleans what the kubelet leaves once the flag is gone.
		after string
	}{
		{name: "cfs", flag: "--cpu-cfs-quota=false",
			applied: func(k nodestate.Kubelet) bool { return k.CPUCFSQuota != nil && !*k.CPUCFSQuota },
			focus:   []string{"throttles", "cgroup files", profileSpecs},
			want:    []string{"throttles", "cgroup files", profileSpecs}},
		{name: "cgroup-root", flag: "--cgroup-root=/",
			applied: func(k nodestate.Kubelet) bool { return profile.CanonicalCgroupRoot(k.CgroupRoot) == "/" },
			focus:   []string{"QoS cgroup", profileSpecs},
			want:    []string{"QoS cgroup", profileSpecs},
			// The kubelet made kubepods.slice at the root and never
			// removes it: a transient systemd slice and empty cgroups.
			after: `systemctl stop kubepods.slice 2>/dev/null; for d in /sys/fs/cgroup/*/kubepods.slice /sys/fs/cgroup/kubepods.slice; do test -d "$d" && find "$d" -depth -type d -exec rmdir {} \; ; done; systemctl daemon-reload; ! ls -d /sys/fs/cgroup/*/kubepods.slice /sys/fs/cgroup/kubepods.slice 2>/dev/null`},
	}
	all := workers(ctx, t, cs)
	for _, c := range cases {
		for _, w := range all {
			t.Run(c.name+"/"+w, func(t *testing.T) {
				undo := setKubeletFlag(ctx, t, cs, w, c.flag, c.applied)
				defer func() {
					undo()
					if c.after == "" {
						return
					}
					if err := dockerExec(ctx, w, c.after); err != nil {
						t.Errorf("clean %s after %s: %v", w, c.flag, err)
					}
				}()
				res := runSuites(ctx, t, dir, c.name+"-"+w, Options{Profile: labProfile(), Suites: []string{"cgroups"}, Focus: c.focus})
				f := failed(res)
				if len(f) != len(c.want) {
					t.Fatalf("%s on %s: want %d specs failing (%v), got %d: %+v", c.flag, w, len(c.want), c.want, len(f), f)
				}
				for _, part := range unmatched(f, c.want) {
					t.Errorf("%s on %s: no failing spec matches %q", c.flag, w, part)
				}
				for _, s := range f {
					if !strings.Contains(s.Failure, "node "+w+":") {
						t.Errorf("%s: failure does not name %s: %s", s.Name, w, s.Failure)
					}
					for _, other := range all {
						if other != w && strings.Contains(s.Failure, "node "+other+":") {
							t.Errorf("%s: failure names the healthy %s: %s", s.Name, other, s.Failure)
						}
					}
				}
			})
		}
	}
}

// TestBrokenNodeIsAFinding makes one worker's kubelet unable to start any
// pod sandbox (cgroupsPerQOS off with the systemd driver: runc refuses the
// cgroup path): the cgroups suite must fail the specs on that node with
// the sandbox error, pass them on the others, and leave nothing behind;
// the nfd suite, deploying NFD, must not wait for that node's nfd-worker
// and must fail that node alone.
func TestBrokenNodeIsAFinding(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run on the kind cluster (make findings-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cs := kindClient(t)
	dir := t.TempDir()
	broken := workers(ctx, t, cs)[1]
	take, _ := nodeSnapshots(ctx, t, cs)
	before := take()
	undo := setKubeletFlag(ctx, t, cs, broken, "--cgroups-per-qos=false --enforce-node-allocatable=", func(k nodestate.Kubelet) bool {
		return k.CgroupsPerQOS != nil && !*k.CgroupsPerQOS
	})
	defer undo()
	res := runSuites(ctx, t, dir, "broken", Options{Profile: labProfile(), Suites: []string{"cgroups"}})
	f := failed(res)
	if len(f) == 0 {
		t.Fatal("no spec failed with a worker that cannot start pods")
	}
	for _, s := range f {
		if !strings.Contains(s.Failure, "node "+broken+":") {
			t.Errorf("%s: failure does not name %s: %s", s.Name, broken, s.Failure)
		}
	}
	sandbox := false
	healthyPassed := 0
	for _, s := range res.Specs {
		if strings.Contains(s.Failure, "FailedCreatePodSandBox") {
			sandbox = true
		}
		results, _ := s.Evidence["nodes"].([]any)
		for _, r := range results {
			m, _ := r.(map[string]any)
			if m["node"] == broken {
				continue
			}
			switch m["state"] {
			case "passed":
				healthyPassed++
			case "failed":
				t.Errorf("%s: healthy node %v failed: %v", s.Name, m["node"], m["finding"])
			}
		}
	}
	if !sandbox {
		t.Errorf("no failure carries the sandbox error (FailedCreatePodSandBox)")
	}
	if healthyPassed == 0 {
		t.Errorf("no check passed on the healthy nodes: results.json has no per-node results")
	}
	noLeftovers(ctx, t, cs)
	// NFD, deployed by the suite (apply mode): the broken node's
	// nfd-worker never starts. The suite must not wait for it until
	// nfd.deploy, and the label specs must fail that node alone.
	start := time.Now()
	res = runSuites(ctx, t, dir, "broken-nfd", Options{Mode: ModeApply, Profile: labProfile(), Suites: []string{"nfd"}})
	took := time.Since(start)
	if limit := config.Default().NFD.Deploy.Duration; took >= limit {
		t.Errorf("the nfd suite took %s with one worker that cannot start pods: it waited for that nfd-worker (nfd.deploy %s)", took.Round(time.Second), limit)
	}
	f = failed(res)
	if len(f) == 0 {
		t.Error("no nfd spec failed with a worker whose nfd-worker cannot start")
	}
	for _, s := range f {
		if !strings.Contains(s.Failure, "node "+broken+":") {
			t.Errorf("nfd %s: failure does not name %s: %s", s.Name, broken, s.Failure)
		}
		for _, other := range workers(ctx, t, cs) {
			if other != broken && strings.Contains(s.Failure, "node "+other+":") {
				t.Errorf("nfd %s: healthy node %s failed: %s", s.Name, other, s.Failure)
			}
		}
	}
	noLeftovers(ctx, t, cs)
	// The kubelet change undone, the nodes must be as before: the run
	// left no file, unit, mount or journal entry.
	undo()
	for _, d := range snapshot.Diff(before, take()) {
		t.Errorf("node-side leftover after the run: %s", d)
	}
}

// noLeftovers fails t for any nodeconform namespace or any cluster-scoped
// object carrying a run label.
func noLeftovers(ctx context.Context, t *testing.T, cs kubernetes.Interface) {
	t.Helper()
	nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range nss.Items {
		if strings.HasPrefix(ns.Name, "nodeconform-") {
			t.Errorf("namespace %s left behind", ns.Name)
		}
	}
	sel := metav1.ListOptions{LabelSelector: e2e.RunLabel}
	var names []string
	if l, err := cs.NodeV1().RuntimeClasses().List(ctx, sel); err == nil {
		for _, o := range l.Items {
			names = append(names, "runtimeclass/"+o.Name)
		}
	}
	if l, err := cs.RbacV1().ClusterRoles().List(ctx, sel); err == nil {
		for _, o := range l.Items {
			names = append(names, "clusterrole/"+o.Name)
		}
	}
	if l, err := cs.RbacV1().ClusterRoleBindings().List(ctx, sel); err == nil {
		for _, o := range l.Items {
			names = append(names, "clusterrolebinding/"+o.Name)
		}
	}
	for _, n := range names {
		t.Errorf("%s carries a run label after the run", n)
	}
}

// TestOverheadMismatchHidesNothing gives the lab cluster a kata
// RuntimeClass someone else chose (the OpenShift operator's 250m / 350Mi,
// made before the run) and runs the runtimeclass suite in apply mode with
// the lab profile (500m / 500Mi): exactly the declaration spec fails,
// naming the values, while admission, scheduling and the pod cgroup are
// still checked against the overhead the cluster declares.
func TestOverheadMismatchHidesNothing(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run on the kind cluster (make findings-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cs := kindClient(t)
	rc := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "kata"}, Handler: "kata",
		Overhead: &nodev1.Overhead{PodFixed: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("350Mi")}}}
	if _, err := cs.NodeV1().RuntimeClasses().Create(ctx, rc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create the operator's RuntimeClass: %v", err)
	}
	defer func() {
		if err := cs.NodeV1().RuntimeClasses().Delete(context.Background(), "kata", metav1.DeleteOptions{}); err != nil {
			t.Errorf("delete RuntimeClass kata: %v", err)
		}
	}()
	res := runSuites(ctx, t, t.TempDir(), "overhead", Options{Mode: ModeApply, Profile: labProfile(), Suites: []string{"runtimeclass"}})
	f := failed(res)
	if len(f) != 1 || !strings.HasSuffix(f[0].Name, "declares the expected handler, overhead.podFixed and nodeSelector") || !strings.Contains(f[0].Failure, "250m") {
		t.Fatalf("want only the declaration spec failing with the cluster's 250m, got %+v", f)
	}
	for _, want := range []string{"has admission copy the RuntimeClass overhead", "counts the overhead when scheduling", "limits plus the overhead into the pod cgroup"} {
		for _, s := range res.Specs {
			if strings.Contains(s.Name, want) && s.State != report.Passed {
				t.Errorf("%s: %s %s%s", s.Name, s.State, s.Skip, s.Failure)
			}
		}
	}
}

// TestDownNodeIsAFinding stops a worker's kubelet and waits until the node
// is down (NotReady for cluster.DownAfter): a run on that cluster (not
// recreated) must go on without waiting for it, fail each spec on that
// worker alone naming its NotReady condition, pass the other nodes, and
// leave no namespace behind although its pods there are never confirmed
// gone by a kubelet.
func TestDownNodeIsAFinding(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run on the kind cluster (make findings-e2e)")
	}
	// The lab's own default would delete and recreate a cluster with a
	// node down; a user's cluster is judged as it is.
	t.Setenv("NODECONFORM_RECREATE_BROKEN", "0")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cs := kindClient(t)
	down := workers(ctx, t, cs)[1]
	t.Cleanup(func() {
		if err := dockerExec(context.Background(), down, "systemctl start kubelet"); err != nil {
			t.Error(err)
		}
		if err := waitNodeReady(context.Background(), cs, down); err != nil {
			t.Errorf("restore %s: %v", down, err)
		}
	})
	if err := dockerExec(ctx, down, "systemctl stop kubelet"); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	for {
		n, err := cs.CoreV1().Nodes().Get(ctx, down, metav1.GetOptions{})
		if err == nil && len(cluster.Down([]corev1.Node{*n}, time.Now(), cluster.DownAfter)) == 1 {
			break
		}
		if time.Since(stopped) > 5*time.Minute {
			t.Fatalf("%s not down 5 minutes after its kubelet stopped: %v", down, err)
		}
		time.Sleep(5 * time.Second)
	}
	t.Logf("%s down %s after its kubelet stopped", down, time.Since(stopped).Round(time.Second))
	start := time.Now()
	res := runSuites(ctx, t, t.TempDir(), "down", Options{Profile: labProfile(), Suites: []string{"primitives"}})
	took := time.Since(start)
	t.Logf("primitives with %s down: %s", down, took.Round(100*time.Millisecond))
	if limit := config.Default().Timeouts.PodReady.Duration; took >= limit {
		t.Errorf("the run took %s with %s down: it waited for that node (timeouts.podReady %s)", took.Round(time.Second), down, limit)
	}
	f := failed(res)
	if len(f) == 0 {
		t.Fatalf("no spec failed with %s down", down)
	}
	healthyPassed := 0
	for _, s := range f {
		if !strings.Contains(s.Failure, "node "+down+":") || !strings.Contains(s.Failure, "not Ready: Ready Unknown") {
			t.Errorf("%s: failure does not name %s and its NotReady condition: %s", s.Name, down, s.Failure)
		}
	}
	for _, s := range res.Specs {
		results, _ := s.Evidence["nodes"].([]any)
		for _, r := range results {
			m, _ := r.(map[string]any)
			switch {
			case m["node"] == down:
			case m["state"] == "passed":
				healthyPassed++
			default:
				t.Errorf("%s: node %v, which is up, is %v: %v", s.Name, m["node"], m["state"], m["finding"])
			}
		}
	}
	if healthyPassed == 0 {
		t.Error("no check passed on the nodes that are up")
	}
	noLeftovers(ctx, t, cs)
}
