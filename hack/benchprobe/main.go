// Command benchprobe prints the probe DaemonSet's time to Ready on every
// node and each probe's memory (RSS of its process, read on the node), on the cluster
// the suites use (created or reused). Run with `make bench-probe`.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kindcmd "sigs.k8s.io/kind/pkg/cmd"

	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/workload"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchprobe:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	data, err := e2e.Up(ctx, e2e.SettingsFromEnv(), kindcmd.NewLogger(), e2e.WithNodeAccess())
	if err != nil {
		return err
	}
	e, err := e2e.Connect(data)
	if err != nil {
		return err
	}
	defer func() { _ = e2e.RemoveLeftovers(context.Background(), e) }()
	// Deploy once more, timed, now that the image is on the nodes: Up's own
	// deployment included loading the image.
	ns := e.Nodes.Namespace
	if err := workload.DeleteNamespace(ctx, e.Clientset, ns, 2*time.Minute); err != nil {
		return err
	}
	data, err = e2e.Up(ctx, e2e.SettingsFromEnv(), kindcmd.NewLogger(), e2e.WithNodeAccess())
	if err != nil {
		return err
	}
	if e, err = e2e.Connect(data); err != nil {
		return err
	}
	// Let the sleeping probes settle before reading memory.
	time.Sleep(10 * time.Second)
	fmt.Printf("%-40s %s\n", "figure", "value")
	ds, err := e.Clientset.AppsV1().DaemonSets(e.Nodes.Namespace).Get(ctx, "nodeconform-probe", metav1.GetOptions{})
	if err != nil {
		return err
	}
	fmt.Printf("%-40s %d/%d\n", "probe pods ready", ds.Status.NumberReady, ds.Status.DesiredNumberScheduled)
	fmt.Printf("%-40s %.1f s\n", "probe DaemonSet ready on all nodes", e.ProbeReadyAfter.Seconds())
	for _, node := range e.Nodes.Nodes() {
		// The probe's own process (the DaemonSet's `sleep`), not the
		// short-lived ones exec'd for each query.
		procs, err := e.Nodes.Processes(ctx, node, nil, []string{"nodeconform-pro"})
		if err != nil {
			return err
		}
		for _, p := range procs {
			if len(p.Cmdline) == 2 && p.Cmdline[1] == "sleep" {
				fmt.Printf("%-40s %.1f MiB (pid %d)\n", "probe memory (RSS) on "+node, float64(p.RSSKiB)/1024, p.PID)
			}
		}
	}
	return nil
}
