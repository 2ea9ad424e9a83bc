package nodestate

import "testing"

// TestSingleProcessOOMKillOn follows the kubelet (v1.37 kubelet.go): on
// v1 one process is always killed, whatever is configured; on v2 the
// whole container unless singleProcessOOMKill is true.
func TestSingleProcessOOMKillOn(t *testing.T) {
	for _, c := range []struct {
		set     *bool
		version string
		want    bool
	}{
		{nil, "v1", true}, {new(false), "v1", true}, {new(true), "v1", true},
		{nil, "v2", false}, {new(false), "v2", false}, {new(true), "v2", true},
	} {
		if got := (Kubelet{SingleProcessOOMKill: c.set}).SingleProcessOOMKillOn(c.version); got != c.want {
			t.Errorf("singleProcessOOMKill %v on %s: got %t, want %t", c.set, c.version, got, c.want)
		}
	}
	if (Kubelet{}).State()["singleProcessOOMKill"] != "" {
		t.Error("State renders the mode without the cgroup version")
	}
}
