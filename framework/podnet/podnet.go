// Package podnet computes the pod network of nodeconform's node image: the
// CNI configuration for a node and the routes to every other node's pod CIDR.
// It holds no I/O so that the route and config logic is unit tested; the
// nodeconform-cni daemon applies what it returns.
package podnet

import (
	"encoding/json"
	"fmt"
	"net"
	"sort"

	corev1 "k8s.io/api/core/v1"
)

// Route sends a pod CIDR of another node through that node's address.
type Route struct {
	Dst net.IPNet
	Via net.IP
}

func (r Route) String() string { return r.Dst.String() + " via " + r.Via.String() }

// Routes returns a route for each pod CIDR of every node but self, through
// the node's InternalIP of the same family. Nodes without a pod CIDR or an
// address are skipped. The result is sorted for stable comparison.
func Routes(self string, nodes []corev1.Node) []Route {
	var out []Route
	for _, n := range nodes {
		if n.Name == self {
			continue
		}
		for _, c := range podCIDRs(&n) {
			_, dst, err := net.ParseCIDR(c)
			if err != nil {
				continue
			}
			if via := internalIP(&n, dst.IP.To4() != nil); via != nil {
				out = append(out, Route{Dst: *dst, Via: via})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func podCIDRs(n *corev1.Node) []string {
	if len(n.Spec.PodCIDRs) > 0 {
		return n.Spec.PodCIDRs
	}
	if n.Spec.PodCIDR != "" {
		return []string{n.Spec.PodCIDR}
	}
	return nil
}

func internalIP(n *corev1.Node, v4 bool) net.IP {
	for _, a := range n.Status.Addresses {
		if a.Type != corev1.NodeInternalIP {
			continue
		}
		ip := net.ParseIP(a.Address)
		if ip != nil && (ip.To4() != nil) == v4 {
			return ip
		}
	}
	return nil
}

// ConfList renders the CNI configuration list for a node: ptp veths with
// host-local IPAM over the node's pod CIDRs, plus portmap for hostPort.
func ConfList(n *corev1.Node, mtu int) ([]byte, error) {
	cidrs := podCIDRs(n)
	if len(cidrs) == 0 {
		return nil, fmt.Errorf("node %s has no pod CIDR yet", n.Name)
	}
	var ranges [][]map[string]string
	var routes []map[string]string
	for _, c := range cidrs {
		ip, _, err := net.ParseCIDR(c)
		if err != nil {
			return nil, fmt.Errorf("node %s pod CIDR %q: %w", n.Name, c, err)
		}
		ranges = append(ranges, []map[string]string{{"subnet": c}})
		if ip.To4() != nil {
			routes = append(routes, map[string]string{"dst": "0.0.0.0/0"})
		} else {
			routes = append(routes, map[string]string{"dst": "::/0"})
		}
	}
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       "nodeconform",
		"plugins": []any{
			map[string]any{
				"type": "ptp",
				"mtu":  mtu,
				"ipam": map[string]any{"type": "host-local", "ranges": ranges, "routes": routes},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]bool{"portMappings": true}},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}
