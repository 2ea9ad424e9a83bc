package netfilter

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strconv"

	"github.com/nodeconform/nodeconform/framework/probeapi"
)

// kube-proxy's nftables mode (GA in Kubernetes 1.33) keeps everything in a
// table named kube-proxy, one per IP family, and sends Service traffic
// through one verdict map: ClusterIP . protocol . port : goto service chain.
const (
	// KubeProxyNFTTable is the table kube-proxy's nftables mode owns.
	KubeProxyNFTTable = "kube-proxy"
	// KubeProxyServiceIPs is its map of ClusterIP, ExternalIP and load
	// balancer IP traffic.
	KubeProxyServiceIPs = "service-ips"
)

// KubeProxyNFTChains are chains kube-proxy's nftables mode creates at
// start: the base chains that hook Service traffic and the chains they
// jump to. Only these: the others changed between releases (1.37 has no
// mark-for-masquerade chain, which earlier ones had).
var KubeProxyNFTChains = []string{"nat-prerouting", "nat-output", "nat-postrouting", "services", "masquerading"}

// NFTFamily is the nftables table family of an address ("ip" or "ip6").
func NFTFamily(ip string) (string, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return "", fmt.Errorf("cluster IP %q: %w", ip, err)
	}
	if a.Is4() {
		return "ip", nil
	}
	return "ip6", nil
}

// MissingNFTChains returns which of want the table lacks (all of them when
// it is absent).
func MissingNFTChains(t probeapi.NFTTable, want []string) []string {
	var miss []string
	for _, c := range want {
		if !t.Found || !slices.Contains(t.Chains, c) {
			miss = append(miss, c)
		}
	}
	return miss
}

// NFTServiceElement returns the service-ips element sending ip:port over
// proto to a service chain, written as nft lists it ("10.96.0.1 . tcp .
// 443 : goto service-…"), or "" when kube-proxy has not programmed it.
func NFTServiceElement(t probeapi.NFTTable, ip, proto, port string) (string, error) {
	want, err := serviceKey(ip, proto, port)
	if err != nil {
		return "", err
	}
	for _, e := range t.Maps[KubeProxyServiceIPs] {
		if slices.Equal(e.Key, want) && e.Verdict != "" {
			return fmt.Sprintf("%s . %s . %s : %s", ip, proto, port, e.Verdict), nil
		}
	}
	return "", nil
}

// protocols are the IP protocol numbers of a Service port's protocol.
var protocols = map[string]byte{"tcp": 6, "udp": 17, "sctp": 132}

// serviceKey is the kernel's key of ipv4_addr|ipv6_addr . inet_proto .
// inet_service: each part of a concatenation takes a multiple of 4 bytes,
// the protocol one byte and the port two (network order), zero-padded.
func serviceKey(ip, proto, port string) ([]byte, error) {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil, fmt.Errorf("cluster IP %q: %w", ip, err)
	}
	p, ok := protocols[proto]
	if !ok {
		return nil, fmt.Errorf("protocol %q: want tcp, udp or sctp", proto)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("port %q: %w", port, err)
	}
	key := a.AsSlice()
	key = append(key, p, 0, 0, 0)
	key = binary.BigEndian.AppendUint16(key, uint16(n))
	return append(key, 0, 0), nil
}
