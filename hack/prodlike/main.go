// Command prodlike prepares (up) and removes (down) the production-like
// target: a kind cluster whose node state is made here, before any suite
// runs, the way a platform team's cluster is configured before nodeconform
// sees it — kubelet settings from its kind config, kubens encapsulation on
// every node (installed with docker exec, not through the suites), the
// kata RuntimeClass with the OpenShift operator's overhead — and a local
// registry the nodes pull the probe image from. `up` prints the settings
// a run needs (kubeconfig, probe image) and writes them to a state file.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	kindcmd "sigs.k8s.io/kind/pkg/cmd"
	"sigs.k8s.io/kind/pkg/log"

	"github.com/nodeconform/nodeconform/fixtures"
	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/encapsulation"
	"github.com/nodeconform/nodeconform/framework/hostprep"
	"github.com/nodeconform/nodeconform/framework/nfd"
	"github.com/nodeconform/nodeconform/framework/nodeimage"
	"github.com/nodeconform/nodeconform/framework/probe"
	"github.com/nodeconform/nodeconform/framework/registry"
	"github.com/nodeconform/nodeconform/kindconfigs"
)

// Name of the production-like kind cluster.
const Name = "nodeconform-prod"

// State is what `up` hands to the run (and to `make prodlike-e2e`).
type State struct {
	Cluster    string `json:"cluster"`
	Kubeconfig string `json:"kubeconfig"`
	ProbeImage string `json:"probeImage"`
	Profile    string `json:"profile"`
}

// StatePath is where `up` writes the State.
func StatePath() string {
	return filepath.Join(filepath.Dir(cluster.DefaultKubeconfigPath(Name)), Name+".json")
}

func main() {
	if len(os.Args) != 2 || (os.Args[1] != "up" && os.Args[1] != "down") {
		fmt.Fprintln(os.Stderr, "usage: prodlike up|down")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	logger := kindcmd.NewLogger()
	var err error
	if os.Args[1] == "up" {
		err = up(ctx, logger)
	} else {
		err = down(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "prodlike:", err)
		os.Exit(1)
	}
}

func up(ctx context.Context, logger log.Logger) error {
	start := time.Now()
	if err := hostprep.EnsureDocker(ctx, hostprep.DefaultOptions(logger)); err != nil {
		return err
	}
	o := nodeimage.DefaultOptions(logger)
	o.SourceDir = e2e.FindModuleRoot()
	image, err := nodeimage.Build(ctx, o)
	if err != nil {
		return err
	}
	cfg, err := kindconfigs.Get("prodlike")
	if err != nil {
		return err
	}
	// Always from scratch: a cluster left by an interrupted run already
	// carries the operator's changes, and preparing it twice would fail.
	if ok, _ := cluster.NewKind(Name).Exists(); ok {
		logger.V(0).Infof("removing the production-like cluster left by an earlier run")
		if err := down(ctx); err != nil {
			return err
		}
	}
	k := cluster.NewKind(Name, cluster.WithConfig("kindconfigs/prodlike.yaml", cfg), cluster.WithNodeImage(image),
		cluster.WithLogger(logger), cluster.WithReadyTimeout(5*time.Minute))
	if err := k.Up(ctx); err != nil {
		return err
	}
	// The registry joins the kind network the cluster created.
	logger.V(0).Infof("building and starting the registry (distribution, from the Go module proxy)")
	regImage, err := registry.Build(ctx, registry.BuildOptions{CacheDir: o.CacheDir})
	if err != nil {
		return err
	}
	if err := registry.Start(ctx, regImage); err != nil {
		return err
	}
	img, err := probe.BuildImage(ctx, probe.BuildOptions{SourceDir: o.SourceDir, CacheDir: o.CacheDir})
	if err != nil {
		return err
	}
	repoTag := img.Ref // nodeconform/probe:<content hash>
	if err := registry.Push(ctx, img.Archive, registry.HostPort+"/"+repoTag); err != nil {
		return err
	}
	probeRef := registry.NodeHost + "/" + repoTag
	logger.V(0).Infof("probe image pushed; nodes pull %s", probeRef)
	// The cluster runs its own NFD, as production clusters do (the NFD
	// operator): the nfd suite attaches to it in verify mode.
	nfdImg, err := nfd.BuildImage(ctx, nfd.BuildOptions{SourceDir: o.SourceDir, CacheDir: o.CacheDir})
	if err != nil {
		return err
	}
	if err := registry.Push(ctx, nfdImg.Archive, registry.HostPort+"/"+nfdImg.Ref); err != nil {
		return err
	}

	rc, err := cluster.LoadKubeconfig(k.KubeconfigPath(), "")
	if err != nil {
		return err
	}
	cs := kubernetes.NewForConfigOrDie(rc)
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	logger.V(0).Infof("encapsulating kubelet and containerd on %d nodes (docker exec)", len(nodes.Items))
	restarted := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(nodes.Items))
	for i, n := range nodes.Items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = encapsulate(ctx, n.Name)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	if err := cluster.WaitNodesRestarted(ctx, rc, restarted, 3*time.Minute, logger); err != nil {
		return err
	}
	if err := kataRuntimeClass(ctx, cs); err != nil {
		return err
	}
	logger.V(0).Infof("deploying the cluster's own NFD %s (no run label: it is the cluster's, not a run's)", nfd.NFD)
	d, err := nfd.Deploy(ctx, nfd.DeployOptions{Config: rc, Image: registry.NodeHost + "/" + nfdImg.Ref, Timeout: 3 * time.Minute})
	if err != nil {
		return fmt.Errorf("deploy NFD: %w", err)
	}
	if !d.WorkersReady {
		return fmt.Errorf("NFD in %s: not every nfd-worker ready after %s", d.Namespace, d.ReadyAfter)
	}
	logger.V(0).Infof("NFD ready in namespace %s after %s", d.Namespace, d.ReadyAfter.Round(100*time.Millisecond))
	st := State{Cluster: Name, Kubeconfig: k.KubeconfigPath(), ProbeImage: probeRef,
		Profile: filepath.Join(o.SourceDir, "kindconfigs", "prodlike-profile.yaml")}
	data, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(StatePath(), data, 0o644); err != nil {
		return err
	}
	logger.V(0).Infof("production-like cluster ready in %s (state in %s)", time.Since(start).Round(time.Second), StatePath())
	fmt.Printf("nodeconform run --kubeconfig %s --probe-image %s --profile %s\n", st.Kubeconfig, st.ProbeImage, st.Profile)
	return nil
}

