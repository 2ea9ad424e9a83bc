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

	corev1 "k8s.io/api/core/v1"

	cg "github.com/nodeconform/nodeconform/framework/cgroups"
	"github.com/nodeconform/nodeconform/framework/nodeaccess"
	"github.com/nodeconform/nodeconform/framework/probeapi"
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
	if len(p.Status.ContainerStatuses) == 0 || p.Status.ContainerStatuses[0].ContainerID == "" {
		return "", fmt.Errorf("pod %s/%s has no running container", p.Namespace, p.Name)
	}
	id := p.Status.ContainerStatuses[0].ContainerID
	if i := strings.Index(id, "://"); i >= 0 {
		id = id[i+3:]
	}
	var out probeapi.CgroupOf
	if err := r.Nodes.Exec(ctx, r.Node, []string{"cgroup-of", "--container", id}, &out); err != nil {
		return "", err
	}
	m, err := cg.ParseProcCgroup(out.Cgroup)
	if err != nil {
		return "", err
	}
	return m.PathOf(r.Version, controller)
}

// PodPath is the pod-level cgroup (kubepods-…-pod<uid>.slice or
// kubepods/…/pod<uid>), found from any process in a cgroup naming the
// pod's UID. It does not need a container process on the node, so it also
// works for VM-backed sandboxes whose containers run in the guest.
func (r *Reader) PodPath(ctx context.Context, p *corev1.Pod, controller string) (string, error) {
	var out probeapi.CgroupOf
	if err := r.Nodes.Exec(ctx, r.Node, []string{"cgroup-of", "--pod-uid", string(p.UID)}, &out); err != nil {
		return "", err
	}
	m, err := cg.ParseProcCgroup(out.Cgroup)
	if err != nil {
		return "", err
	}
	full, err := m.PathOf(r.Version, controller)
	if err != nil {
		return "", err
	}
	podPath, ok := cg.PodCgroupOf(full, string(p.UID))
	if !ok {
		return "", fmt.Errorf("pod %s/%s: cgroup %s of pid %d names no pod %s", p.Namespace, p.Name, full, out.PID, p.UID)
	}
	return podPath, nil
}

// Cat reads a file on the node, trimmed.
func (r *Reader) Cat(ctx context.Context, file string) (string, error) {
	out, err := r.Nodes.MustHost(ctx, r.Node, "cat", file)
	return strings.TrimSpace(out), err
}

// ContainerLimits reads the limit files of the pod's first container.
func (r *Reader) ContainerLimits(ctx context.Context, p *corev1.Pod) (cg.Limits, error) {
	return r.limits(ctx, func(c string) (string, error) { return r.ContainerPath(ctx, p, c) })
}

// PodLimits reads the limit files of the pod-level cgroup.
func (r *Reader) PodLimits(ctx context.Context, p *corev1.Pod) (cg.Limits, error) {
	return r.limits(ctx, func(c string) (string, error) { return r.PodPath(ctx, p, c) })
}

// limits reads every limit file of the version; Limits.Files keeps what
// was read, by full path, as evidence.
func (r *Reader) limits(ctx context.Context, pathOf func(controller string) (string, error)) (cg.Limits, error) {
	byName := map[string]string{}
	all := map[string]string{}
	for ctrl, names := range cg.Files(r.Version) {
		c := ctrl
		if c == "" {
			c = "cpu"
		}
		p, err := pathOf(c)
		if err != nil {
			return cg.Limits{}, err
		}
		dir := cg.Dir(r.Version, ctrl, p)
		for _, n := range names {
			v, err := r.Cat(ctx, path.Join(dir, n))
			if err != nil {
				return cg.Limits{}, err
			}
			all[path.Join(dir, n)] = v
			byName[n] = v
		}
	}
	var l cg.Limits
	var err error
	if r.Version == cg.V2 {
		l, err = cg.ParseV2(byName)
	} else {
		l, err = cg.ParseV1(byName)
	}
	l.Files = all
	return l, err
}

// CPUUsage reads the container's cumulative CPU time and throttling.
func (r *Reader) CPUUsage(ctx context.Context, p *corev1.Pod) (cg.CPUUsage, error) {
	cpuPath, err := r.ContainerPath(ctx, p, "cpu")
	if err != nil {
		return cg.CPUUsage{}, err
	}
	if r.Version == cg.V2 {
		stat, err := r.Cat(ctx, path.Join(cg.Dir(r.Version, "", cpuPath), "cpu.stat"))
		if err != nil {
			return cg.CPUUsage{}, err
		}
		return cg.ParseCPUStatV2(stat)
	}
	acctPath, err := r.ContainerPath(ctx, p, "cpuacct")
	if err != nil {
		return cg.CPUUsage{}, err
	}
	usage, err := r.Cat(ctx, path.Join(cg.Dir(r.Version, "cpuacct", acctPath), "cpuacct.usage"))
	if err != nil {
		return cg.CPUUsage{}, err
	}
	stat, err := r.Cat(ctx, path.Join(cg.Dir(r.Version, "cpu", cpuPath), "cpu.stat"))
	if err != nil {
		return cg.CPUUsage{}, err
	}
	return cg.ParseCPUStatV1(usage, stat)
}
