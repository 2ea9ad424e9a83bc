package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

func TestValidateConfig(t *testing.T) {
	good := "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: control-plane\n- role: worker\n"
	if err := ValidateConfig("good.yaml", []byte(good)); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	cases := map[string]string{
		"unknown field": "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: worker\n  imagee: x\n",
		"bad role":      "kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: master\n",
		"wrong kind":    "kind: Pod\napiVersion: v1\n",
		"not yaml":      "nodes: [",
	}
	for name, body := range cases {
		err := ValidateConfig("bad.yaml", []byte(body))
		if err == nil || !strings.Contains(err.Error(), "bad.yaml") {
			t.Errorf("%s: want an error naming the file, got %v", name, err)
		}
	}
}

func writeKubeconfig(t *testing.T, server string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: %s
    insecure-skip-tls-verify: true
contexts:
- name: ctx
  context: {cluster: c, user: u}
current-context: ctx
users:
- name: u
  user: {token: t}
`, server)
	if err := os.WriteFile(p, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestExistingMissingKubeconfig(t *testing.T) {
	_, err := NewExisting(context.Background(), "/nonexistent/kubeconfig", "", time.Second)
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/kubeconfig") {
		t.Fatalf("want error naming the path, got %v", err)
	}
}

func TestExistingUnknownContext(t *testing.T) {
	p := writeKubeconfig(t, "https://127.0.0.1:1")
	_, err := NewExisting(context.Background(), p, "nope", time.Second)
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("want error naming the context, got %v", err)
	}
}

func TestExistingRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	p := writeKubeconfig(t, "https://"+addr)
	_, err = NewExisting(context.Background(), p, "", 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("want unreachable error, got %v", err)
	}
}

// A server that accepts connections and never answers must not hang the
// run: the error comes within the configured timeout.
func TestExistingHangsBounded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	p := writeKubeconfig(t, "https://"+l.Addr().String())
	start := time.Now()
	_, err = NewExisting(context.Background(), p, "", 2*time.Second)
	if err == nil {
		t.Fatal("want an error from a silent server")
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("took %s, want about the 2s timeout", d)
	}
}

func TestAddClusterPatch(t *testing.T) {
	in := []byte("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nkubeadmConfigPatches:\n- |\n  kind: KubeletConfiguration\n  podPidsLimit: 4096\nnodes:\n- role: control-plane\n- role: worker\n  labels:\n    a: \"1\"\n")
	out, err := AddClusterPatch(in, failCgroupV1Patch)
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateConfig("patched", out); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var c v1alpha4.Cluster
	if err := yaml.UnmarshalStrict(out, &c); err != nil {
		t.Fatal(err)
	}
	if len(c.KubeadmConfigPatches) != 2 || c.KubeadmConfigPatches[1] != failCgroupV1Patch || len(c.Nodes) != 2 || c.Nodes[1].Labels["a"] != "1" {
		t.Fatalf("%+v", c)
	}
	if out, err := AddClusterPatch([]byte("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\n"), failCgroupV1Patch); err != nil || !strings.Contains(string(out), "failCgroupV1: false") {
		t.Fatalf("%v %s", err, out)
	}
}
