// Command benchprobe prints the probe DaemonSet's time to Ready on every
// node and each probe pod's memory (kubelet's working set), on the cluster
// the suites use (created or reused). Run with `make bench-probe`.
package main

import (
	"context"
	"encoding/json"
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
	data, err := e2e.Up(ctx, e2e.SettingsFromEnv(), kindcmd.NewLogger(), true)
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
	data, err = e2e.Up(ctx, e2e.SettingsFromEnv(), kindcmd.NewLogger(), true)
	if err != nil {
		return err
	}
	if e, err = e2e.Connect(data); err != nil {
		return err
	}
	var sh struct {
		ProbeNS string `json:"probeNamespace"`
	}
	_ = json.Unmarshal(data, &sh)
	// Let the sleeping probes settle before reading memory.
	time.Sleep(10 * time.Second)
	fmt.Printf("%-40s %s\n", "figure", "value")
	ds, err := e.Clientset.AppsV1().DaemonSets(sh.ProbeNS).Get(ctx, "nodeconform-probe", metav1.GetOptions{})
	if err != nil {
		return err
	}
	fmt.Printf("%-40s %d/%d\n", "probe pods ready", ds.Status.NumberReady, ds.Status.DesiredNumberScheduled)
	fmt.Printf("%-40s %.1f s\n", "probe DaemonSet ready on all nodes", e.ProbeReadyAfter.Seconds())
	for _, node := range e.Nodes.Nodes() {
		raw, err := e.Clientset.CoreV1().RESTClient().Get().AbsPath("/api/v1/nodes/" + node + "/proxy/stats/summary").DoRaw(ctx)
		if err != nil {
			return err
		}
		var summary struct {
			Pods []struct {
				PodRef struct{ Name, Namespace string } `json:"podRef"`
				Memory struct {
					WorkingSetBytes uint64 `json:"workingSetBytes"`
				} `json:"memory"`
			} `json:"pods"`
		}
		if err := json.Unmarshal(raw, &summary); err != nil {
			return err
		}
		for _, p := range summary.Pods {
			if p.PodRef.Namespace == sh.ProbeNS {
				fmt.Printf("%-40s %.1f MiB\n", "probe memory on "+node, float64(p.Memory.WorkingSetBytes)/(1<<20))
			}
		}
	}
	return nil
}
