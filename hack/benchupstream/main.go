// Command benchupstream measures nodeconform against upstream's own e2e
// tests on the same cluster: it builds upstream's e2e.test at the
// cluster's Kubernetes version (offline: the module proxy, stand-in
// images built here), runs upstream's Sysctls, RuntimeClass and Mount
// propagation specs and nodeconform's matching suites one after the
// other, and prints each area's wall time, spec and property counts and
// the ratio. Run with `make bench-upstream` (not part of CI: the build
// alone takes minutes and 2 GB).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/report"
	"github.com/nodeconform/nodeconform/framework/runner"
)

// area is one property area both test suites cover.
type area struct {
	Name string
	// Focus selects upstream's specs of the area.
	Focus string
	// Suite is nodeconform's suite for the area.
	Suite string
	// Properties maps each upstream spec (its leaf text) to the
	// nodeconform spec that checks the same property (a substring of its
	// name), so that "checks at least as much" is a reading, not a claim.
	Properties map[string]string
}

var areas = []area{
	{Name: "Sysctls", Focus: `\[sig-node\] Sysctls`, Suite: "sysctl", Properties: map[string]string{
		"should support sysctls":                                                   "accepts every safe sysctl of the release on every node",
		"should reject invalid sysctls":                                            "rejects malformed sysctl names at validation",
		"should support sysctls with slashes as separator":                         "applies a sysctl named with slashes",
		"should not launch unsafe, but not explicitly enabled sysctls on the node": "matches the expected outcome of each sysctl on each node",
	}},
	{Name: "RuntimeClass", Focus: `\[sig-node\] RuntimeClass`, Suite: "runtimeclass", Properties: map[string]string{
		"should schedule a Pod requesting a RuntimeClass without PodOverhead":          "merges the RuntimeClass's nodeSelector and tolerations",
		"should reject a Pod requesting a non-existent RuntimeClass":                   "rejects at admission a pod naming a RuntimeClass that does not exist",
		"should reject a Pod requesting a deleted RuntimeClass":                        "or was deleted",
		"should reject a Pod requesting a RuntimeClass with conflicting node selector": "merges the RuntimeClass's nodeSelector and tolerations",
		"should schedule a Pod requesting a RuntimeClass and initialize its Overhead":  "has admission copy the RuntimeClass overhead into the pod's spec.overhead",
		"should run a Pod requesting a RuntimeClass with scheduling with taints":       "merges the RuntimeClass's nodeSelector and tolerations",
		"should run a Pod requesting a RuntimeClass with scheduling without taints":    "merges the RuntimeClass's nodeSelector and tolerations",
		"should support RuntimeClasses API operations":                                 "serves the RuntimeClass API",
		// Upstream creates a RuntimeClass of a handler the nodes have and
		// expects its pod to run; the scheduling spec runs its pod the same
		// way (and checks where it lands). The per-node pod cgroup spec
		// checks more and boots a sandbox on every node.
		"should run a Pod requesting a RuntimeClass with a configured handler":       "merges the RuntimeClass's nodeSelector and tolerations",
		"should reject a Pod requesting a RuntimeClass with an unconfigured handler": "fails sandbox creation for an unknown handler",
	}},
	{Name: "Mount propagation", Focus: `\[sig-node\] Mount propagation`, Suite: "encapsulation", Properties: map[string]string{
		"should propagate mounts within defined scopes": "propagates container mounts as the seeds' matrix shows, a mount made on the node",
	}},
}

func main() {
	work := flag.String("work", filepath.Join(cacheDir(), "work"), "where the wrapper module, e2e.test and the stand-in images are kept")
	kubeconfig := flag.String("kubeconfig", cluster.DefaultKubeconfigPath(config.Default().Cluster.Name), "the kind cluster to measure on (nodeconform's default cluster)")
	ver := flag.String("kubernetes-version", "", "build e2e.test at this version (default: the cluster's)")
	profile := flag.String("profile", "kindconfigs/default-profile.yaml", "nodeconform's profile for the cluster")
	buildOnly := flag.Bool("build-only", false, "build e2e.test and agnhost, then stop")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Minute)
	defer cancel()
	if err := run(ctx, *work, *kubeconfig, *ver, *profile, *buildOnly); err != nil {
		fmt.Fprintln(os.Stderr, "benchupstream:", err)
		os.Exit(1)
	}
}

type side struct {
	wall float64
	// nsWait is the part of wall nodeconform spent waiting, after its
	// last suite, until its namespaces were gone. Upstream's framework
	// deletes its namespaces without waiting (AfterEach), so its wall
	// has no such part: the like-for-like figure is wall - nsWait.
	nsWait float64
	// failedSecs is the run time of upstream's failed specs: a spec that
	// fails on this cluster (one waits 300 s for a rejection our nodes'
	// allowlist does not give) measures its timeout, not a speed, so the
	// speedup leaves it out and the table says so.
	failedSecs              float64
	passed, failed, skipped int
	names                   []string
}

