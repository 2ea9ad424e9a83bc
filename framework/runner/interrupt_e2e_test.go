package runner

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

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
	take, onAnyNode := nodeSnapshots(ctx, t, cs)
	bin := buildCLI(ctx, t)
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
			cmd, exited, out := startUntil(ctx, t, sc.ready, "the moment to interrupt", bin, "run", "--suite", sc.suite, "--focus", sc.focus, "--quiet", "--report-dir", reports)
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

// nodeSnapshots returns a snapshot of every node of the kind cluster
// (read through docker exec, not the probe; daemon PIDs left out, since a
// revert restarts the daemons it changed) and a check that a script
// succeeds on some node.
func nodeSnapshots(ctx context.Context, t *testing.T, cs kubernetes.Interface) (take func() snapshot.Snapshot, onAnyNode func(script string) bool) {
	t.Helper()
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
	take = func() snapshot.Snapshot {
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
	onAnyNode = func(script string) bool {
		for _, n := range nodes {
			if _, err := dockerExec(n, "sh", "-c", script); err == nil {
				return true
			}
		}
		return false
	}
	return take, onAnyNode
}

// buildCLI builds the nodeconform binary into the test's temp dir.
func buildCLI(ctx context.Context, t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "nodeconform")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/nodeconform")
	build.Dir = e2e.FindModuleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build nodeconform: %v %s", err, out)
	}
	return bin
}

// TestKilledRunIsRepaired kills `nodeconform run` and every process under
// it with SIGKILL while the cgroups suite's CFS-quota negative control has
// a worker's kubelet changed — no cleanup can run — and proves the repair
// path: the next run removes the dead run's namespaces and replays its
// node journal before it starts, and says what it removed; afterwards
// every node is as before by the snapshot, and `nodeconform cleanup` on
// the now clean cluster removes nothing and says so. The owner lease is
// 15 s here (a config file), so the dead run is recognised after 30 s
// instead of two minutes.
func TestKilledRunIsRepaired(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to kill runs on the kind cluster (make interrupt-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cs := kindClient(t)
	take, onAnyNode := nodeSnapshots(ctx, t, cs)
	bin := buildCLI(ctx, t)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "short-lease.yaml")
	if err := os.WriteFile(cfg, []byte("timeouts:\n  ownerLease: 15s\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := take()
	changed := func() bool { return onAnyNode("grep -q -- --cpu-cfs-quota=false /etc/default/kubelet") }
	cmd, exited, _ := startUntil(ctx, t, changed, "the kubelet change", bin, "run", "--suite", "cgroups", "--focus", "CFS quota disabled", "--quiet", "--config", cfg, "--report-dir", filepath.Join(dir, "killed"))
	time.Sleep(2500 * time.Millisecond)
	killed := killTree(t, cmd.Process.Pid)
	t.Logf("SIGKILL to %d processes", killed)
	<-exited
	if !onAnyNode("ls /var/lib/nodeconform/journal/*.sh") {
		t.Fatal("the killed run left no journal entry: the kill came too late to test the replay")
	}
	// The dead run's lease must be stale and its ID older than two
	// lease durations.
	time.Sleep(35 * time.Second)
	next := exec.CommandContext(ctx, bin, "run", "--suite", "cluster", "--config", cfg, "--report-dir", filepath.Join(dir, "next"))
	next.Dir = e2e.FindModuleRoot()
	nextOut, err := next.CombinedOutput()
	t.Logf("next run (%v):\n%s", err, tail(string(nextOut), 4000))
	if err != nil {
		t.Fatalf("the next run failed: %v", err)
	}
	for _, want := range []string{"removed leftovers of earlier runs", "namespace/nodeconform-", "removed node changes of earlier runs (journal)"} {
		if !strings.Contains(string(nextOut), want) {
			t.Errorf("the next run does not say %q", want)
		}
	}
	for _, d := range snapshot.Diff(before, take()) {
		t.Errorf("node left changed after the kill and the next run: %s", d)
	}
	nss, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range nss.Items {
		if strings.HasPrefix(ns.Name, readonly.NamespacePrefix) {
			t.Errorf("namespace %s left after the next run", ns.Name)
		}
	}
	clean := exec.CommandContext(ctx, bin, "cleanup")
	clean.Env = append(os.Environ(), "NODECONFORM_CONFIG="+cfg)
	cleanOut, err := clean.CombinedOutput()
	t.Logf("cleanup (%v):\n%s", err, cleanOut)
	if err != nil || !strings.Contains(string(cleanOut), "nothing to remove") {
		t.Errorf("cleanup on a clean cluster must remove nothing and say so: %v", err)
	}
}

// startUntil starts bin with args in the module root and returns once
// moment() holds, with the running command, a channel that gets its exit,
// and its output so far; it fails t when the run ends first or the moment
// does not come within 8 minutes.
func startUntil(ctx context.Context, t *testing.T, moment func() bool, what, bin string, args ...string) (*exec.Cmd, <-chan error, *bytes.Buffer) {
	t.Helper()
	cmd := exec.CommandContext(ctx, bin, args...)
	out := new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Dir = e2e.FindModuleRoot()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(8 * time.Minute)
	for !moment() {
		select {
		case err := <-exited:
			t.Fatalf("the run ended (%v) before %s:\n%s", err, what, out.String())
		case <-time.After(300 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never came:\n%s", what, out.String())
		}
	}
	return cmd, exited, out
}

// killTree sends SIGKILL to pid and every process below it, the deepest
// first, so that no parent sees a child die and starts a cleanup.
func killTree(t *testing.T, pid int) int {
	t.Helper()
	children := map[int][]int{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name is in parentheses and may hold spaces.
		rest := string(stat[bytes.LastIndexByte(stat, ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], p)
		}
	}
	var order []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			walk(c)
		}
		order = append(order, p)
	}
	walk(pid)
	for _, p := range order {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
	return len(order)
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
