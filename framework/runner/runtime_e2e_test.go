package runner

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/nodeimage"
	"github.com/nodeconform/nodeconform/framework/report"
	"github.com/nodeconform/nodeconform/framework/vmnode"
)

// wrappedRuntime makes a node's default runtime rewrite each OCI bundle
// before runc sees it, as a runtime (or a wrapper in front of it) that
// drops or alters what the kubelet asked for would: a wrapper applies
// sed expressions to each bundle's config.json and runs the node's runc;
// a containerd drop-in (the node image imports
// /run/nodeconform/containerd.d/*.toml) makes it runc's binary;
// containerd is restarted. The wrapper is not under /run, which kind
// nodes mount noexec; undo removes both. %[1]s is the wrapper's path,
// %[2]s the drop-in's, %[3]s what it does (a comment), %[4]s the sed
// arguments, %[5]s the drop-in's text (runtimeWrapper.dropInText).
const wrappedRuntime = `set -e
real=$(command -v runc)
mkdir -p "$(dirname %[1]s)" "$(dirname %[2]s)"
cat > %[1]s <<EOF
#!/bin/sh
# nodeconform test: %[3]s
prev="" bundle=""
for a in "\$@"; do
  case "\$prev" in --bundle|-b) bundle=\$a ;; esac
  case "\$a" in --bundle=*) bundle=\${a#--bundle=} ;; esac
  prev=\$a
done
if [ -n "\$bundle" ] && [ -f "\$bundle/config.json" ]; then
  sed -i %[4]s "\$bundle/config.json"
fi
exec $real "\$@"
EOF
chmod 0755 %[1]s
cat > %[2]s <<EOF
%[5]sEOF
systemctl restart containerd`

// runtimeWrapper is one wrappedRuntime: where it goes and what it does.
type runtimeWrapper struct {
	wrapper, dropIn, what, sed string
	// handlers are the runc-backed runtime handlers the wrapper serves
	// (runc alone when empty): the lab's kata is runc under another name.
	handlers []string
}

// dropInText makes the wrapper the runc binary of each of w's handlers.
func (w runtimeWrapper) dropInText() string {
	handlers := w.handlers
	if len(handlers) == 0 {
		handlers = []string{"runc"}
	}
	var b strings.Builder
	b.WriteString("version = 3\n")
	for _, h := range handlers {
		fmt.Fprintf(&b, `[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.%[1]s]
  runtime_type = "io.containerd.runc.v2"
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.%[1]s.options]
    SystemdCgroup = true
    BinaryName = "%[2]s"
`, h, w.wrapper)
	}
	return b.String()
}

// ignoringResources drops linux.resources.cpu.shares and
// linux.resources.memory (the limit and the swap limit that goes with
// it) from each bundle, of runc and of the runc-backed kata handler.
var ignoringResources = runtimeWrapper{
	wrapper:  "/usr/local/libexec/nodeconform-test/runc-ignoring-resources",
	dropIn:   "/run/nodeconform/containerd.d/zz-test-runc-ignoring-resources.toml",
	what:     "runc without the pod's CPU shares and memory limit (TestRuntimeIgnoringResources)",
	sed:      `-e 's/"shares": *[0-9]*, *//' -e 's/"memory": *{[^}]*}/"memory":{}/'`,
	handlers: []string{"runc", "kata"},
}

// install is the script that installs w; uninstall the one that undoes it.
func (w runtimeWrapper) install() string {
	return fmt.Sprintf(wrappedRuntime, w.wrapper, w.dropIn, w.what, w.sed, w.dropInText())
}

func (w runtimeWrapper) uninstall() string {
	return fmt.Sprintf("rm -rf %s %s && systemctl restart containerd", w.dropIn, filepath.Dir(w.wrapper))
}

// wrapOn installs w on the kind node node behind nodeconform's back and
// waits until the node is Ready again; the test's cleanup undoes it.
func wrapOn(ctx context.Context, t *testing.T, cs kubernetes.Interface, node string, w runtimeWrapper) {
	t.Helper()
	t.Cleanup(func() {
		err := dockerExec(context.Background(), node, w.uninstall())
		if err == nil {
			err = waitNodeReady(context.Background(), cs, node)
		}
		if err != nil {
			t.Errorf("restore %s: %v", node, err)
		}
	})
	if err := dockerExec(ctx, node, w.install()); err != nil {
		t.Fatal(err)
	}
	if err := waitNodeReady(ctx, cs, node); err != nil {
		t.Fatal(err)
	}
}

