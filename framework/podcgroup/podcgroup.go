// Package podcgroup reads a running pod's cgroups on its node: it asks the
// node which cgroup a container's process is in (never a guessed path),
// takes the pod cgroup as that path's parent, and reads the limit and
// usage files of cgroup v1 or v2.
package podcgroup

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	cg "github.com/nodeconform/nodeconform/framework/cgroups"
	"github.com/nodeconform/nodeconform/framework/nodeaccess"
	"github.com/nodeconform/nodeconform/framework/probeapi"
	"github.com/nodeconform/nodeconform/framework/workload"
)

// Reader reads cgroups on one node.
type Reader struct {
	Nodes   *nodeaccess.Probes
	Node    string
	Version cg.Version
}

// NewReader detects the node's cgroup version: v2 has cgroup.controllers
// at the root of /sys/fs/cgroup.
func NewReader(ctx context.Context, nodes *nodeaccess.Probes, node string) (*Reader, error) {
	r, err := nodes.Host(ctx, node, "test", "-f", "/sys/fs/cgroup/cgroup.controllers")
	if err != nil {
		return nil, fmt.Errorf("node %s: detect cgroup version: %w", node, err)
	}
	v := cg.V1
	if r.ExitCode == 0 {
		v = cg.V2
	}
	return &Reader{Nodes: nodes, Node: node, Version: v}, nil
}

// ContainerPath is the cgroup path (in the hierarchy of controller) of the
// pod's first container, from /proc/<pid>/cgroup of its process.
func (r *Reader) ContainerPath(ctx context.Context, p *corev1.Pod, controller string) (string, error) {
	pathOf, err := r.containerCgroups(ctx, p)
	if err != nil {
		return "", err
	}
	return pathOf(controller)
}

// containerCgroups asks the node once where the pod's own container
// (workload.MainContainerStatus) runs and answers for any controller from
// that.
func (r *Reader) containerCgroups(ctx context.Context, p *corev1.Pod) (func(controller string) (string, error), error) {
	st, ok := workload.MainContainerStatus(p)
	if !ok || st.ContainerID == "" {
		return nil, fmt.Errorf("pod %s/%s has no running container", p.Namespace, p.Name)
	}
	id := st.ContainerID
	if i := strings.Index(id, "://"); i >= 0 {
		id = id[i+3:]
	}
	var out probeapi.CgroupOf
	if err := r.Nodes.Exec(ctx, r.Node, []string{"cgroup-of", "--container", id}, &out); err != nil {
		return nil, err
	}
	m, err := cg.ParseProcCgroup(out.Cgroup)
	if err != nil {
		return nil, err
	}
	return func(controller string) (string, error) { return m.PathOf(r.Version, controller) }, nil
}

// PodPath is the pod-level cgroup (kubepods-…-pod<uid>.slice or
// kubepods/…/pod<uid>), found from any process in a cgroup naming the
// pod's UID. It does not need a container process on the node, so it also
// works for VM-backed sandboxes whose containers run in the guest.
func (r *Reader) PodPath(ctx context.Context, p *corev1.Pod, controller string) (string, error) {
	pathOf, err := r.podCgroups(ctx, p)
	if err != nil {
		return "", err
	}
	return pathOf(controller)
}

// podCgroups asks the node once for a process of the pod and answers
// with its pod cgroup for any controller.
func (r *Reader) podCgroups(ctx context.Context, p *corev1.Pod) (func(controller string) (string, error), error) {
	var out probeapi.CgroupOf
	if err := r.Nodes.Exec(ctx, r.Node, []string{"cgroup-of", "--pod-uid", string(p.UID)}, &out); err != nil {
		return nil, err
	}
	m, err := cg.ParseProcCgroup(out.Cgroup)
	if err != nil {
		return nil, err
	}
	return func(controller string) (string, error) {
		full, err := m.PathOf(r.Version, controller)
		if err != nil {
			return "", err
		}
		podPath, ok := cg.PodCgroupOf(full, string(p.UID))
		if !ok {
			return "", fmt.Errorf("pod %s/%s: cgroup %s of pid %d names no pod %s", p.Namespace, p.Name, full, out.PID, p.UID)
		}
		return podPath, nil
	}, nil
}

// Cat reads a file on the node, trimmed.
func (r *Reader) Cat(ctx context.Context, file string) (string, error) {
	out, err := r.Nodes.MustHost(ctx, r.Node, "cat", file)
	return strings.TrimSpace(out), err
}

// hostRoot is the node's filesystem as the probe (hostPID) sees it: PID
// 1's root, in PID 1's mount namespace.
const hostRoot = "/proc/1/root"

// ReadFiles reads files on the node in one exec, each trimmed, by path:
// what Cat reads one exec at a time (cgroup files are read by the
// hundred in a run, about 0.1 s an exec here).
func (r *Reader) ReadFiles(ctx context.Context, files ...string) (map[string]string, error) {
	args := []string{"read-all"}
	for _, f := range files {
		args = append(args, hostRoot+f)
	}
	var out []probeapi.Read
	if err := r.Nodes.Exec(ctx, r.Node, args, &out); err != nil {
		return nil, err
	}
	if len(out) != len(files) {
		return nil, fmt.Errorf("node %s: read %d files, got %d answers", r.Node, len(files), len(out))
	}
	got := make(map[string]string, len(out))
	for _, f := range out {
		got[strings.TrimPrefix(f.Path, hostRoot)] = strings.TrimSpace(f.Content)
	}
	return got, nil
}

