package nodeaccess

import (
	"context"
	"fmt"
	"strings"

	"github.com/nodeconform/nodeconform/framework/procfs"
)

// defaultKubeletRoot is the kubelet's --root-dir unless set.
const defaultKubeletRoot = "/var/lib/kubelet"

// KubeletRestartRisk says why restarting node's kubelet would harm the
// pods running there, or "" when it would not. A kubelet makes its root
// directory shared when it starts: found on a mount that is not (a node
// whose / was made private under a running kubelet), it binds the
// directory over itself, non-recursively, which hides the volumes of the
// pods already running from the kubelet until the node reboots (seen on
// the lab: a probe pod whose volume could not be torn down, its namespace
// stuck in deletion). Callers ask before changing a node whose change
// restarts the kubelet, and leave such a node alone.
func (p *Probes) KubeletRestartRisk(ctx context.Context, node string) (string, error) {
	procs, err := p.Processes(ctx, node, nil, []string{"kubelet"})
	if err != nil {
		return "", err
	}
	if len(procs) == 0 {
		return "", fmt.Errorf("node %s: no kubelet process", node)
	}
	k := procs[0]
	tables, err := p.MountTables(ctx, node, k.PID)
	if err != nil {
		return "", err
	}
	return kubeletRootRisk(tables[k.PID], kubeletRootDir(k.Cmdline)), nil
}

// kubeletRootDir reads --root-dir from the kubelet's command line.
func kubeletRootDir(cmdline []string) string {
	for i, a := range cmdline {
		if v, ok := strings.CutPrefix(a, "--root-dir="); ok {
			return v
		}
		if a == "--root-dir" && i+1 < len(cmdline) {
			return cmdline[i+1]
		}
	}
	return defaultKubeletRoot
}

// kubeletRootRisk judges the kubelet's mount table as the kubelet's start
// will (hostutil.MakeRShared).
func kubeletRootRisk(mounts []procfs.Mount, root string) string {
	m, ok := procfs.MountOf(mounts, root)
	if !ok {
		return fmt.Sprintf("no mount holds the kubelet's root directory %s in its mount table", root)
	}
	if m.Shared() {
		return ""
	}
	prop := strings.Join(m.Propagation, " ")
	if prop == "" {
		prop = "private"
	}
	return fmt.Sprintf("the kubelet's root directory %s is on mount %s whose propagation is %s, not shared: a restarted kubelet would bind %s over itself and hide the volumes of the pods running there, so nodeconform restarts no kubelet on this node (make / rshared, as systemd does at boot)",
		root, m.MountPoint, prop, root)
}
