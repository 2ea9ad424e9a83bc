package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"
	kindexec "sigs.k8s.io/kind/pkg/exec"
	"sigs.k8s.io/kind/pkg/log"
	"sigs.k8s.io/yaml"

	"github.com/nodeconform/nodeconform/framework/imagearchive"
	"github.com/nodeconform/nodeconform/framework/nodeimage"
	"github.com/nodeconform/nodeconform/framework/vmnode"
	"github.com/nodeconform/nodeconform/framework/workload"
)

// Kind is a kind cluster created (or reused) through kind's Go library.
type Kind struct {
	name       string
	config     []byte
	configName string
	image      string
	kubeconfig string
	readyWait  time.Duration
	retain     bool
	recreate   bool
	apiWait    time.Duration
	logger     log.Logger
	provider   *kindcluster.Provider
	cfg        *rest.Config
}

// KindOption configures a Kind provider.
type KindOption func(*Kind)

// WithConfig sets the kind cluster configuration (YAML) and a name for it
// used in error messages.
func WithConfig(name string, data []byte) KindOption {
	return func(k *Kind) { k.configName, k.config = name, data }
}

// WithNodeImage sets the node image of every node.
func WithNodeImage(image string) KindOption { return func(k *Kind) { k.image = image } }

// WithKubeconfigPath sets where the cluster's kubeconfig is written.
func WithKubeconfigPath(p string) KindOption { return func(k *Kind) { k.kubeconfig = p } }

// WithLogger sets the logger for progress and kind's own output.
func WithLogger(l log.Logger) KindOption { return func(k *Kind) { k.logger = l } }

// WithReadyTimeout bounds the wait for every node to be Ready.
func WithReadyTimeout(d time.Duration) KindOption { return func(k *Kind) { k.readyWait = d } }

// WithRetain keeps the nodes of a failed creation for debugging.
func WithRetain(r bool) KindOption { return func(k *Kind) { k.retain = r } }

// WithRecreateBroken deletes and recreates an existing cluster of this
// name that is not usable (a node container stopped, the API server
// silent, a node not Ready) instead of failing: a multi-node kind cluster
// does not reliably survive a reboot or a Docker restart.
func WithRecreateBroken(r bool) KindOption { return func(k *Kind) { k.recreate = r } }

// NewKind returns a provider for the kind cluster called name. Nothing is
// created until Up.
func NewKind(name string, opts ...KindOption) *Kind {
	k := &Kind{name: name, readyWait: 5 * time.Minute, apiWait: 15 * time.Second, logger: log.NoopLogger{}}
	for _, o := range opts {
		o(k)
	}
	if k.kubeconfig == "" {
		k.kubeconfig = DefaultKubeconfigPath(name)
	}
	k.provider = kindcluster.NewProvider(kindcluster.ProviderWithLogger(k.logger), kindcluster.ProviderWithDocker())
	return k
}

// DefaultKubeconfigPath is where the kubeconfig of a nodeconform kind
// cluster goes; the user's ~/.kube/config is never touched.
func DefaultKubeconfigPath(name string) string {
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "nodeconform", "kind-"+name+".kubeconfig")
}

// ValidateConfig parses a kind configuration strictly, so a typo or an
// unknown field is reported with the file's name before anything is created.
func ValidateConfig(name string, data []byte) error {
	var c v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(data, &c); err != nil {
		return fmt.Errorf("kind config %s: %w", name, err)
	}
	if c.Kind != "Cluster" || c.APIVersion != "kind.x-k8s.io/v1alpha4" {
		return fmt.Errorf("kind config %s: want kind: Cluster, apiVersion: kind.x-k8s.io/v1alpha4, got kind %q apiVersion %q", name, c.Kind, c.APIVersion)
	}
	for i, n := range c.Nodes {
		if n.Role != v1alpha4.ControlPlaneRole && n.Role != v1alpha4.WorkerRole {
			return fmt.Errorf("kind config %s: node %d has role %q, want control-plane or worker", name, i, n.Role)
		}
	}
	return nil
}

// Exists reports whether kind knows a cluster of this name.
func (k *Kind) Exists() (bool, error) {
	names, err := k.provider.List()
	if err != nil {
		return false, err
	}
	for _, n := range names {
		if n == k.name {
			return true, nil
		}
	}
	return false, nil
}

