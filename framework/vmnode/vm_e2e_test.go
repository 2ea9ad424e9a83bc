package vmnode_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/nodeimage"
	"github.com/nodeconform/nodeconform/framework/vmnode"
)

// delegationScript runs the node entrypoint's fix_cgroup_v2 on a real
// cgroup v2 kernel (the VM), on a fresh child of the root holding a
// process, the way a node container's cgroup namespace root does, and
// prints what the kernel then says.
const delegationScript = `cat > /run/nodeconform-entrypoint
d=/sys/fs/cgroup/nodeconform-entrypoint-test
mkdir -p $d
sleep 300 & sp=$!
echo $sp > $d/cgroup.procs
out=$(NODECONFORM_ENTRYPOINT_LIBRARY=1 bash -c ". /run/nodeconform-entrypoint; fix_cgroup_v2 $d" 2>&1); rc=$?
echo "$out"
echo "controllers: $(cat $d/cgroup.controllers)"
echo "delegated: $(cat $d/cgroup.subtree_control)"
echo "moved: $(cat $d/init/cgroup.procs)"
kill $sp; wait $sp 2>/dev/null
rmdir $d/init $d
rm -f /run/nodeconform-entrypoint
exit $rc
`

// TestEntrypointDelegatesOnV2 proves on the cgroup v2 VM node that the
// entrypoint delegates every controller, hugetlb included (the bug seen
// on a v2 host: kubelet refused "missing controllers: hugetlb").
func TestEntrypointDelegatesOnV2(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 with the VM node up (make vm-e2e)")
	}
	ms, err := vmnode.Attached(vmnode.DefaultStateRoot(nodeimage.DefaultOptions(nil).CacheDir), config.Default().Cluster.Name)
	if err != nil || len(ms) == 0 {
		t.Fatalf("no VM node attached (nodeconform vm up): %v", err)
	}
	script, err := os.ReadFile(filepath.Join(e2e.FindModuleRoot(), "framework/nodeimage/files/usr/local/bin/entrypoint"))
	if err != nil || !bytes.Contains(script, []byte(`if [[ -n "${NODECONFORM_ENTRYPOINT_LIBRARY:-}" ]]; then`)) {
		t.Fatalf("entrypoint has no library guard: not sourcing it (%v)", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := ms[0].RunInput(ctx, delegationScript, bytes.NewReader(script))
	t.Logf("on %s:\n%s", ms[0].Node, out)
	if err != nil {
		t.Fatal(err)
	}
	var controllers, delegated string
	for _, l := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(l, "controllers: "); ok {
			controllers = v
		}
		if v, ok := strings.CutPrefix(l, "delegated: "); ok {
			delegated = v
		}
	}
	if !strings.Contains(" "+controllers+" ", " hugetlb ") {
		t.Fatalf("the VM's root does not offer hugetlb to its children (%q): the test would prove nothing", controllers)
	}
	if controllers != delegated {
		t.Fatalf("controllers offered %q, delegated %q", controllers, delegated)
	}
}
