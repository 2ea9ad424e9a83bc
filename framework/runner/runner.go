// Package runner runs the compiled suites against one cluster and turns
// their reports into junit.xml, results.json and a summary: what
// `nodeconform run` does for CI gating and pre-upgrade validation.
package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/onsi/ginkgo/v2/types"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/kind/pkg/log"

	"github.com/nodeconform/nodeconform/framework/access"
	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/cost"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/probe"
	"github.com/nodeconform/nodeconform/framework/report"
	"github.com/nodeconform/nodeconform/framework/workload"
)

// Suites are the suites this build has, in the order a full run takes them:
// read-only first, node-changing last.
var Suites = []string{"cluster", "primitives", "sysctl", "nfd", "cgroups", "runtimeclass", "encapsulation"}

// Planned suites are named in the product's scope but not built yet.
var Planned []string

// Modes of a run.
const (
	ModeApply  = "apply"
	ModeVerify = "verify"
)

// Options are `nodeconform run`'s flags.
type Options struct {
	Suites      []string
	Focus       []string
	Skip        []string
	LabelFilter string
	ReportDir   string
	Timeout     time.Duration
	KeepCluster bool
	// RecreateBroken deletes and recreates a kind cluster that exists but
	// is not usable (e2e.Settings.RecreateBroken).
	RecreateBroken bool
	ProbeImage     string
	// PullSecret is a docker config.json file with the credentials the
	// nodes pull ProbeImage with (--pull-secret; e2e.Settings.PullSecret).
	PullSecret string
	Kubeconfig string
	Context    string
	Mode       string
	Quiet      bool
	KindConfig string
	NodeImage  string
	ConfigFile string
	// SourceDir is the nodeconform source tree, used to compile the
	// suites and the Ginkgo CLI; SuitesDir holds prebuilt <suite>.test
	// binaries and a ginkgo binary otherwise.
	SourceDir string
	SuitesDir string
	// Sequential runs every suite alone, one after the other, instead of
	// the Concurrent ones side by side first.
	Sequential bool
	// Procs is how many Ginkgo processes run a suite's specs in parallel
	// (Serial and Ordered containers still run on one process).
	Procs int
	// Profile is a node profile file: its groups select the judged nodes
	// and each node is judged against its group.
	Profile string
	// Nodes is a label selector narrowing the judged nodes.
	Nodes string
	// KubeconfigFromEnv: Kubeconfig came from KUBECONFIG, not --kubeconfig
	// (only then may a kind cluster behind it be used as kind).
	KubeconfigFromEnv bool
	// probeNamespace is the run's probe, shared by its suites
	// (e2e.StartRunProbe); set by Run.
	probeNamespace string
	// pullSecret is PullSecret's content, read by Validate.
	pullSecret []byte
	// modeDefaulted: no --mode was given (a kind cluster found behind a
	// kubeconfig then runs in apply mode, as kind does by default).
	modeDefaulted bool
}

// UsageError is bad input: exit code 2.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

var ansiEscape = regexp.MustCompile("\x1b\\[[0-9;]*m")

// readPullSecret reads PullSecret (once) and makes its path absolute: the
// suites run in other directories.
func (o *Options) readPullSecret() error {
	if o.PullSecret == "" || o.pullSecret != nil {
		return nil
	}
	abs, err := filepath.Abs(o.PullSecret)
	if err != nil {
		return UsageError{fmt.Errorf("pull secret %s (--pull-secret or NODECONFORM_PULL_SECRET): %w", o.PullSecret, err)}
	}
	if o.pullSecret, err = workload.ReadPullSecret(abs); err != nil {
		return UsageError{err}
	}
	o.PullSecret = abs
	return nil
}

