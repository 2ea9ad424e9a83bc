package nodeimage

import (
	"strings"
	"testing"
)

func TestStagingReplaces(t *testing.T) {
	gomod := "module k8s.io/kubernetes\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\tk8s.io/client-go => ./staging/src/k8s.io/client-go\n\tgithub.com/x/y => github.com/x/y v1.0.0\n)\n"
	got := StagingReplaces(gomod, "v1.34.4")
	want := []string{"replace k8s.io/api => k8s.io/api v0.34.4", "replace k8s.io/client-go => k8s.io/client-go v0.34.4"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %v", got)
	}
}

func TestVersionLDFlags(t *testing.T) {
	f := VersionLDFlags("v1.34.4")
	for _, want := range []string{
		"k8s.io/component-base/version.gitVersion=v1.34.4",
		"k8s.io/component-base/version.gitMinor=34",
		"k8s.io/client-go/pkg/version.gitMajor=1",
	} {
		if !strings.Contains(f, want) {
			t.Errorf("ldflags lack %s: %s", want, f)
		}
	}
}

func TestKubeImagesFor(t *testing.T) {
	k := kubeImagesFor("v1.34.4")
	if k.etcdTag != "3.6.5-0" || k.dnsTag != "v1.12.1" || k.version != "v1.34.4" {
		t.Fatalf("%+v", k)
	}
	specs := k.specs(binaries{}, "base", "cni:x")
	refs := map[string]bool{}
	for _, s := range specs {
		refs[s.ref] = true
	}
	// What kubeadm v1.34.4 `config images list` prints, plus our CNI.
	for _, r := range []string{
		"registry.k8s.io/kube-apiserver:v1.34.4", "registry.k8s.io/kube-controller-manager:v1.34.4",
		"registry.k8s.io/kube-scheduler:v1.34.4", "registry.k8s.io/kube-proxy:v1.34.4",
		"registry.k8s.io/coredns/coredns:v1.12.1", "registry.k8s.io/pause:3.10.1",
		"registry.k8s.io/etcd:3.6.5-0", "cni:x",
	} {
		if !refs[r] {
			t.Errorf("missing image %s", r)
		}
	}
}

func TestTemplatesRender(t *testing.T) {
	out, err := renderTemplate("templates/default-cni.yaml", map[string]string{"Image": "nodeconform.local/cni:abc"})
	if err != nil || !strings.Contains(string(out), "image: nodeconform.local/cni:abc") {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := renderTemplate("templates/default-cni.yaml", map[string]string{}); err == nil {
		t.Fatal("missing template value must be an error")
	}
}
