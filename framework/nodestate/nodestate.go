// Package nodestate reads a node's configuration as a profile declares it
// (profile.State): the kubelet's running configuration (configz), the
// node object, and what the probe reads on the node itself. Profile
// capture and every suite's "equals the profile" check use it, so the
// field a profile names is read the same way everywhere.
package nodestate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/nodeconform/nodeconform/framework/encapsulation"
	"github.com/nodeconform/nodeconform/framework/nfd"
	"github.com/nodeconform/nodeconform/framework/nodeaccess"
	"github.com/nodeconform/nodeconform/framework/probeapi"
	"github.com/nodeconform/nodeconform/framework/profile"
)

// Kubelet is the part of the kubelet's running configuration the profile
// and the suites judge.
type Kubelet struct {
	AllowedUnsafeSysctls []string `json:"allowedUnsafeSysctls"`
	CgroupDriver         string   `json:"cgroupDriver"`
	CgroupRoot           string   `json:"cgroupRoot"`
	CgroupsPerQOS        *bool    `json:"cgroupsPerQOS"`
	CPUCFSQuota          *bool    `json:"cpuCFSQuota"`
	PodPidsLimit         *int64   `json:"podPidsLimit"`
	FailSwapOn           *bool    `json:"failSwapOn"`
	// SingleProcessOOMKill as configured; nil takes the cgroup version's
	// default (SingleProcessOOMKillOn).
	SingleProcessOOMKill *bool `json:"singleProcessOOMKill"`
	// ContainerRuntimeEndpoint is where the kubelet reaches its runtime.
	ContainerRuntimeEndpoint string `json:"containerRuntimeEndpoint"`
	MemorySwap               struct {
		SwapBehavior string `json:"swapBehavior"`
	} `json:"memorySwap"`
	// EnforceNodeAllocatable, SystemReserved and KubeReserved decide the
	// limits of the cgroup holding every pod (cgroups.ExpectedPodsCgroup).
	EnforceNodeAllocatable []string          `json:"enforceNodeAllocatable"`
	SystemReserved         map[string]string `json:"systemReserved"`
	KubeReserved           map[string]string `json:"kubeReserved"`
	ReservedSystemCPUs     string            `json:"reservedSystemCPUs"`
}

// ReadKubelet reads a node's running kubelet configuration.
func ReadKubelet(ctx context.Context, cs kubernetes.Interface, node string) (Kubelet, error) {
	var k Kubelet
	err := nodeaccess.KubeletConfig(ctx, cs, node, &k)
	return k, err
}

// State renders the kubelet's fields canonically. Unset booleans take the
// kubelet's defaults (cgroupsPerQOS, cpuCFSQuota and failSwapOn are true
// unless configured otherwise); configz always reports them.
func (k Kubelet) State() profile.State {
	b := func(p *bool, def bool) string {
		if p == nil {
			return strconv.FormatBool(def)
		}
		return strconv.FormatBool(*p)
	}
	pids := int64(-1)
	if k.PodPidsLimit != nil {
		pids = *k.PodPidsLimit
	}
	return profile.State{
		profile.FieldAllowedUnsafeSysctls: profile.CanonicalList(k.AllowedUnsafeSysctls),
		profile.FieldCgroupDriver:         k.CgroupDriver,
		profile.FieldCgroupRoot:           profile.CanonicalCgroupRoot(k.CgroupRoot),
		profile.FieldCgroupsPerQOS:        b(k.CgroupsPerQOS, true),
		profile.FieldCPUCFSQuota:          b(k.CPUCFSQuota, true),
		profile.FieldPodPidsLimit:         strconv.FormatInt(pids, 10),
		profile.FieldFailSwapOn:           b(k.FailSwapOn, true),
		profile.FieldSwapBehavior:         profile.CanonicalSwapBehavior(k.MemorySwap.SwapBehavior),
	}
}

// SingleProcessOOMKillOn is the kubelet's OOM kill mode as it runs on a
// node of cgroup version ("v1", "v2"): v1 always kills one process (the
// kubelet ignores the setting); v2 kills the whole container unless
// singleProcessOOMKill is set.
func (k Kubelet) SingleProcessOOMKillOn(cgroupVersion string) bool {
	if cgroupVersion != "v2" {
		return true
	}
	return k.SingleProcessOOMKill != nil && *k.SingleProcessOOMKill
}

var kubeletFields = map[string]bool{
	profile.FieldAllowedUnsafeSysctls: true, profile.FieldCgroupDriver: true, profile.FieldCgroupRoot: true,
	profile.FieldCgroupsPerQOS: true, profile.FieldCPUCFSQuota: true, profile.FieldPodPidsLimit: true,
	profile.FieldFailSwapOn: true, profile.FieldSwapBehavior: true,
}

// Input names what Read may use.
type Input struct {
	Clientset kubernetes.Interface
	// Probes reach the node (cgroup version, swap, mount namespaces);
	// nil reads only the API.
	Probes *nodeaccess.Probes
	Node   *corev1.Node
}

