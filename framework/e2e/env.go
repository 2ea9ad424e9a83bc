// Package e2e connects Ginkgo suites to a cluster: it reads the run's
// settings from the environment, brings up (or reaches) the cluster through
// a cluster.Provider, makes the probe image available, and hands every
// Ginkgo process the same Env.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/e2e-framework/klient"
	kindcmd "sigs.k8s.io/kind/pkg/cmd"
	"sigs.k8s.io/kind/pkg/log"

	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/cost"
	"github.com/nodeconform/nodeconform/framework/hostprep"
	"github.com/nodeconform/nodeconform/framework/nfd"
	"github.com/nodeconform/nodeconform/framework/nodeaccess"
	"github.com/nodeconform/nodeconform/framework/nodeimage"
	"github.com/nodeconform/nodeconform/framework/probe"
	"github.com/nodeconform/nodeconform/framework/profile"
	"github.com/nodeconform/nodeconform/framework/readonly"
	"github.com/nodeconform/nodeconform/framework/workload"
	"github.com/nodeconform/nodeconform/kindconfigs"
)

// Settings are what a run is told through the environment (the runner and
// the Makefile set them; `go test ./suites/...` works without any).
type Settings struct {
	// Kubeconfig selects an existing cluster (NODECONFORM_KUBECONFIG);
	// empty means a nodeconform kind cluster.
	Kubeconfig string
	// Context within Kubeconfig (NODECONFORM_CONTEXT).
	Context string
	// ClusterName of the kind cluster (NODECONFORM_CLUSTER).
	ClusterName string
	// KindConfig is a kind config file or the name of an embedded one
	// (NODECONFORM_KIND_CONFIG, default "default").
	KindConfig string
	// NodeImage for kind nodes (NODECONFORM_NODE_IMAGE); empty builds ours.
	NodeImage string
	// ProbeImage is a pre-pushed probe image (NODECONFORM_PROBE_IMAGE);
	// empty builds and side-loads ours (kind only).
	ProbeImage string
	// ConfigFile overrides the defaults (NODECONFORM_CONFIG).
	ConfigFile string
	// PullSecret is a docker config.json file with the credentials the
	// nodes pull ProbeImage with (NODECONFORM_PULL_SECRET): each of the
	// run's namespaces gets it (workload.GrantPull).
	PullSecret string
	// SourceDir is the nodeconform module root (NODECONFORM_SOURCE_DIR).
	SourceDir string
	// CacheDir holds build outputs (NODECONFORM_CACHE).
	CacheDir string
	// Retain keeps the nodes of a failed kind creation (NODECONFORM_RETAIN=1).
	Retain bool
	// RecreateBroken deletes and recreates a kind cluster of this name
	// whose node containers are stopped, whose API server does not answer
	// or whose nodes do not become Ready (NODECONFORM_RECREATE_BROKEN=1):
	// what a reboot or a Docker restart often leaves of a multi-node kind
	// cluster (its nodes can come back with each other's addresses).
	RecreateBroken bool
	// Mode is apply (specs may change node configuration and revert it) or
	// verify (read-only) (NODECONFORM_MODE, default apply).
	Mode string
	// Profile is a node profile file (NODECONFORM_PROFILE): the nodes of
	// its groups are judged, each against its group.
	Profile string
	// Nodes is a label selector narrowing the nodes judged
	// (NODECONFORM_NODES).
	Nodes string
	// ProbeNamespace is the namespace of a probe DaemonSet the runner
	// deployed once for all its suites (NODECONFORM_PROBE_NAMESPACE,
	// StartRunProbe); empty: a suite deploys its own.
	ProbeNamespace string
	// ClusterChecked: the kind cluster was created or reused, its
	// containers and kubeconfig checked, by the runner that started this
	// process (ClusterCheckedEnv); the suite only connects to it.
	ClusterChecked bool
}

