package runner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kindcmd "sigs.k8s.io/kind/pkg/cmd"

	"sigs.k8s.io/e2e-framework/klient"

	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/nodeaccess"
	"github.com/nodeconform/nodeconform/framework/nodechange"
	"github.com/nodeconform/nodeconform/framework/workload"
)

// TestGuardUndoesAKubeletThatStaysDown records a node change the way the
// suites do (nodechange.Journal.Record, through the probe), then makes it:
// a kubelet flag the kubelet refuses (a cgroup root that does not exist),
// so the kubelet restarts in a loop and nothing reaches the node through
// its exec any more. The node's guard must undo the change by itself,
// once the kubelet has been down for the journal's RestartTimeout: the
// flag gone, the kubelet up, the entry removed, the node Ready. Found on
// a kind cluster whose kubelets run at cgroup root "/": the cgroups
// suite's control moved it to a root that did not exist, and the node
// stayed broken after the run.
func TestGuardUndoesAKubeletThatStaysDown(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run on the kind cluster (make findings-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cs := kindClient(t)
	name := config.Default().Cluster.Name
	rc, err := cluster.LoadKubeconfig(cluster.DefaultKubeconfigPath(name), "")
	if err != nil {
		t.Fatal(err)
	}
	kl, err := klient.New(rc)
	if err != nil {
		t.Fatal(err)
	}
	img, err := e2e.LoadProbeImage(ctx, e2e.Settings{SourceDir: e2e.FindModuleRoot()}, cluster.NewKind(name), kindcmd.NewLogger())
	if err != nil {
		t.Fatal(err)
	}
	// The run label: a namespace this test leaves is swept by the next
	// run, with its journal entry, as a dead run's.
	probes, err := nodeaccess.Deploy(ctx, nodeaccess.Input{Clientset: cs, Klient: kl, Image: img,
		Labels: map[string]string{workload.ManagedLabel: "true", e2e.RunLabel: "guard-test"}, Timeout: 3 * time.Minute})
	if probes != nil {
		t.Cleanup(func() {
			ctx := context.Background()
			if err := cs.CoreV1().Namespaces().Delete(ctx, probes.Namespace, metav1.DeleteOptions{}); err != nil {
				t.Errorf("delete %s: %v", probes.Namespace, err)
			}
			if err := e2e.WaitNamespacesGone(ctx, cs, 2*time.Minute); err != nil {
				t.Error(err)
			}
			noLeftovers(ctx, t, cs)
		})
	}
	if err != nil {
		t.Fatal(err)
	}
	w := workers(ctx, t, cs)[1]
	const file, saved, flag = "/etc/default/kubelet", "/etc/default/kubelet.nodeconform-guard-test", "--cgroup-root=/nodeconform-missing"
	undo := fmt.Sprintf("if test -f %[2]s; then mv %[2]s %[1]s; fi; ! grep -q -- %[3]s %[1]s", file, saved, flag)
	// Whatever happens, the node is restored without the kubelet.
	t.Cleanup(func() {
		if err := dockerExec(context.Background(), w, undo+"; rm -f "+nodechange.Dir+"/guard-test.*; systemctl restart kubelet"); err != nil {
			t.Errorf("restore %s: %v", w, err)
		}
		if err := waitNodeReady(context.Background(), cs, w); err != nil {
			t.Errorf("restore %s: %v", w, err)
		}
	})
	limit := 20 * time.Second
	j := nodechange.Journal{Probes: probes, RestartTimeout: limit, Retry: time.Minute}
	entry := nodechange.Entry{Node: w, Run: "guard-test", Name: "kubelet-missing-root", Undo: undo, Restart: []string{"kubelet.service"}}
	if err := j.Record(ctx, entry); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := dockerExec(ctx, w, fmt.Sprintf("set -e; cp %s %s; ", file, saved)+addKubeletFlag(file, flag)); err != nil {
		t.Fatal(err)
	}
	// Down first: the change must have taken.
	if err := dockerExec(ctx, w, "sleep 5; ! systemctl is-active --quiet kubelet || test $(systemctl show -p NRestarts --value kubelet) -gt 0"); err != nil {
		t.Fatalf("the kubelet did not refuse %s: %v", flag, err)
	}
	restored := fmt.Sprintf("systemctl is-active --quiet kubelet && ! grep -q -- %s %s && ! ls %s/guard-test.* 2>/dev/null", flag, file, nodechange.Dir)
	var last error
	for deadline := time.Now().Add(limit + 2*time.Minute); time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		if last = dockerExec(ctx, w, restored); last == nil {
			break
		}
	}
	if last != nil {
		t.Fatalf("the guard did not undo the change within %s: %v", limit+2*time.Minute, last)
	}
	if err := waitNodeReady(ctx, cs, w); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < limit {
		t.Errorf("restored after %s, before the guard's limit %s: something else undid it", took, limit)
	}
	out, _ := exec.CommandContext(ctx, "docker", "exec", w, "sh", "-c", "journalctl --no-pager -o cat -u 'nodeconform-guard-guard-test-*'").CombinedOutput()
	t.Logf("node restored %s after the change; the guard's log:\n%s", time.Since(start).Round(time.Second), out)
	if !regexp.MustCompile(`kubelet.service down for [0-9]+s: undoing kubelet-missing-root`).Match(out) {
		t.Error("the guard's log does not say how long the kubelet was down (its shell variables did not reach it intact)")
	}
}