// Up creates the cluster, or reuses it when it exists and answers, then
// waits until every node is Ready.
func (k *Kind) Up(ctx context.Context) error {
	exists, err := k.Exists()
	if err != nil {
		return fmt.Errorf("list kind clusters: %w", err)
	}
	var cfg *rest.Config
	if exists {
		cfg, err = k.reuse(ctx)
		if err != nil && k.recreate && ctx.Err() == nil {
			k.logger.Warnf("kind cluster %q is not usable (%v): deleting and recreating it", k.name, err)
			if derr := k.Delete(); derr != nil {
				return fmt.Errorf("delete broken kind cluster %q: %w", k.name, derr)
			}
			exists = false
		} else if err != nil {
			return err
		}
	}
	// A cluster this call created and that never became usable is
	// removed (unless retained for debugging): nothing half-made stays.
	discard := func(err error) error {
		if !exists && !k.retain {
			k.logger.Warnf("kind cluster %q did not become ready: deleting it (NODECONFORM_RETAIN=1 keeps it)", k.name)
			if derr := k.Delete(); derr != nil {
				err = fmt.Errorf("%w; and deleting the cluster failed: %v", err, derr)
			}
		}
		return err
	}
	if !exists {
		if err := ensureInotify(k.logger); err != nil {
			return err
		}
		if err := k.create(ctx); err != nil {
			return err
		}
		if cfg, err = restConfigFromKubeconfig(ctx, k.kubeconfig, "", k.apiWait); err != nil {
			return discard(err)
		}
		if err := WaitNodesReady(ctx, cfg, k.readyWait, k.logger); err != nil {
			return discard(err)
		}
	}
	k.cfg = cfg
	return nil
}

// Attach connects to the cluster through its kubeconfig and waits until
// every node is Ready, without inspecting its containers or exporting
// its kubeconfig again: for a process started right after another one's
// Up checked them (a runner's suites), where repeating those checks costs
// a second or more per suite.
func (k *Kind) Attach(ctx context.Context) error {
	cfg, err := restConfigFromKubeconfig(ctx, k.kubeconfig, "", k.apiWait)
	if err != nil {
		return EnvError{fmt.Errorf("kind cluster %q: %w", k.name, err)}
	}
	// The runner's Up judged the nodes already; a node down then is
	// judged by the suites as one that cannot run pods.
	if _, err := WaitNodesUsable(ctx, cfg, k.readyWait, k.logger); err != nil {
		return EnvError{fmt.Errorf("kind cluster %q: %w", k.name, err)}
	}
	k.cfg = cfg
	return nil
}

// exportKubeconfig writes the cluster's kubeconfig unless the file
// already holds it (same context, server, CA and client credentials).
// Suites run side by side reuse the cluster at the same moment: kind's
// export takes a lock file that a second writer fails on, and a reader
// could see the file half-written.
func (k *Kind) exportKubeconfig() error {
	if raw, err := k.provider.KubeConfig(k.name, false); err == nil {
		want, werr := clientcmd.Load([]byte(raw))
		have, herr := clientcmd.LoadFromFile(k.kubeconfig)
		if werr == nil && herr == nil && sameKubeContext(have, want, want.CurrentContext) {
			return nil
		}
	}
	return k.provider.ExportKubeConfig(k.name, k.kubeconfig, false)
}

// sameKubeContext: have's context name reaches the same cluster with the
// same credentials as want's.
func sameKubeContext(have, want *clientcmdapi.Config, name string) bool {
	hc, wc := have.Contexts[name], want.Contexts[name]
	if hc == nil || wc == nil {
		return false
	}
	hcl, wcl := have.Clusters[hc.Cluster], want.Clusters[wc.Cluster]
	ha, wa := have.AuthInfos[hc.AuthInfo], want.AuthInfos[wc.AuthInfo]
	if hcl == nil || wcl == nil || ha == nil || wa == nil {
		return false
	}
	return hcl.Server == wcl.Server && bytes.Equal(hcl.CertificateAuthorityData, wcl.CertificateAuthorityData) &&
		bytes.Equal(ha.ClientCertificateData, wa.ClientCertificateData) && bytes.Equal(ha.ClientKeyData, wa.ClientKeyData)
}

// restartGrace is how long after its node containers (re)started a
// reused cluster's API server may take to answer: a Docker restart
// brings kind's nodes back (restart policy), and their control plane
// needs tens of seconds on these machines.
const restartGrace = 2 * time.Minute

