package profile

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodeconform/nodeconform/framework/versions"
)

// TestShippedProfilesParse loads every profile shipped in kindconfigs/
// strictly, so a typo there fails here rather than in a cluster run.
func TestShippedProfilesParse(t *testing.T) {
	files, err := filepath.Glob("../../kindconfigs/*-profile.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("want the shipped profiles (default, prodlike, vm), found %v (%v)", files, err)
	}
	for _, f := range files {
		p, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(p.Spec.Groups) == 0 {
			t.Errorf("%s: no node groups", f)
		}
	}
}

// TestShippedProfileVersions keeps the shipped profiles' kubelet and
// containerd versions in step with the node image's: a version bump must
// update them. The lab and production-like profiles must declare both.
func TestShippedProfileVersions(t *testing.T) {
	files, _ := filepath.Glob("../../kindconfigs/*-profile.yaml")
	for _, f := range files {
		p, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		must := filepath.Base(f) != "vm-profile.yaml"
		for _, g := range p.Spec.Groups {
			if v := g.Node.KubeletVersion; (v == nil && must) || (v != nil && !VersionMatches(*v, versions.Kubernetes)) {
				t.Errorf("%s group %s: kubeletVersion %v does not match the node image's %s", f, g.Name, v, versions.Kubernetes)
			}
			if v := g.Node.ContainerRuntimeVersion; (v == nil && must) || (v != nil && !VersionMatches(*v, "containerd://"+strings.TrimPrefix(versions.Containerd, "v"))) {
				t.Errorf("%s group %s: containerRuntimeVersion %v does not match the node image's containerd %s", f, g.Name, v, versions.Containerd)
			}
		}
	}
}
