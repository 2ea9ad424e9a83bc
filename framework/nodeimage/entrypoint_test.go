package nodeimage

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fakeCgroup2 is a directory laid out like a cgroup2 mount inside a node
// container: the controllers the kernel offers, none delegated yet, and
// the container's processes in its root.
func fakeCgroup2(t *testing.T, controllers string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range map[string]string{
		"cgroup.controllers":     controllers + "\n",
		"cgroup.subtree_control": "\n",
		"cgroup.procs":           "1\n42\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func runV2(t *testing.T, root string) (string, error) {
	t.Helper()
	script, err := filepath.Abs("files/usr/local/bin/entrypoint")
	if err != nil {
		t.Fatal(err)
	}
	// The library variable keeps the entrypoint's main part (mounts,
	// machine-id) from running on this machine; a script without the
	// guard fails the check below before anything is sourced.
	data, err := os.ReadFile(script)
	if err != nil || !strings.Contains(string(data), `if [[ -n "${NODECONFORM_ENTRYPOINT_LIBRARY:-}" ]]; then`) {
		t.Fatalf("%s has no library guard: refusing to source it here (%v)", script, err)
	}
	c := exec.Command("bash", "-c", `source "$1"; fix_cgroup_v2 "$2"`, "entrypoint-test", script, root)
	c.Env = append(os.Environ(), "NODECONFORM_ENTRYPOINT_LIBRARY=1")
	out, err := c.CombinedOutput()
	return string(out), err
}

// The v2 bug a real cgroup v2 host showed: hugetlb was not delegated and
// kubelet crash-looped on "missing controllers: hugetlb".
func TestEntrypointDelegatesEveryV2Controller(t *testing.T) {
	const all = "cpuset cpu io memory hugetlb pids rdma misc"
	root := fakeCgroup2(t, all)
	out, err := runV2(t, root)
	if err != nil {
		t.Fatalf("fix_cgroup_v2: %v\n%s", err, out)
	}
	got, _ := os.ReadFile(filepath.Join(root, "cgroup.subtree_control"))
	have := map[string]bool{}
	for _, c := range strings.Fields(strings.ReplaceAll(string(got), "+", "")) {
		have[c] = true
	}
	for _, c := range strings.Fields(all) {
		if !have[c] {
			t.Errorf("controller %s not delegated: subtree_control %q", c, got)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "init", "cgroup.procs")); err != nil {
		t.Errorf("the root's processes were not moved to a child (no-internal-process rule): %v", err)
	}
}

// Negative control: a subtree_control the kernel refuses (here not even a
// file) must fail the entrypoint naming the controllers, not start a
// kubelet that will crash-loop.
func TestEntrypointFailsWhenAControllerCannotBeDelegated(t *testing.T) {
	root := fakeCgroup2(t, "cpu memory hugetlb")
	sc := filepath.Join(root, "cgroup.subtree_control")
	if err := os.Remove(sc); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(sc, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := runV2(t, root)
	if err == nil {
		t.Fatalf("fix_cgroup_v2 succeeded with nothing delegated:\n%s", out)
	}
	if !strings.Contains(out, "hugetlb") || !strings.Contains(out, "not delegated") {
		t.Errorf("the failure does not name the controllers:\n%s", out)
	}
}