// reuse checks an existing cluster is usable (every node container
// running, the API server answering, every node Ready) and exports its
// kubeconfig.
func (k *Kind) reuse(ctx context.Context) (*rest.Config, error) {
	states, err := k.nodeStates(ctx)
	if err != nil {
		return nil, err
	}
	started, err := k.checkRunning(states)
	if err != nil {
		return nil, err
	}
	k.logger.V(0).Infof("reusing kind cluster %q", k.name)
	k.warnOutdated(ctx, states)
	// The kubeconfig written when the cluster was made or last reused
	// is kept when it still reaches it: exporting it again reads it out
	// of the control-plane container (0.9 s on a loaded machine), on
	// every run and every suite.
	if !kubeconfigReaches(ctx, k.kubeconfig) {
		if err := k.exportKubeconfig(); err != nil {
			return nil, fmt.Errorf("export kubeconfig of kind cluster %q: %w", k.name, err)
		}
	}
	// With recreate, a control plane that does not answer at once is
	// not waited for: after a Docker restart it came back within a
	// minute once here and never another time (kind's nodes can return
	// with each other's addresses), and a new cluster takes 40 s.
	deadline := time.Now().Add(k.apiWait)
	if age := time.Since(started); age < restartGrace && !k.recreate {
		deadline = started.Add(restartGrace)
		k.logger.V(0).Infof("node containers of %q started %s ago (a Docker restart?): waiting up to %s for its API server",
			k.name, age.Round(time.Second), time.Until(deadline).Round(time.Second))
	}
	var cfg *rest.Config
	for {
		if cfg, err = restConfigFromKubeconfig(ctx, k.kubeconfig, "", k.apiWait); err == nil || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	if err != nil {
		return nil, EnvError{fmt.Errorf("kind cluster %q exists but its API server does not answer (half-started, or left by a reboot or a Docker restart: delete it with `nodeconform cluster delete`, or pass --recreate-broken): %w", k.name, err)}
	}
	// With recreate (nodeconform's own lab clusters) every node must be
	// Ready, else the cluster is made again. Otherwise the cluster is
	// judged as it is, unless its containers were just (re)started: then
	// a NotReady node is still coming back.
	if k.recreate || time.Since(started) < restartGrace {
		if err := WaitNodesReady(ctx, cfg, k.readyWait, k.logger); err != nil {
			return nil, EnvError{fmt.Errorf("kind cluster %q exists but its nodes are not Ready (delete it with `nodeconform cluster delete`, or pass --recreate-broken): %w", k.name, err)}
		}
		return cfg, nil
	}
	down, err := WaitNodesUsable(ctx, cfg, k.readyWait, k.logger)
	if err != nil {
		return nil, EnvError{fmt.Errorf("kind cluster %q exists but its nodes are not Ready (delete it with `nodeconform cluster delete`, or pass --recreate-broken): %w", k.name, err)}
	}
	for _, n := range slices.Sorted(maps.Keys(down)) {
		k.logger.Warnf("node %s is not Ready: %s; the suites judge it as a node that cannot run pods (--recreate-broken makes the cluster again instead)", n, down[n])
	}
	return cfg, nil
}

// EnvError is an environment problem the user must fix (exit code 2): a
// stopped or half-started cluster, not a failed check.
type EnvError struct{ Err error }

func (e EnvError) Error() string { return e.Err.Error() }
func (e EnvError) Unwrap() error { return e.Err }

// nodeState is what docker says of one node container.
type nodeState struct {
	name     string
	running  bool
	started  time.Time
	imageID  string
	imageRef string
}

// nodeStates inspects every node container of the cluster in one docker
// call: the reuse checks read them all, and each call costs a process.
func (k *Kind) nodeStates(ctx context.Context) ([]nodeState, error) {
	nodes, err := k.provider.ListNodes(k.name)
	if err != nil {
		return nil, fmt.Errorf("list nodes of kind cluster %q: %w", k.name, err)
	}
	names := make([]string, len(nodes))
	for i, n := range nodes {
		names[i] = n.String()
	}
	if len(names) == 0 {
		return nil, nil
	}
	// A container gone between the list and the inspect makes docker
	// fail but still print the others: it stays "not running".
	out, _ := exec.CommandContext(ctx, "docker", append([]string{"inspect", "-f", nodeStateFormat}, names...)...).Output()
	return parseNodeStates(names, string(out)), nil
}

const nodeStateFormat = "{{.Name}} {{.State.Running}} {{.State.StartedAt}} {{.Image}} {{.Config.Image}}"

// parseNodeStates reads docker inspect's nodeStateFormat lines; a name
// without a line is a container that is not running.
func parseNodeStates(names []string, out string) []nodeState {
	states := make([]nodeState, len(names))
	byName := map[string]*nodeState{}
	for i, n := range names {
		states[i].name = n
		byName[n] = &states[i]
	}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 {
			continue
		}
		st := byName[strings.TrimPrefix(f[0], "/")]
		if st == nil {
			continue
		}
		st.running = f[1] == "true"
		st.started, _ = time.Parse(time.RFC3339Nano, f[2])
		st.imageID = f[3]
		if len(f) > 4 {
			st.imageRef = f[4]
		}
	}
	return states
}

