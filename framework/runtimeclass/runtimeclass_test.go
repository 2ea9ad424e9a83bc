package runtimeclass

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	nodev1 "k8s.io/api/node/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/nodeconform/nodeconform/framework/cgroups"
)

func rl(cpu, mem string) corev1.ResourceList {
	out := corev1.ResourceList{}
	if cpu != "" {
		out[corev1.ResourceCPU] = resource.MustParse(cpu)
	}
	if mem != "" {
		out[corev1.ResourceMemory] = resource.MustParse(mem)
	}
	return out
}

func pod(qos corev1.PodQOSClass, overhead corev1.ResourceList, containers ...corev1.ResourceRequirements) *corev1.Pod {
	p := &corev1.Pod{Spec: corev1.PodSpec{Overhead: overhead}, Status: corev1.PodStatus{QOSClass: qos}}
	for i, r := range containers {
		p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: fmt.Sprint("c", i), Resources: r})
	}
	return p
}

func TestParseOverhead(t *testing.T) {
	got, err := ParseOverhead(map[string]string{"cpu": "500m", "memory": "500Mi"})
	if err != nil {
		t.Fatal(err)
	}
	if len(CompareOverhead(rl("0.5", "500Mi"), got)) != 0 {
		t.Fatalf("500m/500Mi parsed as %v", got)
	}
	if _, err := ParseOverhead(map[string]string{"memory": "lots"}); err == nil || !strings.Contains(err.Error(), "runtimeClass.overhead.memory") {
		t.Fatalf("bad quantity: error %v must name the key", err)
	}
}

func TestCompareOverhead(t *testing.T) {
	want := rl("500m", "500Mi")
	for _, tc := range []struct {
		name string
		got  corev1.ResourceList
		msgs []string
	}{
		{"equal", rl("500m", "500Mi"), nil},
		{"none declared", nil, []string{"cpu: no overhead, want 500m", "memory: no overhead, want 500Mi"}},
		{"different cpu", rl("250m", "500Mi"), []string{"cpu: overhead 250m, want 500m"}},
		{"extra resource", corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("500Mi"), "pods": resource.MustParse("1")}, []string{"pods: overhead 1, want none"}},
	} {
		got := CompareOverhead(want, tc.got)
		if strings.Join(got, "|") != strings.Join(tc.msgs, "|") {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.msgs)
		}
	}
}

func TestPodFixed(t *testing.T) {
	if PodFixed(&nodev1.RuntimeClass{}) != nil {
		t.Fatal("a RuntimeClass without overhead has no podFixed")
	}
	rc := &nodev1.RuntimeClass{Overhead: &nodev1.Overhead{PodFixed: rl("500m", "500Mi")}}
	if len(CompareOverhead(rl("500m", "500Mi"), PodFixed(rc))) != 0 {
		t.Fatal("podFixed not returned")
	}
}