// Validate checks flags before anything touches a cluster, and fills in
// defaults that depend on other flags.
func (o *Options) Validate() error {
	if len(o.Suites) == 0 {
		o.Suites = append([]string(nil), Suites...)
	}
	seen := map[string]bool{}
	for _, s := range o.Suites {
		if seen[s] {
			return UsageError{fmt.Errorf("--suite %s given twice", s)}
		}
		seen[s] = true
		if !contains(Suites, s) {
			if contains(Planned, s) {
				return UsageError{fmt.Errorf("suite %q is planned but not built yet; available: %s", s, strings.Join(Suites, ", "))}
			}
			return UsageError{fmt.Errorf("unknown suite %q; available: %s", s, strings.Join(Suites, ", "))}
		}
	}
	if err := o.readPullSecret(); err != nil {
		return err
	}
	for _, re := range append(append([]string(nil), o.Focus...), o.Skip...) {
		if _, err := regexp.Compile(re); err != nil {
			return UsageError{fmt.Errorf("invalid --focus/--skip regex %q: %w", re, err)}
		}
	}
	// Ginkgo's own parser: a filter it refuses would otherwise fail every
	// suite process after the cluster was set up.
	if o.LabelFilter != "" {
		if _, err := types.ParseLabelFilter(o.LabelFilter); err != nil {
			// Ginkgo's message is colored and spread over lines.
			msg := strings.Join(strings.Fields(ansiEscape.ReplaceAllString(err.Error(), "")), " ")
			return UsageError{fmt.Errorf("invalid --label-filter %q: %s", o.LabelFilter, msg)}
		}
	}
	if o.Timeout <= 0 {
		return UsageError{fmt.Errorf("--timeout must be positive, got %s", o.Timeout)}
	}
	switch o.Mode {
	case "":
		o.Mode, o.modeDefaulted = ModeApply, true
		if o.Kubeconfig != "" {
			o.Mode = ModeVerify
		}
	case ModeApply, ModeVerify:
	default:
		return UsageError{fmt.Errorf("--mode must be %s or %s, got %q", ModeApply, ModeVerify, o.Mode)}
	}
	if o.Kubeconfig == "" && o.Context != "" {
		return UsageError{errors.New("--context needs --kubeconfig (or KUBECONFIG)")}
	}
	if o.ReportDir == "" {
		return UsageError{errors.New("--report-dir must not be empty")}
	}
	if o.Procs == 0 {
		o.Procs = DefaultProcs()
	}
	// The Ginkgo CLI and the suites run in other directories: every path
	// handed to them must not depend on ours.
	for _, p := range []*string{&o.ReportDir, &o.ConfigFile, &o.Kubeconfig, &o.SuitesDir, &o.SourceDir, &o.Profile} {
		if err := absolute(p); err != nil {
			return UsageError{err}
		}
	}
	if _, err := os.Stat(o.KindConfig); err == nil {
		if err := absolute(&o.KindConfig); err != nil {
			return UsageError{err}
		}
	}
	if o.Procs < 1 {
		return UsageError{fmt.Errorf("--procs must be at least 1, got %d", o.Procs)}
	}
	if _, _, err := e2e.LoadConfig(o.ConfigFile, o.Profile); err != nil {
		return UsageError{err}
	}
	if _, err := labels.Parse(o.Nodes); err != nil {
		return UsageError{fmt.Errorf("--nodes %q: %w", o.Nodes, err)}
	}
	return nil
}

func absolute(p *string) error {
	if *p == "" || filepath.IsAbs(*p) {
		return nil
	}
	a, err := filepath.Abs(*p)
	if err != nil {
		return fmt.Errorf("path %q: %w", *p, err)
	}
	*p = a
	return nil
}

