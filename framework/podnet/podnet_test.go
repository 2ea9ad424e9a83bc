package podnet

import (
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func node(name, cidr, ip string) corev1.Node {
	n := corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	n.Spec.PodCIDR = cidr
	if cidr != "" {
		n.Spec.PodCIDRs = []string{cidr}
	}
	if ip != "" {
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip}}
	}
	return n
}

func TestRoutes(t *testing.T) {
	nodes := []corev1.Node{
		node("w2", "10.244.2.0/24", "172.18.0.4"),
		node("cp", "10.244.0.0/24", "172.18.0.2"),
		node("w1", "10.244.1.0/24", "172.18.0.3"),
		node("new", "", "172.18.0.9"),
		node("noaddr", "10.244.9.0/24", ""),
	}
	got := Routes("w1", nodes)
	var s []string
	for _, r := range got {
		s = append(s, r.String())
	}
	want := "10.244.0.0/24 via 172.18.0.2,10.244.2.0/24 via 172.18.0.4"
	if strings.Join(s, ",") != want {
		t.Fatalf("routes = %v, want %s", s, want)
	}
}

func TestConfList(t *testing.T) {
	n := node("w1", "10.244.1.0/24", "172.18.0.3")
	b, err := ConfList(&n, 1500)
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Plugins []struct {
			Type string `json:"type"`
			IPAM struct {
				Ranges [][]map[string]string `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	if c.Plugins[0].Type != "ptp" || c.Plugins[0].IPAM.Ranges[0][0]["subnet"] != "10.244.1.0/24" || c.Plugins[1].Type != "portmap" {
		t.Fatalf("unexpected conf: %s", b)
	}
	empty := node("x", "", "")
	if _, err := ConfList(&empty, 1500); err == nil {
		t.Fatal("want error for a node without pod CIDR")
	}
}