// Read returns the fields of a node's state (nil: all). Fields that could
// not be read are missing from the state and named in the error.
func Read(ctx context.Context, in Input, fields []string) (profile.State, error) {
	if fields == nil {
		fields = profile.AllFields()
	}
	want := map[string]bool{}
	for _, f := range fields {
		want[f] = true
	}
	s := profile.State{}
	var errs []error
	name := in.Node.Name
	needKubelet := false
	for f := range want {
		needKubelet = needKubelet || kubeletFields[f]
	}
	// The OOM kill mode as it runs depends on the cgroup version.
	var oomKubelet *Kubelet
	if needKubelet || want[profile.FieldSingleProcessOOMKill] {
		k, err := ReadKubelet(ctx, in.Clientset, name)
		if err != nil {
			errs = append(errs, err)
		} else {
			if want[profile.FieldSingleProcessOOMKill] {
				oomKubelet = &k
			}
			for f, v := range k.State() {
				if want[f] {
					s[f] = v
				}
			}
		}
	}
	if want[profile.FieldHugePages2Mi] {
		q := in.Node.Status.Capacity[corev1.ResourceName("hugepages-2Mi")]
		s[profile.FieldHugePages2Mi] = profile.CanonicalQuantity(q)
	}
	if want[profile.FieldKubeletVersion] {
		s[profile.FieldKubeletVersion] = in.Node.Status.NodeInfo.KubeletVersion
	}
	if want[profile.FieldRuntimeVersion] {
		s[profile.FieldRuntimeVersion] = in.Node.Status.NodeInfo.ContainerRuntimeVersion
	}
	if want[profile.FieldKataLabel] {
		s[profile.FieldKataLabel] = "absent"
		if in.Node.Labels[nfd.KataLabel] == "true" {
			s[profile.FieldKataLabel] = "present"
		}
	}
	onNode := want[profile.FieldCgroupVersion] || want[profile.FieldSwapOn] || want[profile.FieldEncapsulation] || oomKubelet != nil
	if onNode && in.Probes == nil {
		errs = append(errs, fmt.Errorf("node %s: no node access to read cgroupVersion, swapOn, encapsulation, singleProcessOOMKill", name))
		onNode = false
	}
	if onNode {
		if want[profile.FieldCgroupVersion] || oomKubelet != nil {
			if v, err := CgroupVersion(ctx, in.Probes, name); err != nil {
				errs = append(errs, err)
			} else {
				if want[profile.FieldCgroupVersion] {
					s[profile.FieldCgroupVersion] = v
				}
				if oomKubelet != nil {
					s[profile.FieldSingleProcessOOMKill] = strconv.FormatBool(oomKubelet.SingleProcessOOMKillOn(v))
				}
			}
		}
		if want[profile.FieldSwapOn] {
			if on, err := SwapOn(ctx, in.Probes, name); err != nil {
				errs = append(errs, err)
			} else {
				s[profile.FieldSwapOn] = strconv.FormatBool(on)
			}
		}
		if want[profile.FieldEncapsulation] {
			rt, err := encapsulation.RuntimeOf(in.Node)
			if err == nil {
				var o encapsulation.NodeNamespaces
				n := &encapsulation.Node{Name: name, Runtime: rt, Probes: in.Probes}
				if o, err = n.Observe(ctx); err == nil {
					s[profile.FieldEncapsulation] = encapsulation.Relation(o)
				}
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return s, errors.Join(errs...)
}

// CgroupVersion reads the file system type of /sys/fs/cgroup on the node:
// cgroup2fs is v2, anything else (tmpfs of v1 controllers, hybrid) v1.
func CgroupVersion(ctx context.Context, p *nodeaccess.Probes, node string) (string, error) {
	out, err := p.MustHost(ctx, node, "stat", "-f", "-c", "%T", "/sys/fs/cgroup")
	if err != nil {
		return "", err
	}
	if strings.TrimSpace(out) == "cgroup2fs" {
		return "v2", nil
	}
	return "v1", nil
}

// RuntimeConfig asks node's container runtime, at the kubelet's endpoint
// as the kubelet sees it, the CRI RuntimeConfig question the kubelet asks
// when it starts (its cgroup driver).
func RuntimeConfig(ctx context.Context, p *nodeaccess.Probes, node, endpoint string) (probeapi.RuntimeConfig, error) {
	args := []string{"cri-runtime-config"}
	if endpoint != "" { // else the kubelet's default, the probe's too
		args = append(args, "--endpoint", endpoint)
	}
	var rc probeapi.RuntimeConfig
	err := p.Exec(ctx, node, args, &rc)
	return rc, err
}

// SwapOn reports whether /proc/swaps lists any swap area.
func SwapOn(ctx context.Context, p *nodeaccess.Probes, node string) (bool, error) {
	out, err := p.MustHost(ctx, node, "cat", "/proc/swaps")
	if err != nil {
		return false, err
	}
	return len(strings.Split(strings.TrimSpace(out), "\n")) > 1, nil
}
