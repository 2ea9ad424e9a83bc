package runner

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	kindcmd "sigs.k8s.io/kind/pkg/cmd"

	"github.com/nodeconform/nodeconform/framework/access"
	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/report"
)

// leastPrivilege makes, on the cluster behind adminKubeconfig, a service
// account bound cluster-wide to role alone, and returns a kubeconfig
// holding only that account's token: how a platform team's CI reaches a
// production cluster. The account, role and binding are deleted when the
// test ends.
func leastPrivilege(ctx context.Context, t *testing.T, adminKubeconfig string, role *rbacv1.ClusterRole) string {
	t.Helper()
	rc, err := cluster.LoadKubeconfig(adminKubeconfig, "")
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(rc)
	name, ns := role.Name, "default"
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}},
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, del := range []func() error{
			func() error { return cs.RbacV1().ClusterRoleBindings().Delete(ctx, name, metav1.DeleteOptions{}) },
			func() error { return cs.RbacV1().ClusterRoles().Delete(ctx, name, metav1.DeleteOptions{}) },
			func() error { return cs.CoreV1().ServiceAccounts(ns).Delete(ctx, name, metav1.DeleteOptions{}) },
		} {
			if err := del(); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("delete the least-privilege account %s: %v", name, err)
			}
		}
	})
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role = role.DeepCopy()
	role.TypeMeta = metav1.TypeMeta{}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hour := int64(3600)
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &hour}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["c"] = &clientcmdapi.Cluster{Server: rc.Host, CertificateAuthorityData: rc.CAData, CertificateAuthority: rc.CAFile}
	cfg.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: "c", AuthInfo: name}
	cfg.CurrentContext = name
	path := filepath.Join(t.TempDir(), name+".kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	// RBAC caches settle within a second or two of the binding.
	deadline := time.Now().Add(30 * time.Second)
	lrc, err := cluster.LoadKubeconfig(path, "")
	if err != nil {
		t.Fatal(err)
	}
	lcs := kubernetes.NewForConfigOrDie(lrc)
	for {
		_, err := lcs.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	return path
}

// refusedForMissing proves the preflight on the cluster behind
// adminKubeconfig: an account bound to the run's role less the
// permissions in drop is refused before anything is created, with an
// error naming exactly what was dropped.
func refusedForMissing(ctx context.Context, t *testing.T, adminKubeconfig, probeImage string, drop []string) {
	t.Helper()
	needs := access.For(Suites, ModeVerify)
	kept := slices.DeleteFunc(slices.Clone(needs), func(n access.Need) bool { return slices.Contains(drop, n.String()) })
	if len(kept) != len(needs)-len(drop) {
		t.Fatalf("not every permission to drop is a need: %v", drop)
	}
	kubeconfig := leastPrivilege(ctx, t, adminKubeconfig, access.ClusterRole("nodeconform-e2e-short", kept))
	o := Options{Kubeconfig: kubeconfig, ProbeImage: probeImage, Mode: ModeVerify, ReportDir: t.TempDir(), SuitesDir: filepath.Join(t.TempDir(), "suites"),
		SourceDir: e2e.FindModuleRoot(), Timeout: 5 * time.Minute, Quiet: true}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	rc, err := cluster.LoadKubeconfig(adminKubeconfig, "")
	if err != nil {
		t.Fatal(err)
	}
	admin := kubernetes.NewForConfigOrDie(rc)
	runNamespaces := func() map[string]bool {
		nss, err := admin.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: e2e.RunLabel})
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for _, ns := range nss.Items {
			out[ns.Name] = true
		}
		return out
	}
	before := runNamespaces()
	start := time.Now()
	_, err = Run(ctx, o, kindcmd.NewLogger(), &testWriter{t})
	var ue UsageError
	var me access.MissingError
	if !errors.As(err, &ue) || !errors.As(err, &me) {
		t.Fatalf("a run short of %v: want a usage error naming the missing permissions, got %v", drop, err)
	}
	var got []string
	for _, n := range me.Missing {
		got = append(got, n.String())
	}
	slices.Sort(got)
	want := slices.Sorted(slices.Values(drop))
	if !slices.Equal(got, want) {
		t.Errorf("missing permissions named: %v, want %v", got, want)
	}
	t.Logf("refused after %s:\n%v", time.Since(start).Round(time.Millisecond), err)
	for ns := range runNamespaces() {
		if !before[ns] {
			t.Errorf("the refused run left namespace %s", ns)
		}
	}
}

// testWriter sends a run's output to the test log.
type testWriter struct{ t *testing.T }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// eachSuiteWithItsOwnRole runs every suite alone, in verify mode, with an
// account bound to that suite's role only (`nodeconform rbac --suite S`):
// a run of every suite holds the union of their permissions, which hid a
// row one suite lacked (the sysctl suite's nodes/proxy, the cluster
// suite's pods/exec, found by review, 2026-12-07). The suites that
// change nothing run side by side, the others one after the other.
func eachSuiteWithItsOwnRole(ctx context.Context, t *testing.T, adminKubeconfig, probeImage, profile string) {
	t.Helper()
	type outcome struct {
		suite string
		res   report.Results
		err   error
	}
	run := func(suite string) outcome {
		kubeconfig := leastPrivilege(ctx, t, adminKubeconfig, access.ClusterRole("nodeconform-e2e-"+suite, access.For([]string{suite}, ModeVerify)))
		dir := t.TempDir()
		o := Options{Kubeconfig: kubeconfig, ProbeImage: probeImage, Mode: ModeVerify, Profile: profile, Suites: []string{suite},
			ReportDir: filepath.Join(dir, "reports"), SuitesDir: filepath.Join(dir, "suites"), SourceDir: e2e.FindModuleRoot(), Timeout: 15 * time.Minute, Quiet: true}
		if err := o.Validate(); err != nil {
			return outcome{suite: suite, err: err}
		}
		if err := os.MkdirAll(o.SuitesDir, 0o755); err != nil {
			return outcome{suite: suite, err: err}
		}
		res, err := Run(ctx, o, kindcmd.NewLogger(), io.Discard)
		return outcome{suite, res, err}
	}
	var side, alone []string
	for _, s := range Suites {
		if Concurrent[s] {
			side = append(side, s)
		} else {
			alone = append(alone, s)
		}
	}
	outcomes := make([]outcome, len(side))
	var wg sync.WaitGroup
	for i, s := range side {
		wg.Go(func() { outcomes[i] = run(s) })
	}
	wg.Wait()
	for _, s := range alone {
		outcomes = append(outcomes, run(s))
	}
	for _, oc := range outcomes {
		if oc.err != nil {
			t.Errorf("suite %s with its own role: %v", oc.suite, oc.err)
			continue
		}
		passed := 0
		for _, s := range oc.res.Specs {
			switch s.State {
			case report.Failed:
				t.Errorf("suite %s with its own role: %s: %s", oc.suite, s.Name, s.Failure)
			case report.Passed:
				passed++
			}
		}
		t.Logf("suite %s with its own role: %d specs passed of %d", oc.suite, passed, len(oc.res.Specs))
	}
}
