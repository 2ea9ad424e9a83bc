package cgroups

import (
	"reflect"
	"strings"
	"testing"
)

func TestExpectedPodsCgroup(t *testing.T) {
	const mem = 25276182528 // a kind node's capacity, 24683772Ki
	for _, c := range []struct {
		name         string
		enforce      []string
		system, kube map[string]string
		want         PodsCgroup
	}{
		{"no reservations", []string{"pods"}, nil, nil, PodsCgroup{mem, 2048}},
		{"reserved and enforced", []string{"pods"}, map[string]string{"cpu": "500m", "memory": "1Gi"}, map[string]string{"cpu": "100m", "memory": "256Mi", "ephemeral-storage": "1Gi"},
			PodsCgroup{mem - 1<<30 - 256<<20, 1433}},
		{"reserved, not enforced on pods", []string{"kube-reserved"}, map[string]string{"memory": "1Gi"}, nil, PodsCgroup{mem, 2048}},
		{"more reserved than there is", []string{"pods"}, map[string]string{"cpu": "3", "memory": "100Gi"}, nil, PodsCgroup{0, MinShares}},
	} {
		got, err := ExpectedPodsCgroup(2000, mem, c.enforce, c.system, c.kube, "")
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: %+v, %v; want %+v", c.name, got, err, c.want)
		}
	}
	if _, err := ExpectedPodsCgroup(2000, mem, []string{"pods"}, map[string]string{"memory": "lots"}, nil, ""); err == nil {
		t.Error("a malformed reservation was accepted")
	}
	// reservedSystemCPUs replaces both CPU reservations with its size.
	got, err := ExpectedPodsCgroup(8000, mem, []string{"pods"}, map[string]string{"cpu": "500m"}, map[string]string{"cpu": "1"}, "0-1,4")
	if err != nil || got.CPUShares != SharesFromMilliCPU(5000) {
		t.Errorf("reserved CPUs 0-1,4 of 8: %+v, %v", got, err)
	}
	if _, err := ExpectedPodsCgroup(8000, mem, []string{"pods"}, nil, nil, "3-1"); err == nil {
		t.Error("a backwards CPU range was accepted")
	}
}

func TestJudgePodsCgroup(t *testing.T) {
	want := PodsCgroup{MemoryBytes: 25276182528 - 1000, CPUShares: 2048}
	rounded := "25276178432" // want rounded down to a page
	if p := JudgePodsCgroup(V1, want, rounded, "2048"); len(p) != 0 {
		t.Errorf("page-rounded limit: %v", p)
	}
	for _, c := range []struct {
		v           Version
		memory, cpu string
		problem     string
	}{
		{V1, "9223372036854771712", "2048", "memory.limit_in_bytes is 9223372036854771712, want 25276181528"},
		{V1, "1073741824", "2048", "memory.limit_in_bytes is 1073741824"},
		{V1, rounded, "1024", "cpu.shares is 1024, want 2048"},
		{V2, "max", "79", "memory.max is max (no limit)"},
		{V2, rounded, "100", "cpu.weight is 100, want [79 174]"},
	} {
		p := JudgePodsCgroup(c.v, want, c.memory, c.cpu)
		if len(p) != 1 || !strings.HasPrefix(p[0], c.problem) {
			t.Errorf("v%d %s %s: %v, want %q", c.v, c.memory, c.cpu, p, c.problem)
		}
	}
	if p := JudgePodsCgroup(V2, want, rounded, "79"); len(p) != 0 {
		t.Errorf("v2 linear weight: %v", p)
	}
}
