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
	if got := Classify(Kernel{BootID: "a1"}, node, ""); got.Kind != SharedKernel || got.Problem != "" {
		t.Errorf("equal boot ids are one kernel: %+v", got)
	}
	if got := Classify(Kernel{BootID: "b2"}, node, ""); got.Kind == SharedKernel {
		t.Errorf("different boot ids are not one kernel: %+v", got)
	}
	if got := Classify(Kernel{}, Kernel{}, ""); got.Problem == "" {
		t.Errorf("unread boot ids decide nothing: %+v", got)
	}
	got := findProcesses("/sbin/init\n/usr/bin/containerd-shim-runc-v2 -namespace k8s.io -id abc\n  /usr/libexec/qemu-kvm -name sandbox\nvirtiofsd --fd=3\n", VMProcesses)
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

// Process tables as `ps -e -o args=` prints them on a node: runc pods
// only; a Kata pod (shim, QEMU, virtiofsd); a gVisor pod under containerd's
// runc shim with runsc as its binary (sandbox and gofer name themselves).
const (
	psRunc = `/sbin/init
/usr/local/bin/containerd
/usr/local/bin/containerd-shim-runc-v2 -namespace k8s.io -id 5f1c -address /run/containerd/containerd.sock
/pause
`
	psKata = psRunc + `/opt/kata/bin/containerd-shim-kata-v2 -namespace k8s.io -address /run/containerd/containerd.sock -publish-binary /usr/local/bin/containerd -id 9a2e
/opt/kata/libexec/virtiofsd --syslog --cache=auto --shared-dir=/run/kata-containers/shared/sandboxes/9a2e/shared --fd=3 --thread-pool-size=1
/opt/kata/bin/qemu-system-x86_64 -name sandbox-9a2e -uuid 0f3b -machine q35,accel=kvm -cpu host,pmu=off -qmp unix:fd=3,server=on,wait=off -m 2048M
`
	psGVisor = psRunc + `runsc-gofer --root=/run/containerd/runsc/k8s.io --log=/run/containerd/io.containerd.runtime.v2.task/k8s.io/77ab/log.json --log-format=json --platform=systrap gofer --bundle /run/containerd/io.containerd.runtime.v2.task/k8s.io/77ab --gofer-mount-confs=lisafs:none --io-fds=6 --mounts-fd=7 --spec-fd=5 --sync-nvproxy-fd=-1 --sync-userns-fd=-1 --proc-mount-sync-fd=14 --apply-caps=false --setup-root=false
runsc-sandbox --root=/run/containerd/runsc/k8s.io --log=/run/containerd/io.containerd.runtime.v2.task/k8s.io/77ab/log.json --log-format=json --platform=systrap boot --apply-caps=false --bundle=/run/containerd/io.containerd.runtime.v2.task/k8s.io/77ab --controller-fd=10 --cpu-num=2 --dev-io-fd=-1 --gofer-mount-confs=lisafs:none --io-fds=3 --mounts-fd=4 --overlay-filestore-fd=-1 --pidns-path=/proc/1/ns/pid 77ab
`
)

func TestClassify(t *testing.T) {
	node := Kernel{BootID: "d83ec6aa\n", Cmdline: "BOOT_IMAGE=/vmlinuz-6.1.0-44-amd64 root=/dev/vda", Version: "Linux version 6.1.0-44-amd64 (debian-kernel@lists.debian.org)"}
	guest := Kernel{BootID: "11aa22bb", Cmdline: "tsc=reliable no_timer_check rcupdate.rcu_expedited=1 root=/dev/pmem0p1", Version: "Linux version 6.12.28 (kata) #1 SMP"}
	gvisor := Kernel{BootID: "5e9c0d4f", Cmdline: "BOOT_IMAGE=/vmlinuz-4.19.0-gvisor quiet", Version: "Linux version 4.19.0-gvisor #1 SMP Sun Jan 10 15:06:54 PST 2016"}
	for _, tc := range []struct {
		name       string
		pod        Kernel
		ps         string
		kind       string
		problem    bool
		procs      string
		evidenceIn string
	}{
		{"runc pod", Kernel{BootID: "d83ec6aa", Version: node.Version}, psRunc, SharedKernel, false, "", "is the node's"},
		// A runc pod beside a Kata pod: the node's processes do not make it isolated.
		{"runc pod on a node running Kata", Kernel{BootID: "d83ec6aa"}, psKata, SharedKernel, false, "qemu-system-x86_64,virtiofsd,containerd-shim-kata-v2", "is the node's"},
		{"kata pod", guest, psKata, VMSandbox, false, "qemu-system-x86_64,virtiofsd,containerd-shim-kata-v2", "run on the node"},
		{"gvisor pod", gvisor, psGVisor, UserSpaceKernel, false, "runsc-gofer,runsc-sandbox", "gVisor's runsc-gofer, runsc-sandbox"},
		{"gvisor pod on a node also running Kata", gvisor, psGVisor + psKata, UserSpaceKernel, false, "", "gVisor's kernel identity"},
		{"kata pod on a node also running gVisor", guest, psGVisor + psKata, VMSandbox, false, "", "a guest kernel"},
		{"own boot_id, no sandbox process", guest, psRunc, VMSandbox, true, "", "not the node's"},
		{"guest with the node's command line", Kernel{BootID: "11aa22bb", Cmdline: node.Cmdline}, psKata, VMSandbox, true, "", ""},
		{"boot_id unread", Kernel{}, psGVisor, SharedKernel, true, "", ""},
	} {
		got := Classify(tc.pod, node, tc.ps)
		if got.Kind != tc.kind || (got.Problem != "") != tc.problem || !strings.Contains(got.Evidence, tc.evidenceIn) {
			t.Errorf("%s: got %+v, want kind %s, problem %v, evidence containing %q", tc.name, got, tc.kind, tc.problem, tc.evidenceIn)
		}
		if tc.procs != "" {
			want := strings.Split(tc.procs, ",")
			if !sameSet(got.Processes, want) {
				t.Errorf("%s: processes %v, want %v", tc.name, got.Processes, want)
			}
		}
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]bool{}
	for _, x := range a {
		m[x] = true
	}
	for _, x := range b {
		if !m[x] {
			return false
		}
	}
	return true
}