// DefaultProcs is one Ginkgo process per CPU, at least 2 and at most 4:
// specs mostly wait on the cluster, and more processes only add API load.
func DefaultProcs() int {
	return min(max(runtime.NumCPU(), 2), 4)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// SuiteArgs are the arguments of the Ginkgo CLI running one compiled
// suite: Ginkgo spreads the specs over o.Procs processes and merges their
// reports into one JUnit and one JSON file per suite.
func (o *Options) SuiteArgs(suite, bin string, remaining time.Duration) []string {
	args := []string{
		"run",
		fmt.Sprintf("--procs=%d", o.Procs),
		"--timeout=" + remaining.String(),
		"--junit-report=" + filepath.Join(o.ReportDir, "junit-"+suite+".xml"),
		"--json-report=" + filepath.Join(o.ReportDir, suite+".json"),
	}
	for _, f := range o.Focus {
		args = append(args, "--focus="+f)
	}
	for _, s := range o.Skip {
		args = append(args, "--skip="+s)
	}
	if o.LabelFilter != "" {
		args = append(args, "--label-filter="+o.LabelFilter)
	}
	if o.Quiet {
		args = append(args, "--no-color", "--succinct")
	} else {
		args = append(args, "-v")
	}
	return append(args, bin)
}

// Env is the environment a suite binary gets: the cluster this run
// prepared and the run's settings.
func (o *Options) Env(clusterName string) []string {
	env := append(os.Environ(), "NODECONFORM_MODE="+o.Mode, "NODECONFORM_SOURCE_DIR="+o.SourceDir)
	set := func(k, v string) {
		if v != "" {
			env = append(env, k+"="+v)
		}
	}
	set("NODECONFORM_KUBECONFIG", o.Kubeconfig)
	set("NODECONFORM_CONTEXT", o.Context)
	set("NODECONFORM_PROBE_IMAGE", o.ProbeImage)
	set(e2e.PullSecretEnv, o.PullSecret)
	set("NODECONFORM_CONFIG", o.ConfigFile)
	set("NODECONFORM_KIND_CONFIG", o.KindConfig)
	set("NODECONFORM_NODE_IMAGE", o.NodeImage)
	set("NODECONFORM_CLUSTER", clusterName)
	set("NODECONFORM_PROFILE", o.Profile)
	set("NODECONFORM_NODES", o.Nodes)
	set(e2e.ProbeNamespaceEnv, o.probeNamespace)
	// Run brought the kind cluster up before any suite: its suites
	// connect instead of checking it again.
	if clusterName != "" && o.Kubeconfig == "" && o.NodeImage != "" {
		env = append(env, e2e.ClusterCheckedEnv+"=1")
	}
	return env
}

// Run prepares the cluster once, runs each suite, and writes the reports.
// It returns the merged results; an error is an environment failure.
func Run(ctx context.Context, o Options, logger log.Logger, out io.Writer) (report.Results, error) {
	res := report.Results{Mode: o.Mode, StartedAt: time.Now().UTC()}
	// Validate read it; a caller that did not still gets it everywhere.
	if err := o.readPullSecret(); err != nil {
		return res, err
	}
	cfg, err := config.Load(o.ConfigFile)
	if err != nil {
		return res, UsageError{err}
	}
	if err := os.MkdirAll(o.ReportDir, 0o755); err != nil {
		return res, UsageError{fmt.Errorf("--report-dir: %w", err)}
	}
	deadline := time.Now().Add(o.Timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()

	// The suite binaries and the Ginkgo CLI link while the cluster is
	// checked or created.
	var bins builtSuites
	built := make(chan struct{})
	go func() {
		defer close(built)
		start := time.Now()
		bins.paths, bins.err = SuiteBinaries(ctx, o, o.Suites)
		if bins.err == nil {
			bins.ginkgo, bins.err = GinkgoCLI(ctx, o)
		}
		bins.secs = time.Since(start).Seconds()
	}()
	// An early return stops the build and waits for it: no go command
	// outlives the run.
	defer func() {
		cancel()
		<-built
	}()

	clusterName := ""
	// A kubeconfig whose context is a kind cluster Docker has (KUBECONFIG
	// exported after using kubectl on it) is that kind cluster: use it as
	// one, with side-loaded images, instead of demanding a probe image.
	if o.KubeconfigFromEnv && o.Kubeconfig != "" && o.ProbeImage == "" {
		if name := cluster.KindClusterOfContext(o.Kubeconfig, o.Context); name != "" {
			if o.modeDefaulted {
				o.Mode = ModeApply
			}
			logger.V(0).Infof("KUBECONFIG %s (context kind-%s) is kind cluster %q: using it as a kind cluster, with kind's own admin credentials (mode %s; --kubeconfig keeps yours)", o.Kubeconfig, name, name, o.Mode)
			o.Kubeconfig, o.Context, clusterName = "", "", name
		}
	}
	res.Mode = o.Mode
	if o.Kubeconfig != "" {
		ex, err := cluster.NewExisting(ctx, o.Kubeconfig, o.Context, cfg.Timeouts.APIReachable.Duration)
		if err != nil {
			return res, UsageError{err}
		}
		res.Cluster = ex.Name()
		if o.ProbeImage == "" {
			return res, UsageError{errors.New("an existing cluster cannot get side-loaded images: push nodeconform's probe image to a registry its nodes can pull and pass --probe-image")}
		}
	} else {
		s := e2e.SettingsFromEnv()
		s.SourceDir, s.KindConfig, s.NodeImage, s.ConfigFile = o.SourceDir, o.KindConfig, o.NodeImage, o.ConfigFile
		s.RecreateBroken = s.RecreateBroken || o.RecreateBroken
		if s.KindConfig == "" {
			s.KindConfig = "default"
		}
		name, data, err := s.KindConfigData()
		if err != nil {
			return res, UsageError{err}
		}
		if err := cluster.ValidateConfig(name, data); err != nil {
			return res, UsageError{err}
		}
		if clusterName == "" {
			clusterName = s.ClusterName
		}
		if clusterName == "" {
			clusterName = cfg.Cluster.Name
		}
		s.ClusterName = clusterName
		existed, _ := cluster.NewKind(clusterName).Exists()
		// The probe image needs no cluster: it builds beside the check.
		var probeBuilt chan builtProbe
		if o.ProbeImage == "" {
			probeBuilt = make(chan builtProbe, 1)
			go func() {
				img, err := e2e.BuildProbeImage(ctx, s, logger)
				probeBuilt <- builtProbe{img, err}
			}()
		}
		k, err := e2e.KindUp(ctx, s, cfg, logger)
		if err != nil && probeBuilt != nil {
			<-probeBuilt // no go command outlives the run
		}
		var envErr cluster.EnvError
		if errors.As(err, &envErr) {
			return res, UsageError{err}
		}
		if err != nil {
			return res, err
		}
		logger.V(0).Infof("kubeconfig of kind cluster %q: %s\n   kubectl --kubeconfig %s get nodes", k.Name(), k.KubeconfigPath(), k.KubeconfigPath())
		// The suites reuse the cluster with the image resolved here,
		// instead of each computing the node image's key again.
		if o.NodeImage == "" {
			o.NodeImage = k.NodeImage()
		}
		// And the probe image this run loaded once into the nodes.
		if probeBuilt != nil {
			b := <-probeBuilt
			if b.err != nil {
				return res, b.err
			}
			if o.ProbeImage, err = e2e.LoadBuiltProbeImage(ctx, k, b.img, logger); err != nil {
				return res, err
			}
		}
		res.Cluster = "kind/" + k.Name()
		if !existed && !o.KeepCluster {
			defer func() {
				logger.V(0).Infof("deleting kind cluster %q (--keep-cluster=false)", k.Name())
				if err := k.Delete(); err != nil {
					logger.Errorf("delete cluster: %v", err)
				}
			}()
		}
	}

	// Credentials bound to too small a role: one error naming every
	// missing permission before anything is created, not a suite failing
	// on "forbidden" after others have run.
	if err := o.checkAccess(ctx, clusterName, cfg, logger); err != nil {
		return res, err
	}
	// A profile that does not fit the cluster (a group matching no node,
	// a node in two groups) or a selector matching nothing is bad input:
	// say so before any suite creates anything.
	if err := o.checkSelection(ctx, clusterName, cfg); err != nil {
		return res, UsageError{err}
	}
	// The suites that reach the nodes share one probe DaemonSet, started
	// here so that its pods come up while the suites start.
	var probe *e2e.RunProbe
	removeProbe := func() {
		if probe == nil {
			return
		}
		if err := probe.Remove(ctx); err != nil {
			logger.Warnf("remove the run's probe: %v", err)
		}
	}
	// The suites' namespaces are deleted without waiting: wait for them
	// once, whichever way the run ends (after the reports, below, or on
	// an early return), the probe's removed first.
	ranSuites := 0
	waited := false
	defer func() {
		if (ranSuites > 0 || probe != nil) && !waited {
			removeProbe()
			if err := o.waitNamespacesGone(ctx, clusterName, cfg, logger); err != nil {
				logger.Warnf("%v", err)
			}
		}
	}()
	if o.needsProbe() {
		kubeconfig, kctx := o.kubeconfig(clusterName)
		if probe, err = e2e.StartRunProbe(ctx, kubeconfig, kctx, o.ProbeImage, o.pullSecret, o.Mode == ModeVerify, cfg); err != nil {
			return res, fmt.Errorf("start the run's probe DaemonSet: %w", err)
		}
		o.probeNamespace = probe.Namespace
	}
	<-built
	if bins.err != nil {
		return res, bins.err
	}
	ginkgo := bins.ginkgo
	done := map[string]suiteResult{}
	res.BuildSeconds = bins.secs
	run := func(suite string, out io.Writer) suiteResult {
		return o.runOne(ctx, ginkgo, bins.paths[suite], suite, clusterName, deadline, out, logger)
	}
	side, alone := o.schedule()
	if len(side) > 1 {
		res.SideBySide = side
		logger.V(0).Infof("=== suites %s side by side (each one's output follows its end)", strings.Join(side, ", "))
		var mu sync.Mutex
		var wg sync.WaitGroup
		for _, suite := range side {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var buf bytes.Buffer
				r := run(suite, &buf)
				mu.Lock()
				defer mu.Unlock()
				logger.V(0).Infof("=== suite %s (%s)", suite, time.Duration(r.secs*float64(time.Second)).Round(100*time.Millisecond))
				_, _ = io.Copy(out, &buf)
				done[suite] = r
			}()
		}
		wg.Wait()
	} else {
		alone = append(side, alone...)
	}
	for _, suite := range alone {
		if ctx.Err() != nil {
			break
		}
		logger.V(0).Infof("=== suite %s", suite)
		done[suite] = run(suite, out)
	}
	var junits []string
	// The suites' failures their own JUnit files lack (suiteSpecs).
	var unreported []report.Spec
	// A suite refused before it started (the run's deadline reached)
	// makes the run an error once the reports of the others are written.
	var refused error
	for _, suite := range o.Suites {
		r, ok := done[suite]
		if ok && !r.ran && refused == nil {
			refused = r.err
		}
		if !ok || !r.ran {
			continue
		}
		ranSuites++
		if res.SuiteSeconds == nil {
			res.SuiteSeconds, res.SuiteCost = map[string]float64{}, map[string]cost.Figures{}
		}
		res.SuiteSeconds[suite] = r.secs
		if r.cost != nil {
			res.SuiteCost[suite] = *r.cost
		}
		res.Specs = append(res.Specs, r.specs...)
		if r.junit != "" {
			junits = append(junits, r.junit)
		}
		for _, s := range r.specs {
			if s.Name == suiteEntry {
				unreported = append(unreported, s)
			}
		}
	}
	var goneErr error
	if ranSuites > 0 || probe != nil {
		removeProbe()
		waited = true
		start := time.Now()
		goneErr = o.waitNamespacesGone(ctx, clusterName, cfg, logger)
		res.NamespaceWaitSeconds = time.Since(start).Seconds()
	}
	if len(junits) > 0 || len(unreported) > 0 {
		if err := report.MergeJUnit(junits, unreported, filepath.Join(o.ReportDir, "junit.xml")); err != nil {
			return res, err
		}
	}
	res.RunSeconds = time.Since(res.StartedAt).Seconds()
	if err := report.Write(filepath.Join(o.ReportDir, "results.json"), res); err != nil {
		return res, err
	}
	if refused != nil {
		return res, refused
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	return res, goneErr
}

// suiteResult is what one suite's run adds to the run's results.
type suiteResult struct {
	// ran: the suite's Ginkgo process was started.
	ran   bool
	secs  float64
	cost  *cost.Figures
	specs []report.Spec
	junit string
	err   error
}

// runOne runs one compiled suite and reads back its report and cost.
func (o *Options) runOne(ctx context.Context, ginkgo, bin, suite, clusterName string, deadline time.Time, out io.Writer, logger log.Logger) suiteResult {
	remaining := time.Until(deadline)
	if remaining <= 0 {
		return suiteResult{err: fmt.Errorf("--timeout %s reached before suite %s", o.Timeout, suite)}
	}
	jsonPath := filepath.Join(o.ReportDir, suite+".json")
	_ = os.Remove(jsonPath)
	start := time.Now()
	runErr := o.runSuite(ctx, ginkgo, bin, suite, clusterName, remaining, out)
	r := suiteResult{ran: true, secs: time.Since(start).Seconds()}
	f, ok, err := cost.Collect(o.costPrefix(suite))
	if err != nil {
		logger.Warnf("suite %s: %v", suite, err)
	}
	reports, err := report.LoadGinkgoJSON(jsonPath)
	if ok {
		report.AddSuitePhases(&f, reports)
		r.cost = &f
	}
	output := "above"
	if o.Quiet {
		output = "in " + filepath.Join(o.ReportDir, suite+".log")
	}
	r.specs = suiteSpecs(suite, reports, err, runErr, output)
	if err == nil {
		r.junit = filepath.Join(o.ReportDir, "junit-"+suite+".xml")
	}
	return r
}

// suiteEntry names the failure of a suite that no spec of it shows.
const suiteEntry = "[suite]"

// suiteSpecs is what a suite's run reports: its specs, plus a failed
// "[suite]" entry when the suite failed in a way no spec shows. Ginkgo's
// CLI writes an empty report when its processes end before reporting (a
// configuration it refuses, a crash in setup), and exits non-zero: that
// must not read as a suite with nothing to report.
func suiteSpecs(suite string, reports []types.Report, loadErr, runErr error, output string) []report.Spec {
	crashed := func(format string, args ...any) report.Spec {
		return report.Spec{Suite: suite, Name: suiteEntry, State: report.Failed,
			Failure: fmt.Sprintf(format, args...) + fmt.Sprintf(" (run error: %v; the suite's output is %s)", runErr, output)}
	}
	if loadErr != nil {
		// No report: the suite binary itself failed (setup crash,
		// timeout before reporting).
		return []report.Spec{crashed("suite produced no report: %v", loadErr)}
	}
	if len(reports) == 0 {
		return []report.Spec{crashed("suite's processes ended before reporting (an empty report)")}
	}
	specs := report.FromGinkgo(suite, reports)
	if runErr != nil && !slices.ContainsFunc(specs, func(s report.Spec) bool {
		return s.State == report.Failed || s.State == report.Interrupted
	}) {
		var reasons []string
		for _, r := range reports {
			reasons = append(reasons, r.SpecialSuiteFailureReasons...)
		}
		specs = append(specs, crashed("suite failed although no spec did (%s)", strings.Join(reasons, "; ")))
	}
	return specs
}

// Concurrent are the suites that may run beside each other: they change
// nothing on the nodes that another suite would see (no kubelet or
// runtime restart, no node configuration), and none of their specs
// depends on a node's free CPU or memory or on a quiet CPU. Their suite
// processes take the cluster lock shared (e2e.SharesCluster); every other
// suite takes it alone, after them, one at a time. The lock is what
// keeps it safe: a schedule that disagreed with it would be serialised,
// not wrong.
var Concurrent = map[string]bool{"cluster": true, "primitives": true, "sysctl": true, "nfd": true}

// NodeAccess are the suites that reach the nodes through the probe
// DaemonSet (e2e.WithNodeAccess): a run with any of them starts one probe
// for all. A suite missing here deploys its own, as it does when run
// without the runner.
var NodeAccess = map[string]bool{"primitives": true, "sysctl": true, "nfd": true, "cgroups": true, "runtimeclass": true, "encapsulation": true}

func (o *Options) needsProbe() bool {
	return slices.ContainsFunc(o.Suites, func(s string) bool { return NodeAccess[s] })
}

// schedule splits the selected suites into those run side by side first
// and those run alone after them, each in the order given.
func (o *Options) schedule() (side, alone []string) {
	for _, s := range o.Suites {
		if Concurrent[s] && !o.Sequential {
			side = append(side, s)
		} else {
			alone = append(alone, s)
		}
	}
	return side, alone
}

func (o *Options) checkSelection(ctx context.Context, clusterName string, cfg *config.Config) error {
	if o.Profile == "" && o.Nodes == "" {
		return nil
	}
	cs, err := o.clientset(clusterName, cfg)
	if err != nil {
		return err
	}
	_, prof, err := e2e.LoadConfig(o.ConfigFile, o.Profile)
	if err != nil {
		return err
	}
	_, _, err = e2e.SelectNodes(ctx, cs, prof, o.Nodes)
	return err
}

// checkAccess refuses a run whose credentials lack a permission its
// suites and mode need (access.For). A review the API server does not
// answer is only warned about: the run then finds out as it goes.
func (o *Options) checkAccess(ctx context.Context, clusterName string, cfg *config.Config, logger log.Logger) error {
	cs, err := o.clientset(clusterName, cfg)
	if err != nil {
		return err
	}
	groups, err := cs.Discovery().ServerGroups()
	if err != nil {
		logger.Warnf("permissions not checked before the run: the API groups served: %v", err)
		return nil
	}
	var served []string
	for _, g := range groups.Groups {
		served = append(served, g.Name)
	}
	var opts []access.Option
	if o.PullSecret != "" {
		opts = append(opts, access.WithPullSecret())
	}
	needs := access.Served(access.For(o.Suites, o.Mode, opts...), served)
	missing, err := access.Missing(ctx, cs, needs)
	if err != nil {
		logger.Warnf("permissions not checked before the run: %v", err)
		return nil
	}
	if len(missing) == 0 {
		logger.V(1).Infof("the credentials hold the %d permissions this run needs", len(needs))
		return nil
	}
	// The table is per suite, not per spec: a run narrowed by a filter
	// may not need what is missing, so it is told, not refused.
	if len(o.Focus) > 0 || len(o.Skip) > 0 || o.LabelFilter != "" {
		logger.Warnf("%v\n(not refused: --focus, --skip or --label-filter may leave out the specs that need them)", access.MissingError{Missing: missing, Warning: true})
		return nil
	}
	cmd := "nodeconform rbac --mode " + o.Mode
	if !slices.Equal(o.Suites, Suites) {
		cmd += " --suite " + strings.Join(o.Suites, ",")
	}
	hint := fmt.Sprintf("`%s` prints a ClusterRole granting every permission this run needs", cmd)
	return UsageError{access.MissingError{Missing: missing, Hint: hint}}
}

// kubeconfig is the run's cluster: --kubeconfig and its context, or the
// kind cluster's own kubeconfig.
func (o *Options) kubeconfig(clusterName string) (path, kctx string) {
	if o.Kubeconfig == "" {
		return cluster.DefaultKubeconfigPath(clusterName), o.Context
	}
	return o.Kubeconfig, o.Context
}

// clientset connects to the run's cluster (kubeconfig).
func (o *Options) clientset(clusterName string, cfg *config.Config) (kubernetes.Interface, error) {
	rc, err := cluster.LoadKubeconfig(o.kubeconfig(clusterName))
	if err != nil {
		return nil, err
	}
	rc.Timeout = cfg.Timeouts.APIReachable.Duration
	rc.QPS, rc.Burst = cfg.Client.QPS, cfg.Client.Burst
	return kubernetes.NewForConfig(rc)
}

// waitNamespacesGone is the one wait for the namespaces every suite
// deleted at its end without waiting (e2e.DeferNamespaceWaitEnv): after
// the last suite, even when the run was interrupted.
func (o *Options) waitNamespacesGone(ctx context.Context, clusterName string, cfg *config.Config, logger log.Logger) error {
	timeout := cfg.Timeouts.NamespaceDeletion.Duration
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout+cfg.Timeouts.APIReachable.Duration)
	defer cancel()
	cs, err := o.clientset(clusterName, cfg)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := e2e.WaitNamespacesGone(ctx, cs, timeout); err != nil {
		return err
	}
	logger.V(1).Infof("the run's namespaces were gone %s after the last suite", time.Since(start).Round(100*time.Millisecond))
	return nil
}

// builtProbe is the probe image Run builds beside its cluster check.
type builtProbe struct {
	img probe.Image
	err error
}

// builtSuites is the result of SuiteBinaries, handed to the run loop.
type builtSuites struct {
	paths  map[string]string
	ginkgo string
	secs   float64
	err    error
}

// SuiteBinaries compiles the suites in one `go test -c` (packages they
// share are loaded once and the links run side by side; an unchanged
// binary is not linked again), or uses the prebuilt ones when there is
// no source tree.
func SuiteBinaries(ctx context.Context, o Options, suites []string) (map[string]string, error) {
	paths := map[string]string{}
	var fromSource []string
	for _, s := range suites {
		paths[s] = filepath.Join(o.SuitesDir, s+".test")
		if _, err := os.Stat(filepath.Join(o.SourceDir, "suites", s)); err != nil {
			bin, err := SuiteBinary(ctx, o, s)
			if err != nil {
				return nil, err
			}
			paths[s] = bin
			continue
		}
		fromSource = append(fromSource, s)
	}
	if len(fromSource) == 1 {
		// One package: -o names the file (a directory only for several).
		bin, err := SuiteBinary(ctx, o, fromSource[0])
		paths[fromSource[0]] = bin
		return paths, err
	}
	if len(fromSource) > 0 {
		dir, err := filepath.Abs(o.SuitesDir)
		if err != nil {
			return nil, err
		}
		// Into a directory, go names each binary after its package: every
		// suite's package is named as its directory (suites/<suite>).
		args := []string{"test", "-c", "-o", dir + string(filepath.Separator)}
		for _, s := range fromSource {
			args = append(args, "./suites/"+s)
		}
		if err := goTool(ctx, o, args...); err != nil {
			return nil, err
		}
		for _, s := range suites {
			if p, err := filepath.Abs(paths[s]); err == nil {
				paths[s] = p
			}
		}
	}
	return paths, nil
}

// SuiteBinary compiles a suite from source when the source tree is there
// (Go's cache makes an unchanged suite instant), else uses a prebuilt one.
func SuiteBinary(ctx context.Context, o Options, suite string) (string, error) {
	return compiled(ctx, o, suite+".test", filepath.Join(o.SourceDir, "suites", suite), "test", "-c", "-o", "{bin}", "./suites/"+suite)
}

// GinkgoCLI builds the Ginkgo CLI at the version go.mod pins (its tool
// directive), or uses a prebuilt one next to the suites.
func GinkgoCLI(ctx context.Context, o Options) (string, error) {
	return compiled(ctx, o, "ginkgo", filepath.Join(o.SourceDir, "go.mod"), "build", "-o", "{bin}", "github.com/onsi/ginkgo/v2/ginkgo")
}

// BuildEnv is the build configuration the Makefile exports (cgo off,
// -trimpath and -buildvcs=false in goflags): suites compiled by a run started outside
// make reuse the packages the CLI's own build compiled.
func BuildEnv(goflags string) []string {
	var keep []string
	for _, f := range strings.Fields(goflags) {
		if f != "-trimpath" && !strings.HasPrefix(f, "-buildvcs") {
			keep = append(keep, f)
		}
	}
	return []string{"CGO_ENABLED=0", "GOFLAGS=" + strings.Join(append(keep, "-trimpath", "-buildvcs=false"), " ")}
}

// compiled runs `go <args>` in the source tree ({bin} is the output path)
// when source exists, else returns the prebuilt binary name in SuitesDir.
func compiled(ctx context.Context, o Options, name, source string, args ...string) (string, error) {
	bin, err := filepath.Abs(filepath.Join(o.SuitesDir, name))
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(source); err == nil {
		for i, a := range args {
			if a == "{bin}" {
				args[i] = bin
			}
		}
		if err := goTool(ctx, o, args...); err != nil {
			return "", err
		}
		return bin, nil
	}
	if _, err := os.Stat(bin); err != nil {
		return "", UsageError{fmt.Errorf("%s: no source at %s and no binary at %s", name, source, bin)}
	}
	return bin, nil
}

// goTool runs `go <args>` in the source tree with the build
// configuration every build of the module shares (BuildEnv).
func goTool(ctx context.Context, o Options, args ...string) error {
	c := exec.CommandContext(ctx, "go", args...)
	c.Dir = o.SourceDir
	c.Env = append(os.Environ(), BuildEnv(os.Getenv("GOFLAGS"))...)
	if out, err := c.CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

func (o *Options) runSuite(ctx context.Context, ginkgo, bin, suite, clusterName string, remaining time.Duration, out io.Writer) error {
	c := exec.Command(ginkgo, o.SuiteArgs(suite, bin, remaining)...)
	c.Env = append(o.Env(clusterName), e2e.CostEnv+"="+o.costPrefix(suite), e2e.DeferNamespaceWaitEnv+"=1")
	// Ginkgo runs a compiled suite in the binary's directory, whatever
	// the CLI's; Validate made every path absolute.
	c.Dir = o.ReportDir
	// The CLI and its suite processes get their own process group. On
	// Ctrl-C or timeout the whole group is interrupted (not killed), as a
	// terminal would, so every process runs Ginkgo's cleanup: reverting
	// nodes and deleting namespaces.
	// Pdeathsig: a CLI killed outright (SIGKILL, OOM) still gets its
	// suite interrupted, and so cleaned up, instead of orphaned.
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGINT}
	if o.Quiet {
		logf, err := os.Create(filepath.Join(o.ReportDir, suite+".log"))
		if err != nil {
			return err
		}
		defer logf.Close()
		c.Stdout, c.Stderr = logf, logf
	} else {
		c.Stdout, c.Stderr = out, out
	}
	if err := c.Start(); err != nil {
		return fmt.Errorf("start ginkgo for suite %s: %w", suite, err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	_ = syscall.Kill(-c.Process.Pid, syscall.SIGINT)
	select {
	case err := <-done:
		return err
	case <-time.After(cleanupGrace):
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		return <-done
	}
}

// costPrefix is where a suite's processes write their cost figures
// (<prefix>.<process>.json) for the runner to sum.
func (o *Options) costPrefix(suite string) string {
	return filepath.Join(o.ReportDir, suite+".cost")
}

// cleanupGrace bounds Ginkgo's cleanup after an interrupt: reverting a
// node restarts kubelet and the runtime, which takes minutes at worst.
const cleanupGrace = 5 * time.Minute