// checkRunning fails when any node container of the cluster is stopped,
// naming them and the command that starts them; otherwise it returns
// when the last of them started.
func (k *Kind) checkRunning(states []nodeState) (time.Time, error) {
	var stopped []string
	var last time.Time
	for _, n := range states {
		if !n.running {
			stopped = append(stopped, n.name)
			continue
		}
		if n.started.After(last) {
			last = n.started
		}
	}
	if len(stopped) > 0 {
		return last, EnvError{fmt.Errorf("kind cluster %q: node containers %s are not running; start them with `docker start %s` (then wait a minute for the kubelets), or recreate the cluster with `nodeconform cluster delete` or --recreate-broken",
			k.name, strings.Join(stopped, ", "), strings.Join(stopped, " "))}
	}
	return last, nil
}

// kubeconfigReaches: an authenticated request through the kubeconfig
// file succeeds at once. Its CA is the cluster's own, so a cluster
// recreated under the same name (or another on the same port) fails it.
func kubeconfigReaches(ctx context.Context, path string) bool {
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return false
	}
	cfg.Timeout = 5 * time.Second
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return false
	}
	_, err = cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1})
	return err == nil
}

// KindClusterOfContext returns the name of the kind cluster a kubeconfig
// context points at: named "kind-<name>" (kind's convention), a kind
// cluster of that name exists, and the context's server is that cluster's
// API server. Otherwise "".
func KindClusterOfContext(kubeconfig, context string) string {
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	if err != nil {
		return ""
	}
	if context == "" {
		context = cfg.CurrentContext
	}
	name, ok := strings.CutPrefix(context, "kind-")
	c := cfg.Contexts[context]
	if !ok || c == nil || cfg.Clusters[c.Cluster] == nil {
		return ""
	}
	k := NewKind(name)
	if exists, err := k.Exists(); err != nil || !exists {
		return ""
	}
	raw, err := k.provider.KubeConfig(name, false)
	if err != nil {
		return ""
	}
	own, err := clientcmd.Load([]byte(raw))
	if err != nil || own.Contexts[own.CurrentContext] == nil || own.Clusters[own.Contexts[own.CurrentContext].Cluster] == nil {
		return ""
	}
	if own.Clusters[own.Contexts[own.CurrentContext].Cluster].Server != cfg.Clusters[c.Cluster].Server {
		return ""
	}
	return name
}

// warnOutdated says so when a reused cluster's nodes run another image
// than the one this run would create them from (the node image changed
// since): its specs then test the old node.
func (k *Kind) warnOutdated(ctx context.Context, states []nodeState) {
	if k.image == "" {
		return
	}
	want, err := exec.CommandContext(ctx, "docker", "image", "inspect", "-f", "{{.Id}}", k.image).Output()
	if err != nil {
		return
	}
	for _, n := range states {
		if n.imageID == "" {
			continue
		}
		if n.imageRef != "" && n.imageRef != k.image {
			// Made from another image on purpose (cluster up --node-image):
			// not outdated, but not what this run would create either.
			k.logger.Warnf("kind cluster %q: node %s runs %s, not %s; the run tests the nodes as they are", k.name, n.name, n.imageRef, k.image)
			return
		}
		if n.imageID != strings.TrimSpace(string(want)) {
			k.logger.Warnf("kind cluster %q: node %s runs an older build of %s; run `nodeconform cluster delete` to test the current one", k.name, n.name, k.image)
			return
		}
	}
}