// PullSecretEnv names Settings.PullSecret's file.
const PullSecretEnv = "NODECONFORM_PULL_SECRET"

// ClusterCheckedEnv is set by the runner for its suites once it has
// brought the kind cluster up (Settings.ClusterChecked).
const ClusterCheckedEnv = "NODECONFORM_CLUSTER_CHECKED"

// SettingsFromEnv reads Settings from NODECONFORM_* variables.
func SettingsFromEnv() Settings {
	s := Settings{
		Kubeconfig:     os.Getenv("NODECONFORM_KUBECONFIG"),
		Context:        os.Getenv("NODECONFORM_CONTEXT"),
		ClusterName:    os.Getenv("NODECONFORM_CLUSTER"),
		KindConfig:     os.Getenv("NODECONFORM_KIND_CONFIG"),
		NodeImage:      os.Getenv("NODECONFORM_NODE_IMAGE"),
		ProbeImage:     os.Getenv("NODECONFORM_PROBE_IMAGE"),
		ConfigFile:     os.Getenv("NODECONFORM_CONFIG"),
		PullSecret:     os.Getenv(PullSecretEnv),
		SourceDir:      os.Getenv("NODECONFORM_SOURCE_DIR"),
		CacheDir:       os.Getenv("NODECONFORM_CACHE"),
		Retain:         os.Getenv("NODECONFORM_RETAIN") == "1",
		RecreateBroken: os.Getenv("NODECONFORM_RECREATE_BROKEN") == "1",
		Mode:           os.Getenv("NODECONFORM_MODE"),
		Profile:        os.Getenv("NODECONFORM_PROFILE"),
		Nodes:          os.Getenv("NODECONFORM_NODES"),
		ProbeNamespace: os.Getenv(ProbeNamespaceEnv),
		ClusterChecked: os.Getenv(ClusterCheckedEnv) == "1",
	}
	if s.Mode == "" {
		s.Mode = "apply"
	}
	if s.KindConfig == "" {
		s.KindConfig = kindconfigs.Default
	}
	if s.SourceDir == "" {
		s.SourceDir = FindModuleRoot()
	}
	return s
}

// FindModuleRoot walks up from the working directory to the go.mod.
func FindModuleRoot() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// KindConfigData returns the kind config named by s.KindConfig: a file if
// one exists at that path, else an embedded config.
func (s Settings) KindConfigData() (string, []byte, error) {
	if data, err := os.ReadFile(s.KindConfig); err == nil {
		return s.KindConfig, data, nil
	}
	data, err := kindconfigs.Get(s.KindConfig)
	if err != nil {
		return "", nil, fmt.Errorf("kind config %q: no such file, and no embedded config of that name", s.KindConfig)
	}
	return "kindconfigs/" + s.KindConfig + ".yaml", data, nil
}

// Env is what every spec gets.
type Env struct {
	Config     *config.Config
	Provider   string
	Cluster    string
	Kubeconfig string
	Context    string
	ProbeImage string
	// PullSecret is the docker config.json the run's pods pull with
	// (Settings.PullSecret's content); nil without one.
	PullSecret []byte
	// NFDImage is nodeconform's NFD build, loaded on kind nodes; "" on
	// existing clusters (the suite uses the cluster's own NFD).
	NFDImage string
	// RunID labels everything this run creates (RunLabel).
	RunID string
	// Mode is "apply" or "verify" (read-only: no node changes).
	Mode string
	// Nodes reaches every node through the probe DaemonSet; nil unless the
	// suite asked for node access.
	Nodes *nodeaccess.Probes
	// ProbeReadyAfter is how long the probe DaemonSet took to be Ready.
	ProbeReadyAfter time.Duration
	// Profile is the run's node profile; nil without --profile.
	Profile *profile.Profile
	// Targets are the nodes the run judges, sorted by name.
	Targets []Target
	// NotJudged maps the cluster's nodes the run leaves out (in no profile
	// group, not Linux, cordoned) to why.
	NotJudged map[string]string
	// Swept and Replayed are what earlier runs had left and setup removed
	// (or, in verify mode, only found).
	Swept, Replayed []string
	REST            *rest.Config
	Clientset       kubernetes.Interface
	Klient          klient.Client
}

