package cluster

import (
	"fmt"
	"os"
	"strconv"
	"strings"

	"sigs.k8s.io/kind/pkg/log"
)

// Every kind node runs its own systemd, containerd and kubelet, and they
// all draw inotify instances from the host's one per-user budget. With
// the kernel's default of 128 a host runs about six nodes; beyond that
// kubelets crash-loop ("inotify_init: too many open files") and never
// register. kind's known-issues page gives these values.
var inotifyMinimums = []struct {
	path string
	min  int
}{
	{"/proc/sys/fs/inotify/max_user_instances", 512},
	{"/proc/sys/fs/inotify/max_user_watches", 524288},
}

// ensureInotify raises the host's inotify limits to kind's recommended
// minimums where they are lower, saying so; where it cannot (not root),
// it returns an EnvError naming the sysctl and the command.
func ensureInotify(logger log.Logger) error {
	for _, l := range inotifyMinimums {
		data, err := os.ReadFile(l.path)
		if err != nil {
			continue // not Linux, or no procfs: nothing to judge
		}
		cur, err := strconv.Atoi(strings.TrimSpace(string(data)))
		if err != nil || cur >= l.min {
			continue
		}
		name := strings.ReplaceAll(strings.TrimPrefix(l.path, "/proc/sys/"), "/", ".")
		if err := os.WriteFile(l.path, []byte(strconv.Itoa(l.min)), 0o644); err != nil {
			return EnvError{fmt.Errorf("host %s is %d, too low for several kind nodes (kubelets fail with \"too many open files\"), and raising it failed: %v; run `sysctl -w %s=%d`", name, cur, err, name, l.min)}
		}
		logger.V(0).Infof("host %s was %d, too low for several kind nodes: raised to %d (not restored: a limit, not a setting anything depends on)", name, cur, l.min)
	}
	return nil
}