func (k *Kind) create(ctx context.Context) error {
	if err := ValidateConfig(k.configName, k.config); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(k.kubeconfig), 0o755); err != nil {
		return err
	}
	start := time.Now()
	k.logger.V(0).Infof("creating kind cluster %q (config %s, image %s)", k.name, k.configName, k.image)
	config := k.config
	if v2, err := HostCgroupV2(); err != nil {
		return err
	} else if !v2 {
		k.logger.V(0).Info("host cgroups are v1: kubelets get failCgroupV1: false (Kubernetes v1.35 and later refuse v1 otherwise)")
		if config, err = AddClusterPatch(config, failCgroupV1Patch); err != nil {
			return fmt.Errorf("kind config %s: %w", k.configName, err)
		}
	}
	opts := []kindcluster.CreateOption{
		kindcluster.CreateWithRawConfig(config),
		kindcluster.CreateWithKubeconfigPath(k.kubeconfig),
		kindcluster.CreateWithDisplayUsage(false),
		kindcluster.CreateWithDisplaySalutation(false),
		kindcluster.CreateWithRetain(k.retain),
	}
	if k.image != "" {
		opts = append(opts, kindcluster.CreateWithNodeImage(k.image))
	}
	// kind's Create takes no context: run it aside so Ctrl-C still returns,
	// then remove what it made.
	done := make(chan error, 1)
	go func() { done <- k.provider.Create(k.name, opts...) }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("create kind cluster %q: %w%s", k.name, err, commandOutput(err))
		}
	case <-ctx.Done():
		k.logger.Warn("interrupted: deleting the half-created cluster")
		<-done
		_ = k.Delete()
		return ctx.Err()
	}
	k.logger.V(0).Infof("kind cluster %q created in %s", k.name, time.Since(start).Round(time.Second))
	return nil
}

// commandOutput returns the output of the node command behind a kind
// error, which kind keeps out of the error string.
func commandOutput(err error) string {
	if re := kindexec.RunErrorForError(err); re != nil && len(re.Output) > 0 {
		out := string(re.Output)
		if len(out) > 6000 {
			out = "..." + out[len(out)-6000:]
		}
		return "\ncommand output:\n" + out
	}
	return ""
}

// Delete removes the cluster, its kubeconfig, and the docker network kind
// made for it once no other container uses that network.
func (k *Kind) Delete() error {
	// A VM node on the cluster's bridge goes first: its control plane is
	// about to disappear.
	if _, err := vmnode.Down(vmStateRoot(), k.name); err != nil {
		k.logger.Warnf("stop the VM node of %q: %v", k.name, err)
	}
	if nodes, lerr := k.provider.ListNodes(k.name); lerr == nil {
		names := make([]string, len(nodes))
		for i, n := range nodes {
			names[i] = n.String()
		}
		k.thawContainers(names)
	}
	err := k.provider.Delete(k.name, k.kubeconfig)
	if rmErr := os.Remove(k.kubeconfig); rmErr != nil && !errors.Is(rmErr, os.ErrNotExist) && err == nil {
		err = rmErr
	}
	if err == nil {
		err = removeUnusedNetwork(KindNetwork())
	}
	return err
}

// vmStateRoot is where VM nodes of kind clusters keep their state.
func vmStateRoot() string {
	return vmnode.DefaultStateRoot(nodeimage.DefaultOptions(nil).CacheDir)
}

// DownVMs stops the cluster's VM node (if any) and removes its Node
// object when the cluster answers.
func (k *Kind) DownVMs(ctx context.Context) error {
	did, err := vmnode.Down(vmStateRoot(), k.name)
	if err != nil {
		return err
	}
	// The Node object goes even without a recorded VM (a crashed run).
	if rc, lerr := LoadKubeconfig(k.kubeconfig, ""); lerr == nil {
		if cs, cerr := kubernetes.NewForConfig(rc); cerr == nil {
			if derr := vmnode.DeleteNode(ctx, cs, k.name); derr != nil {
				k.logger.Warnf("delete Node %s: %v", vmnode.NodeName(k.name), derr)
			}
		}
	}
	if !did {
		k.logger.V(0).Infof("no VM node recorded for cluster %q", k.name)
		return nil
	}
	k.logger.V(0).Infof("stopped VM node %s (QEMU, tap device and overlay disk removed)", vmnode.NodeName(k.name))
	return nil
}

// KindNetwork is the docker network kind puts nodes on.
func KindNetwork() string {
	if n := os.Getenv("KIND_EXPERIMENTAL_DOCKER_NETWORK"); n != "" {
		return n
	}
	return "kind"
}