func TestOffers(t *testing.T) {
	n := corev1.Node{Status: corev1.NodeStatus{RuntimeHandlers: []corev1.NodeRuntimeHandler{{Name: ""}, {Name: "runc"}, {Name: "kata"}}}}
	if ok, known := Offers(n, "kata"); !ok || !known {
		t.Errorf("kata: %v %v", ok, known)
	}
	if ok, known := Offers(n, "runsc"); ok || !known {
		t.Errorf("runsc: %v %v (the node reports handlers, runsc is not among them)", ok, known)
	}
	if _, known := Offers(corev1.Node{}, "runsc"); known {
		t.Error("a node reporting no handlers proves nothing")
	}
	if got := strings.Join(HandlerNames(n), ","); got != "(default),kata,runc" {
		t.Errorf("HandlerNames %q", got)
	}
}

func TestPodProcesses(t *testing.T) {
	const uid = "6f1d2c4e-9b0a-4c3d-8e7f-0a1b2c3d4e5f"
	ps := strings.Join([]string{
		"    1  9000 12:memory:/,11:cpu,cpuacct:/ /sbin/init",
		// systemd driver, v1: the UID's dashes are underscores.
		"  812 61000 12:memory:/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod6f1d2c4e_9b0a_4c3d_8e7f_0a1b2c3d4e5f.slice/cri-containerd-abc.scope,11:cpu,cpuacct:/x runsc-sandbox --root=/run/containerd/runsc boot --bundle=/run/x",
		"  815  8000 12:memory:/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod6f1d2c4e_9b0a_4c3d_8e7f_0a1b2c3d4e5f.slice/cri-containerd-abc.scope runsc-gofer gofer --bundle=/run/x",
		// cgroupfs driver, v2.
		"  900  4000 0::/kubepods/burstable/pod6f1d2c4e-9b0a-4c3d-8e7f-0a1b2c3d4e5f/def /pause",
		// Another pod.
		"  901  4000 0::/kubepods/burstable/pod00000000-9b0a-4c3d-8e7f-0a1b2c3d4e5f/def /pause",
		"  777  3000 12:memory:/system.slice/containerd.service /usr/local/bin/containerd-shim-runc-v2 -namespace k8s.io -id abc",
		"garbage line",
	}, "\n")
	got := PodProcesses(ps, uid)
	if len(got) != 3 || got[0].PID != 812 || got[0].RSSKiB != 61000 || !strings.HasPrefix(got[0].Args, "runsc-sandbox ") || got[1].PID != 815 || got[2].Args != "/pause" {
		t.Fatalf("PodProcesses: %+v", got)
	}
}

func TestJudgeSandboxMemory(t *testing.T) {
	const mi = 1 << 20
	for _, c := range []struct {
		used, overhead int64
		fail           string
	}{
		{used: 3 * mi, overhead: 500 * mi},
		{used: 110 * mi, overhead: 100 * mi},                   // within the 10% margin
		{used: 111 * mi, overhead: 100 * mi, fail: "110.0MiB"}, // past it
		{used: 60 * mi, overhead: mi, fail: "more than the declared memory overhead 1.0MiB"},
		{used: 2 * mi, overhead: 0, fail: "declares no memory overhead"},
		{used: 1400 << 10, overhead: 64 << 10, fail: "overhead 64KiB plus 10% (70KiB)"},
	} {
		got := JudgeSandboxMemory(c.used, c.overhead, 0.10)
		if (c.fail == "") != (got == "") || !strings.Contains(got, c.fail) {
			t.Errorf("used %d overhead %d: %q, want %q", c.used, c.overhead, got, c.fail)
		}
	}
}

func TestJudgeIsolation(t *testing.T) {
	shared := Isolation{Kind: SharedKernel, Evidence: "the pod's boot_id is the node's (b1)"}
	if f, s := JudgeIsolation(shared, false); f != "" || !strings.Contains(s, "not isolated") {
		t.Errorf("shared, not required: %q %q", f, s)
	}
	if f, s := JudgeIsolation(shared, true); !strings.Contains(f, "must be isolated") || s != "" {
		t.Errorf("shared, required: %q %q", f, s)
	}
	gv := Isolation{Kind: UserSpaceKernel, Evidence: "own boot_id; gVisor's runsc-sandbox"}
	if f, s := JudgeIsolation(gv, true); f != "" || s != "" {
		t.Errorf("gVisor: %q %q", f, s)
	}
	bad := Isolation{Kind: VMSandbox, Problem: "no VMM"}
	if f, _ := JudgeIsolation(bad, false); !strings.Contains(f, "no VMM") {
		t.Errorf("contradiction: %q", f)
	}
}
