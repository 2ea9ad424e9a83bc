package cluster

import (
	"fmt"

	"golang.org/x/sys/unix"
	"sigs.k8s.io/yaml"
)

// failCgroupV1Patch lets kubelets from v1.35 on, which refuse cgroup v1
// hosts by default, run on one. Older kubelets (v1.31+) know the field
// and default it to false already.
const failCgroupV1Patch = "kind: KubeletConfiguration\nfailCgroupV1: false\n"

// HostCgroupV2 reports whether this host's /sys/fs/cgroup is the unified
// (v2) hierarchy. Docker on the same host gives kind nodes the same kind.
func HostCgroupV2() (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return false, fmt.Errorf("statfs /sys/fs/cgroup: %w", err)
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC, nil
}

// AddClusterPatch appends a cluster-wide kubeadm config patch to a kind
// configuration, keeping everything else as written.
func AddClusterPatch(config []byte, patch string) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(config, &doc); err != nil {
		return nil, err
	}
	if doc == nil {
		doc = map[string]any{}
	}
	patches, _ := doc["kubeadmConfigPatches"].([]any)
	doc["kubeadmConfigPatches"] = append(patches, patch)
	return yaml.Marshal(doc)
}
