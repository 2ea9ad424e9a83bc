package vmnode

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"strings"

	"github.com/vishvananda/netlink"
)

// DockerNetwork is what the VM needs to know of kind's Docker network: the
// Linux bridge behind it, its IPv4 subnet and the addresses Docker gave out.
type DockerNetwork struct {
	Name   string
	Bridge string
	Subnet *net.IPNet
	Used   []net.IP
	// Containers maps container names to their IPv4 addresses.
	Containers map[string]net.IP
}

// InspectNetwork reads a Docker network with the docker CLI.
func InspectNetwork(ctx context.Context, name string) (DockerNetwork, error) {
	out, err := exec.CommandContext(ctx, "docker", "network", "inspect", name).Output()
	if err != nil {
		return DockerNetwork{}, fmt.Errorf("docker network inspect %s (is the kind cluster up?): %w", name, err)
	}
	return parseNetwork(name, out)
}

func parseNetwork(name string, data []byte) (DockerNetwork, error) {
	var nets []struct {
		ID      string `json:"Id"`
		Options map[string]string
		IPAM    struct {
			Config []struct{ Subnet, Gateway string }
		}
		Containers map[string]struct{ Name, IPv4Address string }
	}
	if err := json.Unmarshal(data, &nets); err != nil || len(nets) != 1 {
		return DockerNetwork{}, fmt.Errorf("docker network %s: unexpected inspect output: %v", name, err)
	}
	n := nets[0]
	d := DockerNetwork{Name: name, Bridge: n.Options["com.docker.network.bridge.name"], Containers: map[string]net.IP{}}
	if d.Bridge == "" && len(n.ID) >= 12 {
		d.Bridge = "br-" + n.ID[:12]
	}
	for _, c := range n.IPAM.Config {
		_, sn, err := net.ParseCIDR(c.Subnet)
		if err != nil || sn.IP.To4() == nil {
			continue
		}
		d.Subnet = sn
		if gw := net.ParseIP(c.Gateway); gw != nil {
			d.Used = append(d.Used, gw)
		}
	}
	if d.Subnet == nil {
		return DockerNetwork{}, fmt.Errorf("docker network %s has no IPv4 subnet", name)
	}
	for _, c := range n.Containers {
		if ip, _, err := net.ParseCIDR(c.IPv4Address); err == nil {
			d.Used = append(d.Used, ip)
			d.Containers[c.Name] = ip
		}
	}
	return d, nil
}

// PickAddress returns the index-th address counted down from the top of
// the subnet (below the broadcast address). Docker hands out addresses from
// the bottom, so the top is free unless something else took it, which is
// checked against used.
func PickAddress(subnet *net.IPNet, used []net.IP, index int) (net.IP, error) {
	base := subnet.IP.To4()
	if base == nil {
		return nil, fmt.Errorf("subnet %s is not IPv4", subnet)
	}
	ones, bits := subnet.Mask.Size()
	size := uint32(1) << uint(bits-ones)
	if size < 8 {
		return nil, fmt.Errorf("subnet %s is too small for a VM node", subnet)
	}
	top := binary.BigEndian.Uint32(base) + size - 2
	for i := index; uint32(i) < size/2; i++ {
		ip := make(net.IP, 4)
		binary.BigEndian.PutUint32(ip, top-uint32(i))
		taken := false
		for _, u := range used {
			if u.Equal(ip) {
				taken = true
			}
		}
		if !taken {
			return ip, nil
		}
	}
	return nil, fmt.Errorf("no free address at the top of %s", subnet)
}

// TapName is the tap device of a cluster's VM node (at most 15 bytes).
func TapName(cluster string) string {
	s := sha256.Sum256([]byte(cluster))
	return "nctap" + hex.EncodeToString(s[:])[:8]
}

// MAC is a stable, locally administered MAC address for a tap.
func MAC(tap string) string {
	s := sha256.Sum256([]byte(tap))
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", s[0], s[1], s[2])
}

// addTap creates a tap device attached to bridge, replacing a stale one.
func addTap(name, bridge string) error {
	br, err := netlink.LinkByName(bridge)
	if err != nil {
		return fmt.Errorf("bridge %s of the kind network: %w", bridge, err)
	}
	if old, err := netlink.LinkByName(name); err == nil {
		_ = netlink.LinkDel(old)
	}
	tap := &netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: name, MasterIndex: br.Attrs().Index}, Mode: netlink.TUNTAP_MODE_TAP, Flags: netlink.TUNTAP_DEFAULTS}
	if err := netlink.LinkAdd(tap); err != nil {
		return fmt.Errorf("create tap %s (needs root and /dev/net/tun): %w", name, err)
	}
	link, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetMaster(link, br); err != nil {
		_ = netlink.LinkDel(link)
		return fmt.Errorf("attach tap %s to %s: %w", name, bridge, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		_ = netlink.LinkDel(link)
		return err
	}
	return nil
}

// delTap removes a tap device; a missing one is not an error.
func delTap(name string) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		if strings.Contains(err.Error(), "not found") {
			return nil
		}
		return err
	}
	return netlink.LinkDel(link)
}