func run(ctx context.Context, work, kubeconfig, ver, profile string, buildOnly bool) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return fmt.Errorf("kubeconfig %s: %w (make cluster creates the default cluster)", kubeconfig, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if ver == "" {
		sv, err := cs.Discovery().ServerVersion()
		if err != nil {
			return fmt.Errorf("cluster of %s unreachable: %w", kubeconfig, err)
		}
		ver = strings.SplitN(sv.GitVersion, "+", 2)[0]
	}
	b, err := buildUpstream(ctx, work, ver)
	if err != nil || buildOnly {
		return err
	}
	ims, err := standIns(b.KubeDir)
	if err != nil {
		return err
	}
	name := config.Default().Cluster.Name
	if err := loadStandIns(ctx, name, work, b, ims); err != nil {
		return err
	}
	root := e2e.FindModuleRoot()
	bin := filepath.Join(root, "bin", "nodeconform")
	// Compiled before the timed runs, as upstream's e2e.test is: a run
	// right after a source change would otherwise time the suites'
	// link (10-15 s), which Go's cache makes a one-off.
	var suites []string
	for _, a := range areas {
		suites = append(suites, a.Suite)
	}
	o := runner.Options{SourceDir: root, SuitesDir: filepath.Join(root, "bin", "suites")}
	progress("compiling nodeconform's suites %s", strings.Join(suites, ", "))
	if _, err := runner.SuiteBinaries(ctx, o, suites); err != nil {
		return err
	}
	if _, err := runner.GinkgoCLI(ctx, o); err != nil {
		return err
	}
	// The last run's reports and logs stay for reading.
	out := filepath.Join(work, "bench-upstream-last")
	_ = os.RemoveAll(out)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	progress("reports and logs: %s", out)
	ups, ours := map[string]side{}, map[string]side{}
	for _, a := range areas {
		before, err := runtimeClasses(ctx, cs)
		if err != nil {
			return err
		}
		progress("%s: upstream e2e.test --ginkgo.focus %q", a.Name, a.Focus)
		u, err := runUpstream(ctx, b.E2E, kubeconfig, a.Focus, filepath.Join(out, "upstream-"+a.Suite+".json"))
		// Upstream's node RuntimeClass specs leave their classes behind.
		if cerr := deleteNew(ctx, cs, before); cerr != nil && err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		ups[a.Name] = u
		progress("%s: nodeconform run --suite %s --focus (the specs of upstream's properties)", a.Name, a.Suite)
		o, err := runOurs(ctx, bin, kubeconfig, profile, a.Suite, a.focus(), filepath.Join(out, a.Suite), root)
		if err != nil {
			return err
		}
		ours[a.Name] = o
	}
	printTable(ups, ours)
	return nil
}

func runUpstream(ctx context.Context, e2eTest, kubeconfig, focus, jsonReport string) (side, error) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, e2eTest, "--kubeconfig", kubeconfig, "--provider", "skeleton",
		"--ginkgo.focus", focus, "--ginkgo.no-color", "--ginkgo.json-report", jsonReport)
	logFile := strings.TrimSuffix(jsonReport, ".json") + ".log"
	lf, err := os.Create(logFile)
	if err != nil {
		return side{}, err
	}
	defer lf.Close()
	cmd.Stdout, cmd.Stderr = lf, lf
	runErr := cmd.Run()
	s := side{wall: time.Since(start).Seconds()}
	reps, err := report.LoadGinkgoJSON(jsonReport)
	if err != nil {
		return s, fmt.Errorf("e2e.test (%v): %w; its log: %s", runErr, err, logFile)
	}
	for _, r := range reps {
		for _, sr := range r.SpecReports {
			if sr.LeafNodeType != types.NodeTypeIt {
				continue
			}
			switch {
			case sr.State == types.SpecStatePassed:
				s.passed++
				s.names = append(s.names, sr.LeafNodeText)
			case sr.State.Is(types.SpecStateFailureStates):
				s.failed++
				s.failedSecs += sr.RunTime.Seconds()
				s.names = append(s.names, sr.LeafNodeText)
				progress("  upstream FAILED: %s: %s", sr.LeafNodeText, firstLine(sr.Failure.Message))
			case sr.State == types.SpecStateSkipped && sr.NumAttempts > 0:
				// Skipped while running (a Skip call), not filtered out.
				s.skipped++
				s.names = append(s.names, sr.LeafNodeText)
				progress("  upstream skipped: %s: %s", sr.LeafNodeText, firstLine(sr.Failure.Message))
			}
		}
	}
	return s, nil
}