// encapsulate trusts the registry, installs kubens.service, kubensenter and the drop-ins that
// start kubelet and containerd inside the pinned namespace, with docker
// exec, and restarts both: the state an operator would have made.
func encapsulate(ctx context.Context, node string) error {
	sh := func(script string) (string, error) {
		var out bytes.Buffer
		c := exec.CommandContext(ctx, "docker", "exec", node, "sh", "-c", script)
		c.Stdout, c.Stderr = &out, &out
		err := c.Run()
		if err != nil {
			return out.String(), fmt.Errorf("node %s: %s: %w: %s", node, script, err, out.String())
		}
		return out.String(), nil
	}
	write := func(path string, content []byte, mode string) error {
		_, err := sh(fmt.Sprintf("mkdir -p \"$(dirname %[1]s)\" && echo %[2]s | base64 -d > %[1]s && chmod %[3]s %[1]s", path, base64.StdEncoding.EncodeToString(content), mode))
		return err
	}
	// containerd 2 reads registry hosts from hosts.toml files: the plain
	// HTTP registry on the kind network gets one, as an operator would add.
	if err := write(registry.HostsTOMLPath, []byte(registry.HostsTOML), "0644"); err != nil {
		return err
	}
	if err := write(encapsulation.UnitPath, fixtures.MustRead("encapsulation/kubens.service"), "0644"); err != nil {
		return err
	}
	if err := write(encapsulation.KubensenterPath, fixtures.MustRead("encapsulation/kubensenter"), "0755"); err != nil {
		return err
	}
	for _, unit := range []string{"containerd.service", "kubelet.service"} {
		show, err := sh("systemctl show -p ExecStart --value " + unit)
		if err != nil {
			return err
		}
		execStart, err := encapsulation.WrapExecStart(show, encapsulation.KubensenterPath)
		if err != nil {
			return fmt.Errorf("node %s, %s: %w", node, unit, err)
		}
		if err := write("/etc/systemd/system/"+unit+".d/90-operator-kubens.conf", []byte(encapsulation.DropIn(execStart)), "0644"); err != nil {
			return err
		}
	}
	_, err := sh("systemctl daemon-reload && systemctl enable --now kubens.service && systemctl restart containerd kubelet")
	return err
}

// kataRuntimeClass installs the RuntimeClass an OpenShift sandboxed
// containers operator would (its overhead, not the seed's).
func kataRuntimeClass(ctx context.Context, cs kubernetes.Interface) error {
	rc := &nodev1.RuntimeClass{ObjectMeta: metav1.ObjectMeta{Name: "kata"}, Handler: "kata",
		Overhead: &nodev1.Overhead{PodFixed: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("350Mi")}}}
	_, err := cs.NodeV1().RuntimeClasses().Create(ctx, rc, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

func down(ctx context.Context) error {
	var errs []string
	if err := cluster.NewKind(Name).Delete(); err != nil {
		errs = append(errs, err.Error())
	}
	if err := registry.Stop(ctx); err != nil {
		errs = append(errs, err.Error())
	}
	_ = os.Remove(StatePath())
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}
