package runner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/report"
	rcx "github.com/nodeconform/nodeconform/framework/runtimeclass"
)

// TestSandboxHandlerMissing proves the runtimeclass suite on nodes where
// gVisor cannot run, made so behind nodeconform's back (docker exec, not
// the suites): each node's boot-time sandbox check is run again with a
// runsc that is not installed, as on a node pool without gVisor, and
// containerd restarted, so that the node's runtime no longer offers the
// handler and the node says why.
//   - One worker without it: every per-node spec of the gvisor class fails
//     on that worker alone, quoting the node's reason; the specs that need
//     one node pick another, and pass.
//   - No node with it: the class cannot be created, and every spec of the
//     class skips with each node's handlers and reason; nothing fails.
//
// Every node is restored (the check run again, containerd restarted, the
// handler back in the node's status) whatever happens.
func TestSandboxHandlerMissing(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run on the kind cluster (make findings-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cs := kindClient(t)
	cls, ok := config.Default().Class("gvisor")
	if !ok {
		t.Fatal("the default configuration declares no gvisor class")
	}
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range list.Items {
		if offered, _ := rcx.Offers(n, cls.Handler); !offered {
			t.Skipf("node %s does not offer handler %q before the test (it offers %v): gVisor does not run on this machine, so there is nothing to take away", n.Name, cls.Handler, rcx.HandlerNames(n))
		}
	}
	if _, err := cs.NodeV1().RuntimeClasses().Get(ctx, cls.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("RuntimeClass %s must not exist before the test (the suite creates it): %v", cls.Name, err)
	}

	const notInstalled = "/usr/local/bin/runsc-not-installed"
	reason := "node check: unavailable: " + notInstalled + " is not installed"
	disabled := map[string]bool{}
	disable := func(node string) {
		t.Helper()
		disabled[node] = true
		if err := dockerExec(ctx, node, "nodeconform-sandbox-check /run/nodeconform "+notInstalled+" && systemctl restart containerd"); err != nil {
			t.Fatal(err)
		}
		if err := waitHandler(ctx, cs, node, cls.Handler, false); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for node := range disabled {
			// The real check again: it boots a sandbox and registers the
			// handler, as at the node's boot.
			err := dockerExec(context.Background(), node, "nodeconform-sandbox-check && systemctl restart containerd")
			if err == nil {
				err = waitHandler(context.Background(), cs, node, cls.Handler, true)
			}
			if err != nil {
				t.Errorf("restore %s: %v", node, err)
			}
		}
	})
	// One spec judged per node and one that needs a single node: the
	// class's other specs take either path too.
	class := "RuntimeClass " + cls.Name + " "
	focus := []string{class + "writes the containers' limits plus the overhead into the pod cgroup on each node", class + "counts the overhead when scheduling"}
	// The focused specs' results (the report lists the filtered-out ones
	// as skipped).
	run := func(label string) []report.Spec {
		t.Helper()
		res := runSuites(ctx, t, t.TempDir(), label, Options{Mode: ModeApply, Profile: labProfile(), Suites: []string{"runtimeclass"}, Focus: focus})
		var out []report.Spec
		for _, s := range res.Specs {
			for _, f := range focus {
				if strings.Contains(s.Name, f) {
					out = append(out, s)
					break
				}
			}
		}
		if len(out) != len(focus) {
			t.Fatalf("run %s: want the %d focused specs, got %+v", label, len(focus), out)
		}
		return out
	}

	// 1. One worker lacks the handler.
	w2 := workers(ctx, t, cs)[1]
	disable(w2)
	res := run("one-node")
	want := fmt.Sprintf("node %s: RuntimeClass %s admits node %s, whose runtime does not offer handler %q", w2, cls.Name, w2, cls.Handler)
	perNode := 0
	for _, s := range res {
		_, judgedPerNode := s.Evidence["nodes"]
		switch {
		case judgedPerNode:
			perNode++
			if s.State != report.Failed || !strings.Contains(s.Failure, want) || !strings.Contains(s.Failure, reason) || !strings.Contains(s.Failure, fmt.Sprintf("1 of %d nodes fail", len(list.Items))) {
				t.Errorf("%s: want it failing on %s alone with %q and %q, got %s: %s%s", s.Name, w2, want, reason, s.State, s.Skip, s.Failure)
			}
		case s.State != report.Passed:
			t.Errorf("%s (one node, which must not be %s) did not pass: %s %s%s", s.Name, w2, s.State, s.Skip, s.Failure)
		}
	}
	if perNode == 0 || perNode == len(res) {
		t.Fatalf("want specs of %q judged per node and on one node, got %+v", focus, res)
	}

	// 2. No node offers it.
	for _, n := range list.Items {
		if !disabled[n.Name] {
			disable(n.Name)
		}
	}
	res = run("no-node")
	said := false
	for _, s := range res {
		if s.State != report.Skipped {
			t.Errorf("%s: want it skipped, got %s: %s", s.Name, s.State, s.Failure)
		}
		if strings.Contains(s.Skip, fmt.Sprintf("no node offers its handler %q", cls.Handler)) {
			said = true
			for _, n := range list.Items {
				if !strings.Contains(s.Skip, n.Name+" offers [") {
					t.Errorf("%s: the skip does not say what node %s offers: %s", s.Name, n.Name, s.Skip)
				}
			}
			if strings.Count(s.Skip, reason) != len(list.Items) {
				t.Errorf("%s: want each node's reason %q in the skip: %s", s.Name, reason, s.Skip)
			}
		}
	}
	if !said {
		t.Errorf("no spec says that no node offers handler %q: %+v", cls.Handler, res)
	}
}