// failsAlone checks a failed spec's per-node results: broken failed, and
// at least others other nodes were judged and passed.
func failsAlone(t *testing.T, s report.Spec, broken string, others int) {
	t.Helper()
	failsOn(t, s, map[string]bool{broken: true}, others)
}

// failsOn is failsAlone for several broken nodes.
func failsOn(t *testing.T, s report.Spec, broken map[string]bool, others int) {
	t.Helper()
	results, _ := s.Evidence["nodes"].([]any)
	passed := 0
	for _, r := range results {
		m, _ := r.(map[string]any)
		node, _ := m["node"].(string)
		switch {
		case broken[node] && m["state"] != "failed":
			t.Errorf("%s: %s is %v, want failed", s.Name, node, m["state"])
		case !broken[node] && m["state"] != "passed":
			t.Errorf("%s: %v, which nothing broke, is %v: %v", s.Name, node, m["state"], m["finding"])
		case !broken[node]:
			passed++
		}
	}
	if passed < others {
		t.Errorf("%s: want %d or more other nodes judged and passed, got %d in %v", s.Name, others, passed, results)
	}
}

// TestRuntimeIgnoringResources proves the cgroups suite's limit-file
// check on a node whose runtime does not apply the pod's resources, made
// so behind nodeconform's back on one node per cgroup version (worker 2
// with docker exec; the cgroup v2 VM, when joined, over ssh): the check
// must fail on exactly those nodes, naming cpu.shares (v1) or cpu.weight
// (v2) and the memory limit, and pass on the others. On v2 these are the
// two files no kubelet setting can unset (cpu.weight, memory.max). Every
// node is restored (drop-in and wrapper removed, containerd restarted).
func TestRuntimeIgnoringResources(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run on the kind cluster (make vm-e2e: worker 2 and the VM node)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cs := kindClient(t)
	type target struct {
		node, cgroup string
		sh           func(ctx context.Context, script string) error
	}
	w2 := workers(ctx, t, cs)[1]
	targets := []target{{node: w2, cgroup: "v1", sh: func(ctx context.Context, s string) error { return dockerExec(ctx, w2, s) }}}
	prof := labProfile()
	ms, err := vmnode.Attached(vmnode.DefaultStateRoot(nodeimage.DefaultOptions(nil).CacheDir), config.Default().Cluster.Name)
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) > 0 {
		m := ms[0]
		targets = append(targets, target{node: m.Node, cgroup: "v2", sh: func(ctx context.Context, s string) error {
			out, err := m.Run(ctx, s)
			if err != nil {
				return fmt.Errorf("%s on %s: %v %s", s, m.Node, err, out)
			}
			return nil
		}})
		prof = filepath.Join(e2e.FindModuleRoot(), "kindconfigs", "vm-profile.yaml")
	}
	for _, tg := range targets {
		t.Cleanup(func() {
			err := tg.sh(context.Background(), ignoringResources.uninstall())
			if err == nil {
				err = waitNodeReady(context.Background(), cs, tg.node)
			}
			if err != nil {
				t.Errorf("restore %s: %v", tg.node, err)
			}
		})
		if err := tg.sh(ctx, ignoringResources.install()); err != nil {
			t.Fatal(err)
		}
		if err := waitNodeReady(ctx, cs, tg.node); err != nil {
			t.Fatal(err)
		}
	}
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res := runSuites(ctx, t, t.TempDir(), "ignoring-resources", Options{Profile: prof, Suites: []string{"cgroups"}, Focus: []string{"writes limits.cpu, limits.memory, requests.cpu"}})
	f := failed(res)
	if len(f) != 1 {
		t.Fatalf("want the limit-file spec failing, got %d failed: %+v", len(f), f)
	}
	msg := f[0].Failure
	if want := fmt.Sprintf("%d of %d nodes fail", len(targets), len(list.Items)); !strings.Contains(msg, want) {
		t.Errorf("want %q: %s", want, msg)
	}
	for _, tg := range targets {
		line := ""
		for _, l := range strings.Split(msg, "\n") {
			if strings.HasPrefix(l, "node "+tg.node+": ") {
				line = l
			}
		}
		cpu := "cpu.shares 1024, want 102"
		if tg.cgroup == "v2" {
			cpu = "cpu.weight 100, want"
		}
		if !strings.Contains(line, cpu) || !strings.Contains(line, "want 67108864") {
			t.Errorf("node %s (cgroup %s): want %q and the memory limit 67108864 named, got %q", tg.node, tg.cgroup, cpu, line)
		}
	}

	// The runtimeclass OOM spec, per node, on the runc-backed kata class
	// (the wrapper serves its handler too): its container allocates
	// 128 MiB past a 32 MiB limit the runtime no longer applies, so no
	// OOM kill comes on the wrapped nodes; the others report OOMKilled.
	// A short pod timeout bounds the wait for the kill that never comes
	// (a runc pod OOMs within seconds of its start on a kind node).
	cfg := "timeouts:\n  podReady: 60s\n"
	if len(ms) > 0 {
		cfg = "timeouts:\n  podReady: 2m\n  probeReady: 5m\n"
	}
	cfgFile := filepath.Join(t.TempDir(), "oom-config.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	res = runSuites(ctx, t, t.TempDir(), "ignoring-memory-limit", Options{Mode: ModeApply, Profile: prof, ConfigFile: cfgFile,
		Suites: []string{"runtimeclass"}, Focus: []string{"RuntimeClass kata kills a sandboxed container"}})
	f = failed(res)
	if len(f) != 1 {
		t.Fatalf("want the kata class's OOM spec failing, got %d failed: %+v", len(f), f)
	}
	broken := map[string]bool{}
	for _, tg := range targets {
		broken[tg.node] = true
	}
	failsOn(t, f[0], broken, len(list.Items)-len(broken))
	// Each broken node judged, and failed for the kill that never came.
	judged := map[string]string{}
	results, _ := f[0].Evidence["nodes"].([]any)
	for _, r := range results {
		m, _ := r.(map[string]any)
		node, _ := m["node"].(string)
		finding, _ := m["finding"].(string)
		judged[node] = finding
		switch {
		case !broken[node]:
		case !strings.Contains(finding, "not terminated with OOMKilled"):
			t.Errorf("OOM spec: %s failed for another reason: %s", node, finding)
		case node == w2 && !strings.Contains(finding, "now running since"):
			t.Errorf("OOM spec: %s: want its container seen running past the limit, got: %s", node, finding)
		}
	}
	for n := range broken {
		if _, ok := judged[n]; !ok {
			t.Errorf("OOM spec: %s was not judged (nodes judged: %v)", n, judged)
		}
	}
	if len(judged) != len(list.Items) {
		t.Errorf("OOM spec: want every one of %d nodes judged, got %d", len(list.Items), len(judged))
	}
}

