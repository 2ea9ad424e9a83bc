package runner

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

// parentQuota puts a CFS quota of half a CPU on the kind node's
// kubelet.slice, the parent of every pod cgroup there (the lab's
// kubelet runs with cgroupRoot /kubelet and the systemd driver). The
// kubelet reconciles the QoS slices under it (a quota written on
// kubelet-kubepods-burstable.slice was gone before the next pod
// started) but not the slice above kubepods. Both cgroup versions.
const (
	parentQuota = `set -e
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  echo "50000 100000" > /sys/fs/cgroup/kubelet.slice/cpu.max
else
  echo 50000 > /sys/fs/cgroup/cpu/kubelet.slice/cpu.cfs_quota_us
fi`
	noParentQuota = `if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
  echo "max 100000" > /sys/fs/cgroup/kubelet.slice/cpu.max
else
  echo -1 > /sys/fs/cgroup/cpu/kubelet.slice/cpu.cfs_quota_us
fi`
)

// TestParentQuotaThrottles proves the cgroups suite's throttling check
// against a quota it did not set, on a cgroup above the pods: worker 2's
// kubelet.slice gets half a CPU behind nodeconform's back. The busy loop
// without a limit then still gets more than the check's floor (0.3 of a
// CPU: 0.376 here), so only the parent's own throttle counter, read with
// the loop's, shows it: the spec must fail on worker 2 alone, naming
// kubelet.slice, and pass on the other nodes. The quota is removed
// afterwards.
func TestParentQuotaThrottles(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run on the kind cluster (make findings-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cs := kindClient(t)
	broken := workers(ctx, t, cs)[1]
	t.Cleanup(func() {
		if err := dockerExec(context.Background(), broken, noParentQuota); err != nil {
			t.Errorf("restore %s: %v", broken, err)
		}
	})
	if err := dockerExec(ctx, broken, parentQuota); err != nil {
		t.Fatal(err)
	}
	res := runSuites(ctx, t, t.TempDir(), "parent-quota", Options{Profile: labProfile(), Suites: []string{"cgroups"}, Focus: []string{"throttles a busy loop"}})
	f := failed(res)
	if len(f) != 1 {
		t.Fatalf("want the throttling spec failing, got %d failed: %+v", len(f), f)
	}
	for _, want := range []string{"node " + broken + ": ", "throttled by a parent cgroup's quota", "kubelet.slice (nr_throttled "} {
		if !strings.Contains(f[0].Failure, want) {
			t.Errorf("want %q in: %s", want, f[0].Failure)
		}
	}
	failsAlone(t, f[0], broken, 2)
}