func TestExpectedPodCgroup(t *testing.T) {
	two := []corev1.ResourceRequirements{
		{Requests: rl("100m", "32Mi"), Limits: rl("200m", "64Mi")},
		{Requests: rl("50m", "16Mi"), Limits: rl("100m", "32Mi")},
	}
	for _, tc := range []struct {
		name     string
		p        *corev1.Pod
		cfsQuota bool
		want     cgroups.Expected
	}{
		{"burstable with overhead", pod(corev1.PodQOSBurstable, rl("500m", "500Mi"), two...), true,
			cgroups.Expected{CPURequestMilli: 650, CPULimitMilli: 800, MemoryLimit: (96 + 500) << 20}},
		{"burstable without overhead", pod(corev1.PodQOSBurstable, nil, two...), true,
			cgroups.Expected{CPURequestMilli: 150, CPULimitMilli: 300, MemoryLimit: 96 << 20}},
		{"guaranteed, no cfs quota", pod(corev1.PodQOSGuaranteed, rl("500m", "500Mi"), corev1.ResourceRequirements{Requests: rl("100m", "64Mi"), Limits: rl("100m", "64Mi")}), false,
			cgroups.Expected{CPURequestMilli: 600, MemoryLimit: 564 << 20}},
		// One container without a memory limit: the pod cgroup gets none.
		{"burstable, a container without limits", pod(corev1.PodQOSBurstable, rl("500m", "500Mi"), two[0], corev1.ResourceRequirements{Requests: rl("10m", "")}), true,
			cgroups.Expected{CPURequestMilli: 610}},
		{"burstable, an init container without limits", withInit(pod(corev1.PodQOSBurstable, nil, two...), corev1.ResourceRequirements{Requests: rl("10m", "8Mi")}), true,
			cgroups.Expected{CPURequestMilli: 150}},
		{"burstable, pod-level limits", withPodLimits(pod(corev1.PodQOSBurstable, nil, two[0], corev1.ResourceRequirements{Requests: rl("10m", "")}), rl("1", "1Gi")), true,
			cgroups.Expected{CPURequestMilli: 110, CPULimitMilli: 1000, MemoryLimit: 1 << 30}},
		{"best effort", pod(corev1.PodQOSBestEffort, nil, corev1.ResourceRequirements{}), true, cgroups.Expected{}},
	} {
		if got := ExpectedPodCgroup(tc.p, tc.cfsQuota); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// The pod cgroup check must fail when the runtime class's overhead was not
// applied: the files of a pod admitted without overhead, checked against
// the expectation of a pod with the configured overhead.
func TestPodCgroupCheckFailsWithoutOverhead(t *testing.T) {
	containers := corev1.ResourceRequirements{Requests: rl("100m", "64Mi"), Limits: rl("200m", "64Mi")}
	want := ExpectedPodCgroup(pod(corev1.PodQOSBurstable, rl("500m", "500Mi"), containers), true)
	// What the kubelet writes for the same pod without overhead (v1 files).
	withoutOverhead := map[string]string{
		"cpu.cfs_quota_us":      "20000",
		"cpu.cfs_period_us":     "100000",
		"cpu.shares":            fmt.Sprint(cgroups.SharesFromMilliCPU(100)),
		"memory.limit_in_bytes": fmt.Sprint(64 << 20),
	}
	l, err := cgroups.ParseV1(withoutOverhead)
	if err != nil {
		t.Fatal(err)
	}
	problems := cgroups.Check(cgroups.V1, want, l)
	if len(problems) != 3 {
		t.Fatalf("want quota, shares and memory reported, got %q", problems)
	}
	// And the files the kubelet writes with the overhead pass.
	withOverhead := map[string]string{
		"cpu.cfs_quota_us":      "70000",
		"cpu.cfs_period_us":     "100000",
		"cpu.shares":            fmt.Sprint(cgroups.SharesFromMilliCPU(600)),
		"memory.limit_in_bytes": fmt.Sprint(564 << 20),
	}
	if l, err = cgroups.ParseV1(withOverhead); err != nil {
		t.Fatal(err)
	}
	if p := cgroups.Check(cgroups.V1, want, l); len(p) != 0 {
		t.Fatalf("files with overhead reported: %q", p)
	}
}

func TestEvents(t *testing.T) {
	ev := []corev1.Event{
		{Reason: "Scheduled", Message: "Successfully assigned"},
		{Reason: "FailedCreatePodSandBox", Message: `Failed to create pod sandbox: rpc error: code = Unknown desc = failed to get sandbox runtime: no runtime for "nodeconform-missing" is configured`},
		{Reason: "FailedScheduling", Message: "0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector."},
	}
	if _, ok := SandboxFailure(ev, "nodeconform-missing"); !ok {
		t.Error("sandbox failure naming the handler not found")
	}
	if _, ok := SandboxFailure(ev, "kata"); ok {
		t.Error("a failure naming another handler must not match")
	}
	if _, ok := Insufficient(ev, corev1.ResourceCPU); !ok {
		t.Error("Insufficient cpu not found")
	}
	if _, ok := Insufficient(ev, corev1.ResourceMemory); ok {
		t.Error("Insufficient memory must not match")
	}
}

func TestKernelAndVMProcesses(t *testing.T) {
	node := Kernel{BootID: "a1\n"}
	if !SameKernel(Kernel{BootID: "a1"}, node) {
		t.Error("equal boot ids are one kernel")
	}
	if SameKernel(Kernel{BootID: "b2"}, node) || SameKernel(Kernel{}, Kernel{}) {
		t.Error("different or unread boot ids are not one kernel")
	}
	got := FindVMProcesses("/sbin/init\n/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id abc\n  /usr/libexec/qemu-kvm -name sandbox\nvirtiofsd --fd=3\n")
	if strings.Join(got, ",") != "qemu-kvm,virtiofsd" {
		t.Errorf("got %v", got)
	}
}

func withInit(p *corev1.Pod, r corev1.ResourceRequirements) *corev1.Pod {
	p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: "init", Resources: r})
	return p
}

func withPodLimits(p *corev1.Pod, limits corev1.ResourceList) *corev1.Pod {
	p.Spec.Resources = &corev1.ResourceRequirements{Limits: limits}
	return p
}