// shared is what process 1 hands to the other Ginkgo processes.
type shared struct {
	Provider   string `json:"provider"`
	Cluster    string `json:"cluster"`
	Kubeconfig string `json:"kubeconfig"`
	Context    string `json:"context"`
	ProbeImage string `json:"probeImage"`
	// PullSecret is the file's content, read once by Up.
	PullSecret []byte `json:"pullSecret,omitempty"`
	NFDImage   string `json:"nfdImage,omitempty"`
	ConfigFile string `json:"configFile"`
	RunID      string `json:"runID"`
	Mode       string `json:"mode"`
	ProbeNS    string `json:"probeNamespace,omitempty"`
	// ProbeReady is how long the probe DaemonSet took to be Ready everywhere.
	ProbeReady time.Duration `json:"probeReady,omitempty"`
	// ProbeProblems maps nodes whose probe never became Ready to why.
	ProbeProblems map[string]string `json:"probeProblems,omitempty"`
	ProfileFile   string            `json:"profileFile,omitempty"`
	// Swept and Replayed are what earlier runs left: objects on the
	// cluster, node changes in the nodes' journals.
	Swept     []string          `json:"swept,omitempty"`
	Replayed  []string          `json:"replayed,omitempty"`
	Targets   []Target          `json:"targets"`
	NotJudged map[string]string `json:"notJudged,omitempty"`
}

// lockID names the cluster the settings target, for the cluster lock.
func (s Settings) lockID() string {
	switch {
	case s.Kubeconfig != "":
		return s.Kubeconfig + "/" + s.Context
	case s.ClusterName == "":
		return "kind/" + TreeConfig().Cluster.Name
	}
	return "kind/" + s.ClusterName
}

// RunLabel carries the run ID on every namespace a run creates, so cleanup
// never touches another run's objects.
const RunLabel = "nodeconform.io/run"

