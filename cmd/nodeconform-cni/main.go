// Command nodeconform-cni is the pod network of nodeconform's node image. On
// each node it writes the CNI configuration for the node's pod CIDR (ptp +
// host-local, plugins from the node) and keeps a route to every other node's
// pod CIDR through that node's address. All kind nodes share one docker
// bridge, so plain routes give pod-to-pod traffic across nodes.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/nodeconform/nodeconform/framework/podnet"
)

// routeProtocol tags the routes this daemon owns so it never touches others.
const routeProtocol = netlink.RouteProtocol(0x4e)

func main() {
	confPath := flag.String("cni-conf", "/etc/cni/net.d/10-nodeconform.conflist", "CNI configuration file to write")
	interval := flag.Duration("interval", 5*time.Second, "how often nodes are listed")
	mtu := flag.Int("mtu", 1500, "pod interface MTU")
	flag.Parse()
	self := os.Getenv("NODE_NAME")
	if self == "" {
		fatal(fmt.Errorf("NODE_NAME is not set"))
	}
	cfg, err := rest.InClusterConfig()
	if err != nil {
		fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "enable ip_forward:", err)
	}
	for {
		if err := sync(ctx, cs, self, *confPath, *mtu); err != nil {
			fmt.Fprintln(os.Stderr, "sync:", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(*interval):
		}
	}
}

func sync(ctx context.Context, cs kubernetes.Interface, self, confPath string, mtu int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	var me *corev1.Node
	for i := range list.Items {
		if list.Items[i].Name == self {
			me = &list.Items[i]
		}
	}
	if me == nil {
		return fmt.Errorf("node %s not found", self)
	}
	conf, err := podnet.ConfList(me, mtu)
	if err != nil {
		return err
	}
	if err := writeIfChanged(confPath, conf); err != nil {
		return err
	}
	return syncRoutes(podnet.Routes(self, list.Items))
}

func writeIfChanged(path string, data []byte) error {
	if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	fmt.Println("wrote", path)
	return os.Rename(tmp, path)
}

func syncRoutes(want []podnet.Route) error {
	have, err := netlink.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Protocol: routeProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil {
		return err
	}
	wanted := map[string]bool{}
	for _, r := range want {
		wanted[r.String()] = true
		dst := r.Dst
		nr := &netlink.Route{Dst: &dst, Gw: r.Via, Protocol: routeProtocol}
		if err := netlink.RouteReplace(nr); err != nil {
			return fmt.Errorf("route %s: %w", r, err)
		}
	}
	for _, h := range have {
		if h.Dst == nil || wanted[(podnet.Route{Dst: *h.Dst, Via: h.Gw}).String()] {
			continue
		}
		if err := netlink.RouteDel(&h); err != nil {
			return fmt.Errorf("delete stale route %s: %w", h.Dst, err)
		}
		fmt.Println("deleted stale route", h.Dst, "via", h.Gw)
	}
	return nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "nodeconform-cni:", err)
	os.Exit(1)
}