func removeUnusedNetwork(name string) error {
	out, err := kindexec.Output(kindexec.Command("docker", "network", "inspect", "--format", "{{len .Containers}}", name))
	if err != nil {
		return nil // no such network
	}
	if strings.TrimSpace(string(out)) != "0" {
		return nil // another cluster still uses it
	}
	if err := kindexec.Command("docker", "network", "rm", name).Run(); err != nil {
		return fmt.Errorf("remove docker network %s: %w%s", name, err, commandOutput(err))
	}
	return nil
}

// Kind implements Provider.
func (k *Kind) Kind() string { return "kind" }

// NodeImage is the node image the cluster is created from ("" for kind's
// default).
func (k *Kind) NodeImage() string { return k.image }

// Name implements Provider.
func (k *Kind) Name() string { return k.name }

// KubeconfigPath implements Provider.
func (k *Kind) KubeconfigPath() string { return k.kubeconfig }

// RESTConfig implements Provider; valid after Up.
func (k *Kind) RESTConfig() *rest.Config { return rest.CopyConfig(k.cfg) }

// LoadImageArchive implements Provider: it imports the archive into every
// node's containerd, as `kind load image-archive` does.
func (k *Kind) LoadImageArchive(ctx context.Context, archive string) error {
	nodes, err := k.provider.ListInternalNodes(k.name)
	if err != nil {
		return err
	}
	errs := make(chan error, len(nodes))
	for _, n := range nodes {
		go func() {
			f, err := os.Open(archive)
			if err != nil {
				errs <- err
				return
			}
			defer f.Close()
			// Every suite of a run loads the probe (and NFD) image: a
			// node that has each image by digest and tag is skipped.
			if imgs, err := imagearchive.Images(f); err == nil {
				var out bytes.Buffer
				if n.Command("sh", "-c", imagearchive.MissingScript(imgs)).SetStdout(&out).Run() == nil && strings.TrimSpace(out.String()) == "" {
					errs <- nil
					return
				}
			}
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				errs <- err
				return
			}
			if err := nodeutils.LoadImageArchive(n, f); err != nil {
				errs <- fmt.Errorf("load %s into node %s: %w%s", archive, n.String(), err, commandOutput(err))
				return
			}
			errs <- nil
		}()
	}
	var all []error
	for range nodes {
		all = append(all, <-errs)
	}
	// VM nodes joined to the cluster take the same images over ssh.
	vms, err := vmnode.Attached(vmStateRoot(), k.name)
	if err != nil {
		all = append(all, err)
	}
	for _, m := range vms {
		if err := m.ImportArchive(ctx, archive); err != nil {
			all = append(all, fmt.Errorf("load %s into VM node %s: %w", archive, m.Node, err))
		}
	}
	return errors.Join(all...)
}

// CollectLogs implements Provider with kind's log export.
func (k *Kind) CollectLogs(_ context.Context, dir string) error {
	return k.provider.CollectLogs(k.name, dir)
}

// WaitNodesReady waits until the cluster has nodes and all are Ready and
// settled (see Unsettled).
func WaitNodesReady(ctx context.Context, cfg *rest.Config, timeout time.Duration, logger log.Logger) error {
	_, err := waitNodes(ctx, cfg, time.Time{}, timeout, 0, logger)
	return err
}

// WaitNodesRestarted is WaitNodesReady after kubelets restarted at since:
// each node's lease must also have been renewed after since, by the new
// kubelet. A node's Ready condition still shows the old kubelet's report
// for a moment after the restart, so Ready alone returns at once. It does
// not prove the node will not flap: a rehearsal (2026-12-06) saw a
// worker tainted not-ready and untainted again after its lease was
// renewed, so a caller that needs a still cluster must also watch it
// settle.
func WaitNodesRestarted(ctx context.Context, cfg *rest.Config, since time.Time, timeout time.Duration, logger log.Logger) error {
	_, err := waitNodes(ctx, cfg, since, timeout, 0, logger)
	return err
}

// DownAfter is how long a node's Ready condition must have been other
// than True before WaitNodesUsable stops waiting for it: a kubelet that
// restarts, or a node whose kubelet was just stopped, is not yet down.
const DownAfter = time.Minute