// Up prepares the cluster once per run (Ginkgo process 1) and returns the
// bytes every process passes to Connect.
func Up(ctx context.Context, s Settings, logger log.Logger, opts ...SuiteOption) ([]byte, error) {
	var o suiteOptions
	for _, f := range opts {
		f(&o)
	}
	cfg, prof, err := LoadConfig(s.ConfigFile, s.Profile)
	if err != nil {
		return nil, err
	}
	if logger == nil {
		logger = kindcmd.NewLogger()
	}
	if s.Mode != "apply" && s.Mode != "verify" {
		return nil, fmt.Errorf("NODECONFORM_MODE must be apply or verify, got %q", s.Mode)
	}
	sh := shared{ConfigFile: s.ConfigFile, ProfileFile: s.Profile, ProbeImage: s.ProbeImage, RunID: fmt.Sprintf("%x", time.Now().UnixNano()), Mode: s.Mode}
	if s.PullSecret != "" {
		if sh.PullSecret, err = workload.ReadPullSecret(s.PullSecret); err != nil {
			return nil, err
		}
	}
	var p cluster.Provider
	if s.Kubeconfig != "" {
		e, err := cluster.NewExisting(ctx, s.Kubeconfig, s.Context, cfg.Timeouts.APIReachable.Duration)
		if err != nil {
			return nil, err
		}
		p = e
		sh.Context = s.Context
		if s.ProbeImage == "" {
			return nil, fmt.Errorf("an existing cluster needs a probe image its nodes can pull: push nodeconform's probe image and set --probe-image")
		}
	} else {
		k, err := KindUp(ctx, s, cfg, logger)
		if err != nil {
			return nil, err
		}
		p = k
	}
	sh.Provider, sh.Cluster, sh.Kubeconfig = p.Kind(), p.Name(), p.KubeconfigPath()
	if sh.ProbeImage == "" {
		// Suites sharing the cluster lock may get here at once (go test
		// ./suites/...; the runner loads the image before its suites):
		// one builds and loads, the others then find it loaded.
		l, err := lockCluster(ctx, s.lockID()+"/probe-image", cfg.Timeouts.ClusterLock.Duration, false)
		if err != nil {
			return nil, err
		}
		sh.ProbeImage, err = LoadProbeImage(ctx, s, p, logger)
		l.release()
		if err != nil {
			return nil, err
		}
	}
	// Loading an image writes to the nodes' image store: never in verify mode.
	if o.nfdImage && sh.Provider == "kind" && sh.Mode == "apply" {
		cache := s.CacheDir
		if cache == "" {
			cache = nodeimage.DefaultOptions(logger).CacheDir
		}
		img, err := nfd.BuildImage(ctx, nfd.BuildOptions{SourceDir: s.SourceDir, CacheDir: cache})
		if err != nil {
			return nil, err
		}
		if err := p.LoadImageArchive(ctx, img.Archive); err != nil {
			return nil, err
		}
		sh.NFDImage = img.Ref
	}
	rc, cs, kl, err := clients(sh.Kubeconfig, sh.Context, sh.Mode == "verify", cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	readOnly := sh.Mode == "verify"
	// What runs without a live owner left behind goes before this run
	// creates anything (a read-only run only reports it).
	if sh.Swept, err = Sweep(ctx, cs, dyn, sh.RunID, readOnly, cfg); err != nil {
		return nil, fmt.Errorf("remove leftovers of earlier runs: %w", err)
	}
	report := func(what string, items []string) {
		if len(items) == 0 {
			return
		}
		verb := "removed"
		if readOnly {
			verb = "found (verify mode: not removed; run `nodeconform cleanup`)"
		}
		logger.Warnf("%s %s:\n  %s", verb, what, strings.Join(items, "\n  "))
	}
	report("leftovers of earlier runs", sh.Swept)
	if sh.Targets, sh.NotJudged, err = SelectNodes(ctx, cs, prof, s.Nodes); err != nil {
		return nil, err
	}
	if len(sh.NotJudged) > 0 {
		var lines []string
		for _, n := range sortedKeys(sh.NotJudged) {
			lines = append(lines, n+": "+sh.NotJudged[n])
		}
		logger.V(0).Infof("nodes not judged:\n  %s", strings.Join(lines, "\n  "))
	}
	if err := startOwner(ctx, cs, sh.RunID, cfg.Timeouts.OwnerLease.Duration); err != nil {
		return nil, err
	}
	// From here on a failure removes everything of this run: a privileged
	// DaemonSet must never outlive a failed setup.
	fail := func(err error) ([]byte, error) {
		stopOwner(sh.RunID)
		if _, derr := removeRun(context.WithoutCancel(ctx), cs, dyn, sh.RunID, removal{Timeout: cfg.Timeouts.NamespaceDeletion.Duration}); derr != nil {
			err = fmt.Errorf("%w; and removing this run's objects failed: %v", err, derr)
		}
		return nil, err
	}
	// A suite without node access still deploys the probe when it swept
	// a dead run: that run's node journal must be replayed now, since its
	// owner namespace (the sign that it may have one) is gone.
	if o.nodeAccess || len(sh.Swept) > 0 {
		probeStart := time.Now()
		var probes *nodeaccess.Probes
		if s.ProbeNamespace != "" {
			// The runner's, started before this suite: it stays when the
			// suite ends (its namespace carries the runner's run ID).
			probes, err = attachProbe(ctx, cs, kl, s.ProbeNamespace, cfg.Timeouts.ProbeReady.Duration)
		} else {
			probes, err = nodeaccess.Deploy(ctx, nodeaccess.Input{Clientset: cs, Klient: kl, Image: sh.ProbeImage,
				Labels: map[string]string{RunLabel: sh.RunID}, Timeout: cfg.Timeouts.ProbeReady.Duration, PullSecret: sh.PullSecret,
				PullTimeout: cfg.Timeouts.PullSecretGrant.Duration})
		}
		if err != nil {
			return fail(err)
		}
		cost.Time(cost.PhaseProbeStart, probeStart)
		probes.ReadOnly = readOnly
		sh.ProbeNS, sh.ProbeReady, sh.ProbeProblems = probes.Namespace, probes.ReadyAfter, probes.Problems
		logger.V(0).Infof("probe ready on %d nodes in %s", probes.Ready(), probes.ReadyAfter.Round(100*time.Millisecond))
		for _, n := range sortedKeys(probes.Problems) {
			logger.Warnf("node %s cannot be examined: %s", n, probes.Problems[n])
		}
		if sh.Replayed, err = ReplayJournals(ctx, cs, probes, sh.RunID, readOnly, cfg, logger); err != nil {
			return fail(err)
		}
		report("node changes of earlier runs (journal)", sh.Replayed)
	}
	return json.Marshal(sh)
}

// LoadProbeImage builds the probe image (cached by content) and loads it
// into the provider's nodes where they lack it; it returns the image's
// reference. The runner does it once per run, before its suites, so that
// suites run side by side never import the same image at once.
func LoadProbeImage(ctx context.Context, s Settings, p cluster.Provider, logger log.Logger) (string, error) {
	img, err := BuildProbeImage(ctx, s, logger)
	if err != nil {
		return "", err
	}
	return LoadBuiltProbeImage(ctx, p, img, logger)
}

// BuildProbeImage builds the probe image, cached by content: it needs no
// cluster, so the runner builds it while the cluster is checked.
func BuildProbeImage(ctx context.Context, s Settings, logger log.Logger) (probe.Image, error) {
	cache := s.CacheDir
	if cache == "" {
		cache = nodeimage.DefaultOptions(logger).CacheDir
	}
	return probe.BuildImage(ctx, probe.BuildOptions{SourceDir: s.SourceDir, CacheDir: cache})
}

// LoadBuiltProbeImage loads a built probe image into the provider's nodes
// where they lack it and returns its reference.
func LoadBuiltProbeImage(ctx context.Context, p cluster.Provider, img probe.Image, logger log.Logger) (string, error) {
	start := time.Now()
	if err := p.LoadImageArchive(ctx, img.Archive); err != nil {
		return "", err
	}
	logger.V(1).Infof("probe image %s loaded in %s", img.Ref, time.Since(start).Round(time.Millisecond))
	return img.Ref, nil
}

// Abandon removes everything of the run Up's data describes: for a
// process that cannot Connect after a successful Up.
func Abandon(ctx context.Context, data []byte) error {
	var sh shared
	if err := json.Unmarshal(data, &sh); err != nil {
		return err
	}
	stopOwner(sh.RunID)
	cfg, _, err := LoadConfig(sh.ConfigFile, sh.ProfileFile)
	if err != nil {
		cfg = config.Default()
	}
	rc, cs, _, err := clients(sh.Kubeconfig, sh.Context, sh.Mode == "verify", cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(rc)
	if err != nil {
		return err
	}
	_, err = removeRun(ctx, cs, dyn, sh.RunID, removal{Timeout: cfg.Timeouts.NamespaceDeletion.Duration})
	return err
}

// KindUp makes sure Docker answers and the node image exists, then creates
// or reuses the kind cluster.
func KindUp(ctx context.Context, s Settings, cfg *config.Config, logger log.Logger) (*cluster.Kind, error) {
	name, data, err := s.KindConfigData()
	if err != nil {
		return nil, err
	}
	if err := cluster.ValidateConfig(name, data); err != nil {
		return nil, err
	}
	clusterName := s.ClusterName
	if clusterName == "" {
		clusterName = cfg.Cluster.Name
	}
	opts := []cluster.KindOption{cluster.WithConfig(name, data), cluster.WithLogger(logger),
		cluster.WithReadyTimeout(cfg.Timeouts.ClusterReady.Duration)}
	if s.ClusterChecked && s.NodeImage != "" {
		k := cluster.NewKind(clusterName, append(opts, cluster.WithNodeImage(s.NodeImage))...)
		if err := k.Attach(ctx); err != nil {
			return nil, err
		}
		return k, nil
	}
	if err := hostprep.EnsureDocker(ctx, hostprep.DefaultOptions(logger)); err != nil {
		return nil, err
	}
	image := s.NodeImage
	if image == "" {
		o := nodeimage.DefaultOptions(logger)
		o.SourceDir = s.SourceDir
		if s.CacheDir != "" {
			o.CacheDir = s.CacheDir
		}
		if image, err = nodeimage.Build(ctx, o); err != nil {
			return nil, err
		}
	}
	k := cluster.NewKind(clusterName, append(opts, cluster.WithNodeImage(image),
		cluster.WithRetain(s.Retain), cluster.WithRecreateBroken(s.RecreateBroken))...)
	if err := k.Up(ctx); err != nil {
		return nil, err
	}
	return k, nil
}

// Connect builds the Env from Up's bytes; every Ginkgo process calls it.
func Connect(data []byte) (*Env, error) {
	var sh shared
	if err := json.Unmarshal(data, &sh); err != nil {
		return nil, fmt.Errorf("decode shared setup: %w", err)
	}
	cfg, prof, err := LoadConfig(sh.ConfigFile, sh.ProfileFile)
	if err != nil {
		return nil, err
	}
	rc, cs, kl, err := clients(sh.Kubeconfig, sh.Context, sh.Mode == "verify", cfg)
	if err != nil {
		return nil, err
	}
	e := &Env{Config: cfg, Provider: sh.Provider, Cluster: sh.Cluster, Kubeconfig: sh.Kubeconfig, PullSecret: sh.PullSecret,
		Context: sh.Context, ProbeImage: sh.ProbeImage, NFDImage: sh.NFDImage, RunID: sh.RunID, Mode: sh.Mode, ProbeReadyAfter: sh.ProbeReady, REST: rc, Clientset: cs, Klient: kl,
		Profile: prof, Targets: sh.Targets, NotJudged: sh.NotJudged, Swept: sh.Swept, Replayed: sh.Replayed}
	if sh.ProbeNS != "" {
		if e.Nodes, err = nodeaccess.Attach(context.Background(), cs, kl, sh.ProbeNS); err != nil {
			return nil, err
		}
		e.Nodes.ReadOnly = sh.Mode == "verify"
		e.Nodes.Problems = sh.ProbeProblems
	}
	return e, nil
}

// clients builds the REST config, clientset and e2e-framework client of a
// kubeconfig context, rate-limited as cfg says; read-only ones (verify
// mode) refuse every write outside the run's own namespaces.
func clients(kubeconfig, context string, readOnly bool, cfg *config.Config) (*rest.Config, kubernetes.Interface, klient.Client, error) {
	rc, err := cluster.LoadKubeconfig(kubeconfig, context)
	if err != nil {
		return nil, nil, nil, err
	}
	rc.QPS, rc.Burst = cfg.Client.QPS, cfg.Client.Burst
	if readOnly {
		rc.Wrap(func(rt http.RoundTripper) http.RoundTripper { return readonly.Transport{Next: rt} })
	}
	rc.Wrap(func(rt http.RoundTripper) http.RoundTripper { return cost.Transport{Next: rt} })
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, nil, nil, err
	}
	kl, err := klient.New(rc)
	if err != nil {
		return nil, nil, nil, err
	}
	return rc, cs, kl, nil
}