// ContainerLimits reads the limit files of the pod's first container.
func (r *Reader) ContainerLimits(ctx context.Context, p *corev1.Pod) (cg.Limits, error) {
	pathOf, err := r.containerCgroups(ctx, p)
	if err != nil {
		return cg.Limits{}, err
	}
	return r.limits(ctx, pathOf)
}

// PodLimits reads the limit files of the pod-level cgroup.
func (r *Reader) PodLimits(ctx context.Context, p *corev1.Pod) (cg.Limits, error) {
	pathOf, err := r.podCgroups(ctx, p)
	if err != nil {
		return cg.Limits{}, err
	}
	return r.limits(ctx, pathOf)
}

// limits reads every limit file of the version; Limits.Files keeps what
// was read, by full path, as evidence.
func (r *Reader) limits(ctx context.Context, pathOf func(controller string) (string, error)) (cg.Limits, error) {
	var files []string
	names := map[string]string{} // full path to file name
	for ctrl, list := range cg.Files(r.Version) {
		c := ctrl
		if c == "" {
			c = "cpu"
		}
		p, err := pathOf(c)
		if err != nil {
			return cg.Limits{}, err
		}
		dir := cg.Dir(r.Version, ctrl, p)
		for _, n := range list {
			files = append(files, path.Join(dir, n))
			names[path.Join(dir, n)] = n
		}
	}
	all, err := r.ReadFiles(ctx, files...)
	if err != nil {
		return cg.Limits{}, err
	}
	byName := map[string]string{}
	for f, v := range all {
		byName[names[f]] = v
	}
	var l cg.Limits
	if r.Version == cg.V2 {
		l, err = cg.ParseV2(byName)
	} else {
		l, err = cg.ParseV1(byName)
	}
	l.Files = all
	return l, err
}

// CPUCounters names the files that hold one container's cumulative CPU
// time and throttling counters (ReadCPU reads them).
type CPUCounters struct {
	// usage is cpuacct.usage on v1; "" on v2, whose cpu.stat has both.
	usage, stat string
	// parents are the cpu.stat files of the container's ancestor cgroups
	// up to the hierarchy's root as the node sees it: a quota on any of
	// them throttles the container without its own counter moving.
	// Empty when they could not be read.
	parents []string
}

// CPUCounters finds the counter files of the pod's first container. The
// paths do not change while the container runs: find them once, then read
// them as often as a measurement needs.
func (r *Reader) CPUCounters(ctx context.Context, p *corev1.Pod) (CPUCounters, error) {
	pathOf, err := r.containerCgroups(ctx, p)
	if err != nil {
		return CPUCounters{}, err
	}
	cpuPath, err := pathOf("cpu")
	if err != nil {
		return CPUCounters{}, err
	}
	var c CPUCounters
	if r.Version == cg.V2 {
		c = CPUCounters{stat: path.Join(cg.Dir(r.Version, "", cpuPath), "cpu.stat")}
	} else {
		acctPath, err := pathOf("cpuacct")
		if err != nil {
			return CPUCounters{}, err
		}
		c = CPUCounters{usage: path.Join(cg.Dir(r.Version, "cpuacct", acctPath), "cpuacct.usage"), stat: path.Join(cg.Dir(r.Version, "cpu", cpuPath), "cpu.stat")}
	}
	var parents []string
	for _, p := range cg.Ancestors(cpuPath) {
		parents = append(parents, path.Join(cg.Dir(r.Version, "cpu", p), "cpu.stat"))
	}
	// Read once here: ReadCPU reads them in its one read, which fails as
	// a whole on a file missing, so a node whose ancestors cannot be read
	// is measured without them rather than not at all.
	if _, err := r.ReadFiles(ctx, parents...); err == nil {
		c.parents = parents
	}
	return c, nil
}

// uptimeFile is the node's clock for ReadCPU: the kernel's time since
// boot (no time namespace is involved).
const uptimeFile = "/proc/uptime"

// ReadCPU reads the counters of several containers in one read on the
// node, with the node's uptime read by the same process a moment after.
// A window between two ReadCPU calls is then timed by the node's clock:
// timed by this machine's, it also held the exec round trips around the
// reads (0.2–1.7 s each on a loaded 2-core machine), which once moved a
// 100m loop's measured share from 0.1 to 0.152 of a CPU.
func (r *Reader) ReadCPU(ctx context.Context, counters ...CPUCounters) (time.Duration, []cg.CPUUsage, error) {
	var files []string
	for _, c := range counters {
		if c.usage != "" {
			files = append(files, c.usage)
		}
		files = append(files, c.stat)
		files = append(files, c.parents...)
	}
	got, err := r.ReadFiles(ctx, append(files, uptimeFile)...)
	if err != nil {
		return 0, nil, err
	}
	at, err := cg.ParseUptime(got[uptimeFile])
	if err != nil {
		return 0, nil, fmt.Errorf("node %s: %w", r.Node, err)
	}
	usages := make([]cg.CPUUsage, len(counters))
	for i, c := range counters {
		var u cg.CPUUsage
		if c.usage == "" {
			u, err = cg.ParseCPUStatV2(got[c.stat])
		} else {
			u, err = cg.ParseCPUStatV1(got[c.usage], got[c.stat])
		}
		if err != nil {
			return 0, nil, fmt.Errorf("node %s: %w", r.Node, err)
		}
		if len(c.parents) > 0 {
			u.ParentThrottles = map[string]int64{}
			for _, f := range c.parents {
				if n, ok := cg.NrThrottled(got[f]); ok {
					u.ParentThrottles[path.Dir(f)] = n
				}
			}
		}
		usages[i] = u
	}
	return at, usages, nil
}