// WaitNodesUsable is WaitNodesReady for a cluster that exists already and
// is to be judged as it is: a node that has been NotReady for DownAfter
// or longer is down, not settling, and is not waited for (a node that
// cannot run pods is a finding on that node, not a reason to judge none).
// It returns each down node with its Ready condition; at least one node
// must be Ready.
func WaitNodesUsable(ctx context.Context, cfg *rest.Config, timeout time.Duration, logger log.Logger) (map[string]string, error) {
	return waitNodes(ctx, cfg, time.Time{}, timeout, DownAfter, logger)
}

func waitNodes(ctx context.Context, cfg *rest.Config, since time.Time, timeout, downAfter time.Duration, logger log.Logger) (map[string]string, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := time.Now()
	var last string
	for {
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err == nil {
			var down map[string]string
			live := nodes.Items
			if downAfter > 0 {
				down = Down(nodes.Items, time.Now(), downAfter)
				live = nil
				for _, n := range nodes.Items {
					if _, ok := down[n.Name]; !ok {
						live = append(live, n)
					}
				}
			}
			waiting := Unsettled(live)
			if len(waiting) == 0 && !since.IsZero() {
				waiting, err = leasesBefore(ctx, cs, live, since)
			}
			switch {
			case err != nil:
				last = err.Error()
			case len(live) > 0 && len(waiting) == 0:
				if len(down) > 0 {
					logger.V(0).Infof("%d nodes Ready after %s, %d down", len(live), time.Since(start).Round(time.Second), len(down))
				} else {
					logger.V(0).Infof("%d nodes Ready after %s", len(live), time.Since(start).Round(time.Second))
				}
				return down, nil
			default:
				if len(live) == 0 {
					waiting = append(waiting, "no node Ready")
				}
				last = fmt.Sprintf("%d nodes, waiting for: %s", len(nodes.Items), strings.Join(waiting, "; "))
			}
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("nodes not Ready within %s: %s", timeout, last)
		case <-time.After(2 * time.Second):
		}
	}
}

// Down returns the nodes whose Ready condition has been other than True
// for after or longer at now, each with its condition ("Ready Unknown
// since 2026-12-06T18:04:06Z (NodeStatusUnknown: Kubelet stopped posting
// node status.)").
// A node without a Ready condition has not registered fully and is not
// down.
func Down(nodes []corev1.Node, now time.Time, after time.Duration) map[string]string {
	out := map[string]string{}
	for i := range nodes {
		c, ok := workload.ReadyCondition(&nodes[i])
		if ok && c.Status != corev1.ConditionTrue && now.Sub(c.LastTransitionTime.Time) >= after {
			out[nodes[i].Name] = workload.ReadySentence(c)
		}
	}
	return out
}

// leasesBefore names the nodes whose lease was last renewed before since.
func leasesBefore(ctx context.Context, cs kubernetes.Interface, nodes []corev1.Node, since time.Time) ([]string, error) {
	var out []string
	for _, n := range nodes {
		l, err := cs.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			return nil, err
		}
		if l.Spec.RenewTime == nil || l.Spec.RenewTime.Time.Before(since) {
			out = append(out, n.Name+" (lease not renewed since the restart)")
		}
	}
	return out, nil
}

// settlingTaints are the taints the node lifecycle controller keeps on a
// node until it has seen it Ready. They outlive the Ready condition by
// seconds (up to 10 s after "Ready" on a new kind cluster), and a pod
// created meanwhile waits, or a snapshot taken meanwhile sees the node
// change on its own (the production-like target's CI failure of
// 2026-12-05).
var settlingTaints = map[string]bool{corev1.TaintNodeNotReady: true, corev1.TaintNodeUnreachable: true}

// Unsettled names, with the reason, the nodes that are not Ready or
// still carry a not-ready or unreachable taint.
func Unsettled(nodes []corev1.Node) []string {
	var out []string
	notReady := map[string]bool{}
	for _, n := range NotReady(nodes) {
		notReady[n] = true
	}
	for _, n := range nodes {
		if notReady[n.Name] {
			out = append(out, n.Name+" (not Ready)")
			continue
		}
		for _, t := range n.Spec.Taints {
			if settlingTaints[t.Key] {
				out = append(out, fmt.Sprintf("%s (taint %s:%s)", n.Name, t.Key, t.Effect))
				break
			}
		}
	}
	return out
}

// NotReady returns the names of nodes whose Ready condition is not True.
func NotReady(nodes []corev1.Node) []string {
	var out []string
	for i := range nodes {
		if !workload.NodeIsReady(&nodes[i]) {
			out = append(out, nodes[i].Name)
		}
	}
	return out
}
