package vmnode

import (
	"net"
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/nodeconform/nodeconform/framework/nodeimage"
)

// networkInspect is `docker network inspect kind` of a lab cluster (trimmed).
const networkInspect = `[{"Name":"kind","Id":"0f2b7c9a1e3d5f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8",
"IPAM":{"Config":[{"Subnet":"fc00:f853:ccd:e793::/64"},{"Subnet":"172.18.0.0/16","Gateway":"172.18.0.1"}]},
"Options":{"com.docker.network.bridge.enable_ip_masquerade":"true"},
"Containers":{"a":{"Name":"nodeconform-control-plane","IPv4Address":"172.18.0.4/16"},"b":{"Name":"nodeconform-worker","IPv4Address":"172.18.0.3/16"}}}]`

func TestParseNetwork(t *testing.T) {
	d, err := parseNetwork("kind", []byte(networkInspect))
	if err != nil {
		t.Fatal(err)
	}
	if d.Bridge != "br-0f2b7c9a1e3d" || d.Subnet.String() != "172.18.0.0/16" || len(d.Used) != 3 {
		t.Fatalf("%+v", d)
	}
	if !d.Containers["nodeconform-control-plane"].Equal(net.ParseIP("172.18.0.4")) {
		t.Fatalf("control plane address %v", d.Containers)
	}
	if _, err := parseNetwork("kind", []byte(`[{"IPAM":{"Config":[{"Subnet":"fc00::/64"}]}}]`)); err == nil {
		t.Fatal("a network without IPv4 must be an error")
	}
	if _, err := parseNetwork("kind", []byte(`not json`)); err == nil {
		t.Fatal("garbage must be an error")
	}
}

func TestPickAddress(t *testing.T) {
	_, sn, _ := net.ParseCIDR("172.18.0.0/16")
	ip, err := PickAddress(sn, nil, 0)
	if err != nil || ip.String() != "172.18.255.254" {
		t.Fatalf("%v %v", ip, err)
	}
	ip, err = PickAddress(sn, []net.IP{net.ParseIP("172.18.255.254")}, 0)
	if err != nil || ip.String() != "172.18.255.253" {
		t.Fatalf("taken address must be skipped: %v %v", ip, err)
	}
	_, small, _ := net.ParseCIDR("10.0.0.0/30")
	if _, err := PickAddress(small, nil, 0); err == nil {
		t.Fatal("a /30 is too small")
	}
}

func TestNames(t *testing.T) {
	if n := TapName("a-very-long-cluster-name-indeed"); len(n) > 15 || !strings.HasPrefix(n, "nctap") {
		t.Fatalf("tap name %q", n)
	}
	if TapName("a") == TapName("b") || MAC("x") != MAC("x") || !strings.HasPrefix(MAC("x"), "52:54:00:") {
		t.Fatal("names must be stable and distinct")
	}
}

func TestKernelArgsAndQEMU(t *testing.T) {
	a := KernelArgs("lab-vm", net.ParseIP("172.18.255.254"), 16, "lab-control-plane", net.ParseIP("172.18.0.4"), "10.96.0.0/16", 32)
	for _, want := range []string{"systemd.unified_cgroup_hierarchy=1", "cgroup_no_v1=all", "nodeconform.ip=172.18.255.254/16",
		"nodeconform.host=172.18.0.4@lab-control-plane", "nodeconform.route=10.96.0.0/16@172.18.0.4", "hugepages=32", "systemd.hostname=lab-vm"} {
		if !strings.Contains(a, want) {
			t.Errorf("kernel args lack %q: %s", want, a)
		}
	}
	if strings.Contains(KernelArgs("n", net.ParseIP("10.0.0.2"), 24, "cp", net.ParseIP("10.0.0.1"), "10.96.0.0/12", 0), "hugepages") {
		t.Error("no huge pages asked, none reserved")
	}
	q := strings.Join(QEMUArgs("n", "/run/x", nodeimage.VMDisk{Kernel: "/k", Initrd: "/i"}, 2, 3072, "nctap1", "52:54:00:00:00:01", a), " ")
	for _, want := range []string{"-accel tcg", "-kernel /k", "ifname=nctap1", "-daemonize", "-pidfile /run/x/qemu.pid", "file=/run/x/overlay.qcow2"} {
		if !strings.Contains(q, want) {
			t.Errorf("qemu args lack %q: %s", want, q)
		}
	}
}

func TestJoin(t *testing.T) {
	out := "kubeadm join lab-control-plane:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:0123abcd \n"
	ep, tok, hash, err := ParseJoinCommand(out)
	if err != nil || ep != "lab-control-plane:6443" || tok != "abcdef.0123456789abcdef" || hash != "sha256:0123abcd" {
		t.Fatalf("%q %q %q %v", ep, tok, hash, err)
	}
	if _, _, _, err := ParseJoinCommand("error: no token"); err == nil {
		t.Fatal("garbage must be an error")
	}
	var jc struct {
		Kind             string
		NodeRegistration struct {
			Name             string
			KubeletExtraArgs []struct{ Name, Value string }
			Taints           []struct{ Key, Value, Effect string }
		} `json:"nodeRegistration"`
	}
	if err := yaml.Unmarshal([]byte(JoinConfiguration(ep, tok, hash, "lab-vm", "172.18.255.254")), &jc); err != nil {
		t.Fatal(err)
	}
	r := jc.NodeRegistration
	if jc.Kind != "JoinConfiguration" || r.Name != "lab-vm" || len(r.KubeletExtraArgs) != 2 || r.KubeletExtraArgs[1].Value != Label+"="+LabelValue || r.Taints[0].Key != Taint {
		t.Fatalf("%+v", jc)
	}
}

// TestVMProfileSelectsTheVM keeps the shipped VM profile's group on the
// label the join gives the VM node.
func TestVMProfileSelectsTheVM(t *testing.T) {
	data, err := os.ReadFile("../../kindconfigs/vm-profile.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), Label+": "+LabelValue) {
		t.Fatalf("kindconfigs/vm-profile.yaml has no group selecting %s=%s", Label, LabelValue)
	}
}
