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

// kubeadmConstantsV1372 is an excerpt of kubeadm v1.37.2's constants.go.
const kubeadmConstantsV1372 = `
	// MinExternalEtcdVersion indicates minimum external etcd version which kubeadm supports
	MinExternalEtcdVersion = "3.5.24-0"

	// DefaultEtcdVersion indicates the default etcd version that kubeadm uses
	DefaultEtcdVersion = "3.7.0-0"

	// CoreDNSVersion is the version of CoreDNS to be deployed if it is used
	CoreDNSVersion = "v1.14.6"

	// PauseVersion indicates the default pause image version for kubeadm
	PauseVersion = "3.10.2"
`

func TestKubeadmImageTags(t *testing.T) {
	etcd, dns, pause, err := KubeadmImageTags(kubeadmConstantsV1372)
	if err != nil || etcd != "3.7.0-0" || dns != "v1.14.6" || pause != "3.10.2" {
		t.Fatalf("got %q %q %q %v", etcd, dns, pause, err)
	}
	if _, _, _, err := KubeadmImageTags(strings.ReplaceAll(kubeadmConstantsV1372, "PauseVersion", "Other")); err == nil || !strings.Contains(err.Error(), "PauseVersion") {
		t.Fatalf("a missing constant must be named: %v", err)
	}
}

func TestKubeImageSpecs(t *testing.T) {
	k := kubeImages{version: "v1.37.2", etcdTag: "3.7.0-0", dnsTag: "v1.14.6", pauseTag: "3.10.2"}
	if k.etcdVersion() != "v3.7.0" {
		t.Fatalf("etcd module version %q", k.etcdVersion())
	}
	specs := k.specs(binaries{}, "base", "cni:x")
	refs := map[string]bool{}
	for _, s := range specs {
		refs[s.ref] = true
	}
	// What kubeadm v1.37.2 `config images list` prints, plus our CNI.
	for _, r := range []string{
		"registry.k8s.io/kube-apiserver:v1.37.2", "registry.k8s.io/kube-controller-manager:v1.37.2",
		"registry.k8s.io/kube-scheduler:v1.37.2", "registry.k8s.io/kube-proxy:v1.37.2",
		"registry.k8s.io/coredns/coredns:v1.14.6", "registry.k8s.io/pause:3.10.2",
		"registry.k8s.io/etcd:3.7.0-0", "cni:x",
	} {
		if !refs[r] {
			t.Errorf("missing image %s", r)
		}
	}
}

func TestContainerdConfigRenders(t *testing.T) {
	out, err := renderTemplate("templates/containerd-config.toml", map[string]string{"Pause": "registry.k8s.io/pause:3.10.2"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"version = 3", `sandbox = "registry.k8s.io/pause:3.10.2"`, "restrict_oom_score_adj = false", "runtimes.kata]"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("containerd config lacks %q", want)
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