func runOurs(ctx context.Context, bin, kubeconfig, profile, suite, focus, dir, root string) (side, error) {
	start := time.Now()
	cmd := exec.CommandContext(ctx, bin, "run", "--suite", suite, "--focus", focus, "--profile", profile, "--report-dir", dir, "--quiet")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	s := side{wall: time.Since(start).Seconds()}
	res, lerr := report.Load(filepath.Join(dir, "results.json"))
	if lerr != nil {
		return s, fmt.Errorf("nodeconform run --suite %s: %v: %w\n%s", suite, err, lerr, out)
	}
	s.nsWait = res.NamespaceWaitSeconds
	for _, sp := range res.Specs {
		switch sp.State {
		case report.Passed:
			s.passed++
		case report.Skipped:
			if strings.HasPrefix(sp.Skip, "filtered out") {
				continue // not selected by the focus
			}
			s.skipped++
		case report.Failed:
			s.failed++
			progress("  nodeconform FAILED: %s", sp.Name)
		default:
			s.skipped++
		}
		s.names = append(s.names, sp.Name)
	}
	return s, nil
}

// printTable prints, per area, both sides' wall time and spec counts, the
// ratio, and which of upstream's properties nodeconform checks.
func printTable(ups, ours map[string]side) {
	fmt.Printf("\n%-18s | %-28s | %-28s | %7s | %7s | %s\n", "area", "upstream e2e.test", "nodeconform", "speedup", "no wait", "upstream properties checked by nodeconform")
	for _, a := range areas {
		u, o := ups[a.Name], ours[a.Name]
		covered, missing := 0, []string{}
		for _, up := range u.names {
			if ourSpec, known := property(a, up); known && containsName(o.names, ourSpec) {
				covered++
			} else {
				missing = append(missing, up)
			}
		}
		fmt.Printf("%-18s | %6.1f s, %2d specs (%d/%d/%d) | %6.1f s, %2d specs (%d/%d/%d) | %6.2fx | %6.2fx | %d of %d\n", a.Name,
			u.wall, u.passed+u.failed+u.skipped, u.passed, u.failed, u.skipped,
			o.wall, o.passed+o.failed+o.skipped, o.passed, o.failed, o.skipped,
			(u.wall-u.failedSecs)/o.wall, (u.wall-u.failedSecs)/(o.wall-o.nsWait), covered, len(u.names))
		if u.failed > 0 {
			fmt.Printf("%-18s   upstream's %d failed spec(s) took %.1f s, left out of both speedups\n", "", u.failed, u.failedSecs)
		}
		for _, m := range missing {
			fmt.Printf("%-18s   not checked by nodeconform: %s\n", "", m)
		}
	}
	fmt.Println("(specs: passed/failed/skipped; speedup: upstream's wall time, less its failed specs' time, over nodeconform's, each a whole process: its setup, specs and cleanup;")
	fmt.Println(" no wait: over nodeconform's less its final wait until its namespaces are gone, which upstream's framework does not wait for)")
}

// property finds the nodeconform spec of an upstream spec, whose leaf
// text is the property's text followed by its labels ([Conformance] …).
func property(a area, upstream string) (string, bool) {
	for up, ours := range a.Properties {
		if strings.HasPrefix(upstream, up) {
			return ours, true
		}
	}
	return "", false
}

// focus is the Ginkgo focus selecting nodeconform's specs of the area.
func (a area) focus() string {
	seen := map[string]bool{}
	var parts []string
	for _, ours := range a.Properties {
		if !seen[ours] {
			seen[ours] = true
			parts = append(parts, regexp.QuoteMeta(ours))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, "|")
}

func containsName(names []string, sub string) bool {
	for _, n := range names {
		if strings.Contains(n, sub) {
			return true
		}
	}
	return false
}

func runtimeClasses(ctx context.Context, cs kubernetes.Interface) (map[string]bool, error) {
	l, err := cs.NodeV1().RuntimeClasses().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	m := map[string]bool{}
	for _, rc := range l.Items {
		m[rc.Name] = true
	}
	return m, nil
}

func deleteNew(ctx context.Context, cs kubernetes.Interface, before map[string]bool) error {
	now, err := runtimeClasses(ctx, cs)
	if err != nil {
		return err
	}
	for n := range now {
		if !before[n] {
			if err := cs.NodeV1().RuntimeClasses().Delete(ctx, n, metav1.DeleteOptions{}); err != nil {
				return fmt.Errorf("remove upstream's leftover RuntimeClass %s: %w", n, err)
			}
			progress("  removed upstream's leftover RuntimeClass %s", n)
		}
	}
	return nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

func cacheDir() string {
	if d := os.Getenv("NODECONFORM_CACHE"); d != "" {
		return d
	}
	h, _ := os.UserHomeDir()
	return filepath.Join(h, ".cache", "nodeconform")
}
