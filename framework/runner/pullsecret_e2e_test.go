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

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/crypto/bcrypt"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	kindcmd "sigs.k8s.io/kind/pkg/cmd"

	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/nodeimage"
	"github.com/nodeconform/nodeconform/framework/probe"
	"github.com/nodeconform/nodeconform/framework/registry"
	"github.com/nodeconform/nodeconform/framework/report"
	"github.com/nodeconform/nodeconform/framework/workload"
)

// TestPullSecret runs on the lab with the probe image only in a registry
// that asks for credentials (distribution with htpasswd on the kind
// network; each node's containerd told to reach it over HTTP, as an
// operator adds a private registry), under a tag no node has:
//   - without --pull-secret each suite fails in seconds naming the
//     kubelet's pull failure (containerd's "authorization failed: no
//     basic auth credentials": the cluster suite's pods, primitives'
//     probe DaemonSet), and the run leaves nothing;
//   - with a docker config.json holding the credentials, every namespace
//     of the run gets it as an image pull secret (workload.GrantPull on
//     its default service account) and the cluster and primitives
//     suites pass: the probe DaemonSet and the suites' pods pulled with
//     it.
func TestPullSecret(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run on the kind cluster (make findings-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cs := kindClient(t)
	logger := kindcmd.NewLogger()
	cache := nodeimage.DefaultOptions(logger).CacheDir
	dir := t.TempDir()

	const user, password = "nodeconform", "e2e-pull-secret"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The production-like target's registry has the same name: a
	// manual `hack/prodlike up` would lose its images to this test.
	if out, err := exec.CommandContext(ctx, "docker", "inspect", "-f", "{{.State.Running}}", registry.ContainerName).Output(); err == nil && strings.TrimSpace(string(out)) == "true" {
		if auth, _ := exec.CommandContext(ctx, "docker", "inspect", "-f", `{{index .Config.Labels "`+registry.Label+`.auth"}}`, registry.ContainerName).Output(); strings.TrimSpace(string(auth)) != "htpasswd" {
			t.Fatalf("registry container %s is running (the production-like target's?): remove it first (go run ./hack/prodlike down)", registry.ContainerName)
		}
	}
	regImage, err := registry.Build(ctx, registry.BuildOptions{CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	if err := registry.Start(ctx, regImage, registry.WithHtpasswd(htpasswd)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := registry.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	img, err := probe.BuildImage(ctx, probe.BuildOptions{SourceDir: e2e.FindModuleRoot(), CacheDir: cache})
	if err != nil {
		t.Fatal(err)
	}
	tag := fmt.Sprintf("nodeconform/probe-private:%x", time.Now().UnixNano())
	// An image of its own (a label in its config), not the lab's probe
	// image under a second name: since Kubernetes 1.35 the kubelet
	// (KubeletEnsureSecretPulledImages) lets only pods with the pull's
	// credentials use an image it pulled with credentials, so the lab's
	// side-loaded probe image, the same image, would then be pulled
	// again from docker.io by every later run's pods.
	private, err := privateImage(img.Archive, tag)
	if err != nil {
		t.Fatal(err)
	}
	if err := registry.PushImage(ctx, private, registry.HostPort+"/"+tag); err == nil || !strings.Contains(err.Error(), "401 Unauthorized") {
		t.Fatalf("push without credentials: want the registry's 401 Unauthorized, got %v", err)
	}
	if err := registry.PushImage(ctx, private, registry.HostPort+"/"+tag, registry.WithBasicAuth(user, password)); err != nil {
		t.Fatal(err)
	}
	ref := registry.NodeHost + "/" + tag

	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hostsDir := filepath.Dir(registry.HostsTOMLPath)
	for _, n := range nodes.Items {
		t.Cleanup(func() {
			// The node as before: no registry host, no pulled image.
			// Its tag and its digest name (kept by the kubelet's pull).
			script := fmt.Sprintf("ctr --namespace k8s.io images ls -q | grep -F '%s' | xargs -r ctr --namespace k8s.io images rm >/dev/null; rm -rf %s", registry.NodeHost+"/"+strings.Split(tag, ":")[0], hostsDir)
			if err := dockerExec(context.Background(), n.Name, script); err != nil {
				t.Error(err)
			}
		})
		if err := dockerExec(ctx, n.Name, fmt.Sprintf("mkdir -p %s && printf '%%s' '%s' > %s", hostsDir, registry.HostsTOML, registry.HostsTOMLPath)); err != nil {
			t.Fatal(err)
		}
	}

	// Without credentials: the kubelet cannot pull the probe image.
	o := Options{Mode: ModeApply, Profile: labProfile(), Suites: []string{"cluster", "primitives"}, ProbeImage: ref,
		ReportDir: filepath.Join(dir, "no-secret"), SuitesDir: filepath.Join(dir, "suites"), SourceDir: e2e.FindModuleRoot(), Quiet: true, Timeout: 10 * time.Minute}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(o.SuitesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	var summary bytes.Buffer
	res, err := Run(ctx, o, logger, &summary)
	report.Summary(&summary, res.Specs)
	t.Logf("without --pull-secret (%s): %v\n%s", time.Since(start).Round(time.Second), err, summary.String())
	// The cluster suite's pods and the run's probe (primitives reaches
	// the nodes through it) cannot start: each suite fails naming the
	// kubelet's pull failure.
	if err != nil {
		t.Fatal(err)
	}
	const denied = "authorization failed: no basic auth credentials"
	for _, suite := range o.Suites {
		n := 0
		for _, s := range res.Specs {
			if s.Suite == suite && s.State == report.Failed {
				n++
				if !strings.Contains(s.Failure, denied) {
					t.Errorf("without --pull-secret: %s: %s: want the pull's %q, got %.600s", suite, s.Name, denied, s.Failure)
				}
			}
		}
		if n == 0 {
			t.Errorf("without --pull-secret: suite %s failed nothing", suite)
		}
	}
	if !removed(ctx, t, cs) {
		t.Errorf("without --pull-secret: the run left namespaces behind")
	}

	// A docker config.json as `docker login` writes it.
	cfg := filepath.Join(dir, "config.json")
	auth := fmt.Sprintf(`{"auths":{%q:{"username":%q,"password":%q}}}`, registry.NodeHost, user, password)
	if err := os.WriteFile(cfg, []byte(auth), 0o600); err != nil {
		t.Fatal(err)
	}
	res = runSuites(ctx, t, dir, "pull-secret", Options{Mode: ModeApply, Profile: labProfile(), Suites: []string{"cluster", "primitives"}, ProbeImage: ref, PullSecret: cfg})
	if f := failed(res); len(f) != 0 || len(res.Specs) == 0 {
		t.Errorf("with --pull-secret: %d specs, failed %+v", len(res.Specs), f)
	}
}

// removed reports whether no namespace of nodeconform's is left.
func removed(ctx context.Context, t *testing.T, cs kubernetes.Interface) bool {
	t.Helper()
	list, err := cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: workload.ManagedLabel + "=true"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ns := range list.Items {
		t.Logf("left: namespace %s (%s)", ns.Name, ns.Status.Phase)
	}
	return len(list.Items) == 0
}

// privateImage is the probe image of archive with a label naming tag in
// its config: its own image ID.
func privateImage(archive, tag string) (v1.Image, error) {
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	if cf.Config.Labels == nil {
		cf.Config.Labels = map[string]string{}
	}
	cf.Config.Labels["io.nodeconform.private"] = tag
	return mutate.ConfigFile(img, cf)
}
