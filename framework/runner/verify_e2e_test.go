package runner

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/nodeconform/nodeconform/fixtures"
	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/readonly"
	"github.com/nodeconform/nodeconform/framework/report"
	"github.com/nodeconform/nodeconform/framework/snapshot"
)

// TestVerifyModeChangesNothing runs every suite in verify mode on the kind
// cluster and compares, before and after, every API object outside the
// run's own namespaces (events, leases and endpoints aside) and
// each node's configuration files, daemon PIDs and mounts (read with
// docker exec, not through the probe under test). The verify-mode guard
// should make a difference impossible; this proves it on a real run.
func TestVerifyModeChangesNothing(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run every suite in verify mode on the kind cluster (make verify-readonly)")
	}
	name := config.Default().Cluster.Name
	if ok, err := cluster.NewKind(name).Exists(); err != nil || !ok {
		t.Fatalf("kind cluster %q does not exist (make cluster first): %v", name, err)
	}
	res := proveVerifyChangesNothing(t, verifyTarget{kubeconfig: cluster.DefaultKubeconfigPath(name),
		profile: filepath.Join(e2e.FindModuleRoot(), "kindconfigs", "default-profile.yaml")})
	if report.AnyFailed(res.Specs) {
		t.Errorf("specs failed in verify mode (a guard refusal shows as a failure)")
	}
}

// verifyTarget is a kind cluster to prove verify mode on: reached as kind
// (probeImage "", side-loaded) or as an existing cluster (probeImage set,
// pulled from a registry).
type verifyTarget struct {
	kubeconfig, probeImage, profile string
	// runKubeconfig, when set, is the credentials the run uses (the
	// snapshots keep kubeconfig's): a least-privilege account.
	runKubeconfig string
}

// proveVerifyChangesNothing runs every suite in verify mode on tg and
// fails the test on any difference in the API objects or the nodes; it
// returns the run's results for the caller's own checks.
func proveVerifyChangesNothing(t *testing.T, tg verifyTarget) report.Results {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Minute)
	defer cancel()
	rc, err := cluster.LoadKubeconfig(tg.kubeconfig, "")
	if err != nil {
		t.Fatal(err)
	}
	// A snapshot lists every resource the API serves (about 55 lists):
	// at client-go's default 5 a second, settling's two snapshots took
	// 30.8 s on the production-like target, 16.6 s at 100 (2026-12-06).
	rc.QPS, rc.Burst = 100, 100
	cs := kubernetes.NewForConfigOrDie(rc)
	dyn := dynamic.NewForConfigOrDie(rc)
	take := func() snapshot.Snapshot {
		s, err := snapshot.API(ctx, cs.Discovery(), dyn, readonly.NamespacePrefix)
		if err != nil {
			t.Fatal(err)
		}
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range nodes.Items {
			ns, err := snapshot.Node(n.Name, func(cmd ...string) (string, error) {
				var out bytes.Buffer
				c := exec.CommandContext(ctx, "docker", append([]string{"exec", n.Name}, cmd...)...)
				c.Stdout, c.Stderr = &out, &out
				err := c.Run()
				return out.String(), err
			})
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range ns {
				s[k] = v
			}
		}
		return s
	}
	// A Kata cluster has its RuntimeClass before nodeconform looks at it;
	// give the kind cluster the seed's, so runtimeclass specs run read-only.
	var kata nodev1.RuntimeClass
	if err := yaml.UnmarshalStrict(fixtures.MustRead("runtimeclass/runtimeclass-kata.yaml"), &kata); err != nil {
		t.Fatal(err)
	}
	_, err = cs.NodeV1().RuntimeClasses().Create(ctx, &kata, metav1.CreateOptions{})
	switch {
	case err == nil:
		defer func() {
			if err := cs.NodeV1().RuntimeClasses().Delete(context.Background(), kata.Name, metav1.DeleteOptions{}); err != nil {
				t.Errorf("delete RuntimeClass %s: %v", kata.Name, err)
			}
		}()
	case !apierrors.IsAlreadyExists(err):
		t.Fatal(err)
	}
	base := settled(t, take)
	// The comparison must be able to fail: a label on a node and a file in
	// a node's /etc/default show up, and are gone once reverted.
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) == 0 {
		t.Fatalf("list nodes: %v", err)
	}
	n := nodes.Items[0].Name
	label := func(value string) {
		patch := fmt.Sprintf(`{"metadata":{"labels":{"nodeconform.io/selfcheck":%s}}}`, value)
		if _, err := cs.CoreV1().Nodes().Patch(ctx, n, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	const file = "/etc/default/nodeconform-selfcheck"
	label(`"x"`)
	if out, err := exec.CommandContext(ctx, "docker", "exec", n, "touch", file).CombinedOutput(); err != nil {
		t.Fatalf("touch %s on %s: %v %s", file, n, err, out)
	}
	changed := strings.Join(snapshot.Diff(base, take()), "\n")
	label("null")
	if out, err := exec.CommandContext(ctx, "docker", "exec", n, "rm", "-f", file).CombinedOutput(); err != nil {
		t.Fatalf("rm %s on %s: %v %s", file, n, err, out)
	}
	for _, want := range []string{"changed /nodes//" + n, "added node/" + n + ":files:" + file} {
		if !strings.Contains(changed, want) {
			t.Fatalf("the snapshot comparison missed a deliberate change (%s); it saw:\n%s", want, changed)
		}
	}
	before := take()
	if d := snapshot.Diff(base, before); len(d) != 0 {
		t.Fatalf("the deliberate change was not reverted: %v", d)
	}

	o := Options{Mode: ModeVerify, Timeout: 30 * time.Minute, Profile: tg.profile}
	if tg.probeImage != "" {
		o.Kubeconfig, o.ProbeImage = tg.kubeconfig, tg.probeImage
		if tg.runKubeconfig != "" {
			o.Kubeconfig = tg.runKubeconfig
		}
	}
	res := runSuites(ctx, t, t.TempDir(), "reports", o)
	after := take()
	t.Logf("compared %d keys (API objects, node files, daemon PIDs, mounts)", len(before))
	for _, d := range snapshot.Diff(before, after) {
		t.Errorf("verify mode changed the cluster: %s", d)
	}
	return res
}

// settled takes snapshots until two in a row agree, so that the proof
// starts on a cluster that has stopped moving on its own: a cluster just
// prepared (kubelets restarted, the lifecycle controller's taints coming
// off) changed a node between two snapshots taken seconds apart, and the
// proof blamed the selfcheck (CI of 2026-12-05). It fails, naming what
// kept moving, if the cluster does not settle within settleWithin.
func settled(t *testing.T, take func() snapshot.Snapshot) snapshot.Snapshot {
	t.Helper()
	const settleWithin = 2 * time.Minute
	start := time.Now()
	prev := take()
	for {
		cur := take()
		d := snapshot.Diff(prev, cur)
		if len(d) == 0 {
			t.Logf("cluster settled: two snapshots agree after %s", time.Since(start).Round(100*time.Millisecond))
			return cur
		}
		if time.Since(start) > settleWithin {
			t.Fatalf("the cluster kept changing on its own for %s before the proof: %s", settleWithin, strings.Join(d, "; "))
		}
		t.Logf("cluster still changing on its own: %s", strings.Join(d, "; "))
		prev = cur
		time.Sleep(2 * time.Second)
	}
}
