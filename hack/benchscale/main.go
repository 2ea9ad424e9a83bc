// Command benchscale measures what each suite asks of a cluster as the
// node count grows — nodes judged, pods created, API requests, wall time
// — on the default lab cluster (created or reused) and on a larger kind
// cluster it creates and deletes, then prints both and a linear
// projection to 100 and 1,000 nodes. Run with `make bench-scale`.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	kindcmd "sigs.k8s.io/kind/pkg/cmd"

	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/cost"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/report"
	"github.com/nodeconform/nodeconform/framework/runner"
)

func main() {
	workers := flag.Int("workers", 5, "workers of the larger cluster (the lab has 2)")
	suites := flag.String("suite", strings.Join(runner.Suites, ","), "suites to measure")
	flag.Parse()
	if err := run(*workers, strings.Split(*suites, ",")); err != nil {
		fmt.Fprintln(os.Stderr, "benchscale:", err)
		os.Exit(1)
	}
}

type point struct {
	res   report.Results
	nodes int
}

func run(workers int, suites []string) error {
	if workers < 3 {
		return fmt.Errorf("--workers %d: the larger cluster needs at least 3 workers (the lab has 2)", workers)
	}
	dir, err := os.MkdirTemp("", "nodeconform-benchscale-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Minute)
	defer cancel()
	small, err := measure(ctx, dir, "lab", runner.Options{}, suites)
	if err != nil {
		return err
	}
	// The larger cluster: the lab's kind config with more plain workers,
	// under its own name (so the lab cluster is left alone), deleted after.
	kc, cfgFile, err := largerCluster(dir, workers)
	if err != nil {
		return err
	}
	large, err := measure(ctx, dir, "large", runner.Options{KindConfig: kc, ConfigFile: cfgFile, KeepCluster: false}, suites)
	if err != nil {
		return err
	}
	print(small, large, suites)
	return nil
}

func measure(ctx context.Context, dir, label string, o runner.Options, suites []string) (point, error) {
	root := e2e.FindModuleRoot()
	// One suite at a time: each suite's wall time and cost are its own.
	o.Mode, o.Suites, o.Quiet, o.Timeout, o.Sequential = runner.ModeApply, suites, true, 80*time.Minute, true
	o.ReportDir, o.SuitesDir, o.SourceDir = filepath.Join(dir, label), filepath.Join(dir, "suites"), root
	if err := o.Validate(); err != nil {
		return point{}, err
	}
	if err := os.MkdirAll(o.SuitesDir, 0o755); err != nil {
		return point{}, err
	}
	fmt.Printf("benchscale: running %s on the %s cluster\n", strings.Join(suites, ","), label)
	var summary bytes.Buffer
	res, err := runner.Run(ctx, o, kindcmd.NewLogger(), &summary)
	report.Summary(os.Stdout, res.Specs)
	if err != nil {
		return point{}, fmt.Errorf("%s cluster: %w", label, err)
	}
	n := 0
	for _, c := range res.SuiteCost {
		n = max(n, c.Nodes)
	}
	return point{res: res, nodes: n}, nil
}

// largerCluster writes a kind config (the lab's, plus plain workers) and a
// nodeconform config naming the cluster nodeconform-scale.
func largerCluster(dir string, workers int) (kindConfig, configFile string, err error) {
	base, err := os.ReadFile(filepath.Join(e2e.FindModuleRoot(), "kindconfigs", "default.yaml"))
	if err != nil {
		return "", "", err
	}
	var b strings.Builder
	b.Write(base)
	for i := 3; i <= workers; i++ {
		fmt.Fprintf(&b, "- role: worker\n  labels:\n    nodeconform.io/worker: \"%d\"\n", i)
	}
	kindConfig = filepath.Join(dir, "scale.yaml")
	configFile = filepath.Join(dir, "scale-config.yaml")
	if err := os.WriteFile(kindConfig, []byte(b.String()), 0o644); err != nil {
		return "", "", err
	}
	name := config.Default().Cluster.Name + "-scale"
	return kindConfig, configFile, os.WriteFile(configFile, []byte("cluster:\n  name: "+name+"\n"), 0o644)
}

// print shows both measurements and the projection: counts grow linearly
// with the nodes judged (each node gets the same pods and reads), so the
// line through the two points is extended.
func print(small, large point, suites []string) {
	fmt.Printf("\n%-14s %7s %7s %9s %8s | %7s %7s %9s %8s | %-26s %-26s\n", "suite", "nodes", "pods", "requests", "wall s", "nodes", "pods", "requests", "wall s", "100 nodes: pods/req/wall", "1000 nodes: pods/req/wall")
	for _, s := range suites {
		a, b := small.res.SuiteCost[s], large.res.SuiteCost[s]
		ta, tb := small.res.SuiteSeconds[s], large.res.SuiteSeconds[s]
		proj := func(n int) string {
			return fmt.Sprintf("%.0f / %.0f / %.0f s", line(a.Nodes, b.Nodes, float64(a.PodsCreated), float64(b.PodsCreated), n),
				line(a.Nodes, b.Nodes, float64(a.APIRequests), float64(b.APIRequests), n), line(a.Nodes, b.Nodes, ta, tb, n))
		}
		fmt.Printf("%-14s %7d %7d %9d %8.1f | %7d %7d %9d %8.1f | %-26s %-26s\n", s, a.Nodes, a.PodsCreated, a.APIRequests, ta, b.Nodes, b.PodsCreated, b.APIRequests, tb, proj(100), proj(1000))
	}
	var sa, sb cost.Figures
	for _, s := range suites {
		sa.Add(small.res.SuiteCost[s])
		sb.Add(large.res.SuiteCost[s])
	}
	fmt.Printf("all suites: %d nodes %d pods %d requests; %d nodes %d pods %d requests\n", sa.Nodes, sa.PodsCreated, sa.APIRequests, sb.Nodes, sb.PodsCreated, sb.APIRequests)
}

// line extends the line through (x1, y1) and (x2, y2) to x. A figure
// that did not grow with the nodes (noise) is taken as constant.
func line(x1, x2 int, y1, y2 float64, x int) float64 {
	if x1 == x2 || y2 <= y1 {
		return max(y1, y2)
	}
	return y1 + (y2-y1)*float64(x-x1)/float64(x2-x1)
}