// waitNodeReady waits until node reports Ready (a restarted runtime
// takes it NotReady for a moment).
func waitNodeReady(ctx context.Context, cs kubernetes.Interface, node string) error {
	return waitNode(ctx, cs, node, func(*corev1.Node) bool { return true })
}

// waitNode waits up to 3 minutes until node has been Ready and ok(node)
// for 12 s on end: a kubelet that polled the runtime during its restart
// reports the node NotReady a few seconds later, and the runs after this
// must not meet that.
func waitNode(ctx context.Context, cs kubernetes.Interface, node string, ok func(*corev1.Node) bool) error {
	const stable = 12 * time.Second
	deadline := time.Now().Add(3 * time.Minute)
	var last string
	var since time.Time
	for time.Now().Before(deadline) {
		n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		good := false
		if err == nil {
			ready := len(cluster.NotReady([]corev1.Node{*n})) == 0
			good = ready && ok(n)
			last = fmt.Sprintf("ready %v, runtime handlers %v", ready, n.Status.RuntimeHandlers)
		} else {
			last = err.Error()
		}
		switch {
		case !good:
			since = time.Time{}
		case since.IsZero():
			since = time.Now()
		case time.Since(since) >= stable:
			return nil
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("node %s: not as wanted for %s on end within 3m (last: %s)", node, stable, last)
}

// ignoringPropagation makes every private bind mount a slave one: a
// runtime that ignores the None propagation a pod asked for (or the
// default it left unset).
var ignoringPropagation = runtimeWrapper{
	wrapper: "/usr/local/libexec/nodeconform-test/runc-ignoring-propagation",
	dropIn:  "/run/nodeconform/containerd.d/zz-test-runc-ignoring-propagation.toml",
	what:    "runc turning rprivate bind mounts into rslave ones (TestRuntimeIgnoringPropagation)",
	sed:     `-e 's/"rprivate"/"rslave"/g'`,
}

// TestRuntimeIgnoringPropagation proves the encapsulation suite's
// propagation matrix, in both columns, on a runtime the suite did not
// set up, and that each node is judged on its own: one worker's runc is
// wrapped, behind nodeconform's back, so that None (and the unset
// default) become HostToContainer there. The mount made on that node,
// and the Bidirectional container's, must then be reported reaching the
// None and the default containers, in the un-encapsulated and the
// encapsulated column, on that worker only; the other nodes pass. The
// worker is restored afterwards.
func TestRuntimeIgnoringPropagation(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run on the kind cluster (make findings-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cs := kindClient(t)
	broken := workers(ctx, t, cs)[1]
	wrapOn(ctx, t, cs, broken, ignoringPropagation)
	res := runSuites(ctx, t, t.TempDir(), "ignoring-propagation", Options{Mode: ModeApply, Profile: labProfile(), Suites: []string{"encapsulation"},
		Focus: []string{"propagates container mounts as the seeds", "hides Bidirectional container mounts"}})
	f := failed(res)
	if len(f) != 2 {
		t.Fatalf("want both propagation specs failing (un-encapsulated and encapsulated column), got %d failed: %+v", len(f), f)
	}
	for _, s := range f {
		for _, want := range []string{
			"node " + broken + ": ",
			"mount node: container3-none sees it=true, want false",
			"mount node: container4-default sees it=true, want false",
			"mount a: container4-default sees it=true, want false",
		} {
			if !strings.Contains(s.Failure, want) {
				t.Errorf("%s: want %q in: %s", s.Name, want, s.Failure)
			}
		}
		// What the runtime did not touch still holds.
		if strings.Contains(s.Failure, "container2-hosttocontainer") || strings.Contains(s.Failure, "mount b:") {
			t.Errorf("%s: HostToContainer is not what the runtime broke: %s", s.Name, s.Failure)
		}
		failsAlone(t, s, broken, 2)
	}
}

// sharingHostIPC drops the pod's own IPC namespace from every bundle: a
// runtime (a wrapper, a patched runc) that leaves pods in the node's.
var sharingHostIPC = runtimeWrapper{
	wrapper: "/usr/local/libexec/nodeconform-test/runc-sharing-host-ipc",
	dropIn:  "/run/nodeconform/containerd.d/zz-test-runc-sharing-host-ipc.toml",
	what:    "runc leaving pods in the node's IPC namespace (TestRuntimeSharingHostIPC)",
	sed:     `-e 's/,{"type":"ipc"[^}]*}//g' -e 's/{"type":"ipc"[^}]*},//g'`,
}

// TestRuntimeSharingHostIPC proves the primitives suite's namespace
// check on a runtime it did not set up, judged per node: worker 2's runc
// is wrapped, behind nodeconform's back, so that its pods keep the
// node's IPC namespace. "gives a pod its own ... namespaces" must fail on
// worker 2 alone, naming the ipc namespace, and pass on the other nodes.
// The worker is restored afterwards.
func TestRuntimeSharingHostIPC(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run on the kind cluster (make findings-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cs := kindClient(t)
	broken := workers(ctx, t, cs)[1]
	wrapOn(ctx, t, cs, broken, sharingHostIPC)
	spec := "gives a pod its own pid, net, mnt, uts and ipc namespaces"
	res := runSuites(ctx, t, t.TempDir(), "sharing-host-ipc", Options{Mode: ModeApply, Profile: labProfile(), Suites: []string{"primitives"}, Focus: []string{spec}})
	f := failed(res)
	if len(f) != 1 || !strings.Contains(f[0].Name, spec) {
		t.Fatalf("want %q failing, got %d failed: %+v", spec, len(f), f)
	}
	if !strings.Contains(f[0].Failure, "node "+broken+": ") || !strings.Contains(f[0].Failure, "ipc namespace of pod") || !strings.Contains(f[0].Failure, "1 of ") {
		t.Errorf("want the failure on %s alone, naming the ipc namespace: %s", broken, f[0].Failure)
	}
	failsAlone(t, f[0], broken, 2)
}
