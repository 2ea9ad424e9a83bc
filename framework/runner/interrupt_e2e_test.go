package runner

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/readonly"
	"github.com/nodeconform/nodeconform/framework/snapshot"
)

// TestInterruptRestoresNodes sends SIGINT to `nodeconform run` at each
// point where a suite waits for a kubelet or containerd it restarted —
// the CFS-quota negative control, the encapsulation apply and its revert —
// and proves with the node snapshot (read through docker exec, not the
// probe) that every node is as before: kubelet flags, units, drop-ins,
// files, journal, mount namespaces. Daemon PIDs are left out: a revert
// restarts the daemons it changed.
func TestInterruptRestoresNodes(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to interrupt runs on the kind cluster (make interrupt-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cs := kindClient(t)
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, n := range list.Items {
		nodes = append(nodes, n.Name)
	}
	dockerExec := func(node string, cmd ...string) (string, error) {
		var out bytes.Buffer
		c := exec.CommandContext(ctx, "docker", append([]string{"exec", node}, cmd...)...)
		c.Stdout, c.Stderr = &out, &out
		err := c.Run()
		return out.String(), err
	}
	take := func() snapshot.Snapshot {
		all := snapshot.Snapshot{}
		for _, n := range nodes {
			s, err := snapshot.Node(n, func(cmd ...string) (string, error) { return dockerExec(n, cmd...) })
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range s {
				if !strings.Contains(k, ":pids:") {
					all[k] = v
				}
			}
		}
		return all
	}
	onAnyNode := func(script string) bool {
		for _, n := range nodes {
			if _, err := dockerExec(n, "sh", "-c", script); err == nil {
				return true
			}
		}
		return false
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "nodeconform")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/nodeconform")
	build.Dir = e2e.FindModuleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build nodeconform: %v %s", err, out)
	}
	dropIn := "ls /etc/systemd/system/*.d/90-nodeconform-kubens.conf"
	cfsFlag := "grep -q -- --cpu-cfs-quota=false /etc/default/kubelet"
	var revertSeen bool
	scenarios := []struct {
		name, suite, focus string
		// ready reports that the suite has just restarted a daemon and
		// waits for it.
		ready func() bool
	}{
		{"CFS-quota negative control", "cgroups", "CFS quota disabled", func() bool { return onAnyNode(cfsFlag) }},
		{"encapsulation apply", "encapsulation", "not systemd's", func() bool { return onAnyNode(dropIn) }},
		{"encapsulation revert", "encapsulation", "not systemd's", func() bool {
			if onAnyNode(dropIn) {
				revertSeen = true
				return false
			}
			return revertSeen // applied, and the drop-ins are gone: reverting
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			before := take()
			// Reports outside the test's temp dir: they explain a failure
			// after the test is gone.
			reports, err := os.MkdirTemp("", "nodeconform-interrupt-")
			if err != nil {
				t.Fatal(err)
			}
			cmd := exec.CommandContext(ctx, bin, "run", "--suite", sc.suite, "--focus", sc.focus, "--quiet", "--report-dir", reports)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			cmd.Dir = e2e.FindModuleRoot()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			deadline := time.Now().Add(8 * time.Minute)
			for !sc.ready() {
				select {
				case err := <-exited:
					t.Fatalf("the run ended (%v) before the moment to interrupt:\n%s", err, out.String())
				case <-time.After(300 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("the moment to interrupt never came:\n%s", out.String())
				}
			}
			// The restart is scheduled 2 s after the change: interrupt
			// while the daemon is down or coming back.
			time.Sleep(2500 * time.Millisecond)
			t.Logf("%s: SIGINT", sc.name)
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-exited:
				t.Logf("run exited: %v\n%s", err, tail(out.String(), 3000))
			case <-time.After(10 * time.Minute):
				_ = cmd.Process.Kill()
				t.Fatalf("run did not exit within 10m after SIGINT:\n%s", out.String())
			}
			after := take()
			diff := snapshot.Diff(before, after)
			for _, d := range diff {
				t.Errorf("%s: node left changed after SIGINT: %s", sc.name, d)
			}
			if len(diff) > 0 {
				if log, err := os.ReadFile(filepath.Join(reports, sc.suite+".log")); err == nil {
					t.Logf("suite log (tail):\n%s", tail(string(log), 6000))
				}
				t.Logf("reports kept in %s", reports)
			} else {
				_ = os.RemoveAll(reports)
			}
			nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for _, ns := range nss.Items {
				if strings.HasPrefix(ns.Name, readonly.NamespacePrefix) {
					t.Errorf("%s: namespace %s left after SIGINT", sc.name, ns.Name)
				}
			}
		})
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
