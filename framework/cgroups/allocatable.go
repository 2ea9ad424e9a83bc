package cgroups

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// PodsCgroup is what the kubelet writes to the cgroup that holds every pod
// (kubepods): node allocatable enforcement.
type PodsCgroup struct {
	MemoryBytes int64 `json:"memoryBytes"`
	CPUShares   int64 `json:"cpuShares"`
}

// ExpectedPodsCgroup is the kubelet's enforceNodeAllocatableCgroups: the
// node's capacity (cpuMilli, memoryBytes), less systemReserved and
// kubeReserved when enforceNodeAllocatable names "pods", never below zero.
// Hard eviction thresholds are not subtracted: they lower allocatable, not
// the cgroup (the kubelet evicts before the kernel would reclaim). A
// reservedSystemCPUs set replaces both CPU reservations with its size, as
// the kubelet does when it starts.
func ExpectedPodsCgroup(cpuMilli, memoryBytes int64, enforce []string, systemReserved, kubeReserved map[string]string, reservedSystemCPUs string) (PodsCgroup, error) {
	if slices.Contains(enforce, "pods") {
		pinned, err := cpuSetSize(reservedSystemCPUs)
		if err != nil {
			return PodsCgroup{}, fmt.Errorf("reservedSystemCPUs %q: %w", reservedSystemCPUs, err)
		}
		for _, reserved := range []map[string]string{systemReserved, kubeReserved} {
			for name, v := range reserved {
				q, err := resource.ParseQuantity(v)
				if err != nil {
					return PodsCgroup{}, fmt.Errorf("reserved %s %q: %w", name, v, err)
				}
				switch {
				case name == "cpu" && pinned == 0:
					cpuMilli -= q.MilliValue()
				case name == "memory":
					memoryBytes -= q.Value()
				}
			}
		}
		cpuMilli -= pinned * 1000
	}
	return PodsCgroup{MemoryBytes: max(memoryBytes, 0), CPUShares: SharesFromMilliCPU(max(cpuMilli, 0))}, nil
}

// PodsCgroupFiles are the memory limit and CPU share files of the pods
// cgroup at cgPath.
func PodsCgroupFiles(v Version, cgPath string) (memory, cpu string) {
	if v == V2 {
		return Dir(v, "memory", cgPath) + "/memory.max", Dir(v, "cpu", cgPath) + "/cpu.weight"
	}
	return Dir(v, "memory", cgPath) + "/memory.limit_in_bytes", Dir(v, "cpu", cgPath) + "/cpu.shares"
}

// pageSize is what the kernel rounds a memory limit down to.
const pageSize = 4096

// JudgePodsCgroup compares the pods cgroup's files (their contents) with
// want: the memory limit rounded down to a page as the kernel stores it,
// the shares exactly (v1) or as either weight conversion in use (v2).
func JudgePodsCgroup(v Version, want PodsCgroup, memory, cpu string) []string {
	var problems []string
	memFile, cpuFile := PodsCgroupFiles(v, "")
	memFile, cpuFile = memFile[strings.LastIndexByte(memFile, '/')+1:], cpuFile[strings.LastIndexByte(cpuFile, '/')+1:]
	got, err := strconv.ParseInt(strings.TrimSpace(memory), 10, 64)
	switch {
	case strings.TrimSpace(memory) == "max":
		problems = append(problems, fmt.Sprintf("%s is max (no limit), want %d", memFile, want.MemoryBytes))
	case err != nil:
		problems = append(problems, fmt.Sprintf("%s %q: %v", memFile, memory, err))
	case got > want.MemoryBytes || want.MemoryBytes-got >= pageSize:
		problems = append(problems, fmt.Sprintf("%s is %d, want %d", memFile, got, want.MemoryBytes))
	}
	c, err := strconv.ParseInt(strings.TrimSpace(cpu), 10, 64)
	switch {
	case err != nil:
		problems = append(problems, fmt.Sprintf("%s %q: %v", cpuFile, cpu, err))
	case v == V2 && !slices.Contains(WeightsFromShares(want.CPUShares), c):
		problems = append(problems, fmt.Sprintf("%s is %d, want %v (from %d shares)", cpuFile, c, WeightsFromShares(want.CPUShares), want.CPUShares))
	case v != V2 && c != want.CPUShares:
		problems = append(problems, fmt.Sprintf("%s is %d, want %d", cpuFile, c, want.CPUShares))
	}
	return problems
}

// cpuSetSize counts the CPUs of a cpuset list ("0-1,4": 3; "": 0).
func cpuSetSize(list string) (int64, error) {
	var n int64
	for _, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.ParseInt(lo, 10, 64)
		if err != nil {
			return 0, err
		}
		b := a
		if isRange {
			if b, err = strconv.ParseInt(hi, 10, 64); err != nil {
				return 0, err
			}
		}
		if b < a {
			return 0, fmt.Errorf("range %s runs backwards", part)
		}
		n += b - a + 1
	}
	return n, nil
}
