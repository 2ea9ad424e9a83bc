package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestThawTree(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) string {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	frozenV1 := write("kubepods/pod1/abc/freezer.state", "FROZEN\n")
	thawedV1 := write("kubepods/pod2/freezer.state", "THAWED\n")
	frozenV2 := write("kubelet.slice/x.scope/cgroup.freeze", "1\n")
	thawedV2 := write("cgroup.freeze", "0\n")
	write("kubepods/pod1/abc/cgroup.procs", "1\n")
	write("kubepods/pod1/abc/freezer.self_freezing", "1\n")
	// Under a frozen parent a v1 cgroup reads FROZEN without being frozen
	// itself: left alone.
	underFrozen := write("kubepods/pod1/abc/child/freezer.state", "FROZEN\n")
	write("kubepods/pod1/abc/child/freezer.self_freezing", "0\n")

	got, err := thawTree(root)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ",") != strings.Join([]string{frozenV2, frozenV1}, ",") && strings.Join(got, ",") != strings.Join([]string{frozenV1, frozenV2}, ",") {
		t.Fatalf("thawed %v, want %s and %s", got, frozenV1, frozenV2)
	}
	for p, want := range map[string]string{frozenV1: "THAWED", thawedV1: "THAWED\n", frozenV2: "0", thawedV2: "0\n", underFrozen: "FROZEN\n"} {
		b, _ := os.ReadFile(p)
		if string(b) != want {
			t.Errorf("%s = %q, want %q", p, b, want)
		}
	}
	if got, err := thawTree(filepath.Join(root, "missing")); err != nil || len(got) != 0 {
		t.Errorf("missing root: %v, %v", got, err)
	}
}

func TestContainerCgroupRoots(t *testing.T) {
	roots := containerCgroupRoots("/sys/fs/cgroup", "abc")
	want := []string{"/sys/fs/cgroup/freezer/docker/abc", "/sys/fs/cgroup/freezer/system.slice/docker-abc.scope",
		"/sys/fs/cgroup/docker/abc", "/sys/fs/cgroup/system.slice/docker-abc.scope"}
	if strings.Join(roots, " ") != strings.Join(want, " ") {
		t.Errorf("roots %v, want %v", roots, want)
	}
}