// TestSandboxHandlerServedByRunc proves the runtimeclass suite's
// isolation check on a node it did not set up, judged per node: one
// worker's containerd is made to serve the gvisor class's handler with
// runc, behind nodeconform's back (the handler's drop-in rewritten,
// containerd restarted), as on a node pool whose runtime config maps
// every handler name to runc. The node still offers the handler, pods
// of the class run there, and only the isolation check can tell: it must
// fail on that worker alone, saying the pod shares the node's kernel,
// and pass on the others. The worker is restored (the boot-time sandbox
// check run again, containerd restarted).
func TestSandboxHandlerServedByRunc(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run on the kind cluster (make findings-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cs := kindClient(t)
	cls, ok := config.Default().Class("gvisor")
	if !ok {
		t.Fatal("the default configuration declares no gvisor class")
	}
	broken := workers(ctx, t, cs)[1]
	n, err := cs.CoreV1().Nodes().Get(ctx, broken, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if offered, _ := rcx.Offers(*n, cls.Handler); !offered {
		t.Skipf("node %s does not offer handler %q before the test: gVisor does not run on this machine", broken, cls.Handler)
	}
	t.Cleanup(func() {
		err := dockerExec(context.Background(), broken, "nodeconform-sandbox-check && systemctl restart containerd")
		if err == nil {
			err = waitHandler(context.Background(), cs, broken, cls.Handler, true)
		}
		if err != nil {
			t.Errorf("restore %s: %v", broken, err)
		}
	})
	runcServed := fmt.Sprintf(`cat > /run/nodeconform/containerd.d/%[1]s.toml <<EOF
# nodeconform test: handler %[1]s served by runc (TestSandboxHandlerServedByRunc)
version = 3
[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.%[1]s]
  runtime_type = "io.containerd.runc.v2"
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.%[1]s.options]
    SystemdCgroup = true
EOF
systemctl restart containerd`, cls.Handler)
	if err := dockerExec(ctx, broken, runcServed); err != nil {
		t.Fatal(err)
	}
	if err := waitHandler(ctx, cs, broken, cls.Handler, true); err != nil {
		t.Fatal(err)
	}
	spec := "RuntimeClass " + cls.Name + " isolates the pod"
	res := runSuites(ctx, t, t.TempDir(), "handler-served-by-runc", Options{Mode: ModeApply, Profile: labProfile(), Suites: []string{"runtimeclass"}, Focus: []string{spec}})
	var got *report.Spec
	for i, s := range res.Specs {
		if strings.Contains(s.Name, spec) {
			got = &res.Specs[i]
		}
	}
	if got == nil {
		t.Fatalf("no spec %q in the results", spec)
	}
	if got.State != report.Failed || !strings.Contains(got.Failure, "node "+broken+": ") || !strings.Contains(got.Failure, "not isolated") || !strings.Contains(got.Failure, "1 of ") {
		t.Fatalf("want %q failing on %s alone (not isolated), got %s: %s%s", spec, broken, got.State, got.Skip, got.Failure)
	}
	failsAlone(t, *got, broken, 1)
}

// dockerExec runs script on a kind node with docker exec; the error
// carries the script, the node and the output.
func dockerExec(ctx context.Context, node, script string) error {
	if out, err := exec.CommandContext(ctx, "docker", "exec", node, "sh", "-c", script).CombinedOutput(); err != nil {
		return fmt.Errorf("%s on %s: %v %s", script, node, err, out)
	}
	return nil
}

// waitHandler waits until node is Ready and its status offers handler
// (offered) or does not.
func waitHandler(ctx context.Context, cs kubernetes.Interface, node, handler string, offered bool) error {
	return waitNode(ctx, cs, node, func(n *corev1.Node) bool {
		got, _ := rcx.Offers(*n, handler)
		return got == offered
	})
}
