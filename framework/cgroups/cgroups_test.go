package cgroups

import (
	"strings"
	"testing"
	"time"

	"github.com/nodeconform/nodeconform/framework/probeapi"
)

// /proc/<pid>/cgroup of a Burstable container on a kind node (cgroup v1,
// systemd driver), as read on these machines.
const procV1 = `9:name=systemd:/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod0b8c_1d2e.slice/cri-containerd-abc.scope
8:pids:/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod0b8c_1d2e.slice/cri-containerd-abc.scope
4:memory:/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod0b8c_1d2e.slice/cri-containerd-abc.scope
2:cpuacct:/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod0b8c_1d2e.slice/cri-containerd-abc.scope
1:cpu:/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod0b8c_1d2e.slice/cri-containerd-abc.scope
0::/
`

// The same on a cgroup v2 node (a common real-cluster layout).
const procV2 = "0::/kubepods.slice/kubepods-pod0b8c_1d2e.slice/cri-containerd-abc.scope\n"

func TestParseProcCgroup(t *testing.T) {
	m, err := ParseProcCgroup(procV1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := m.PathOf(V1, "cpu")
	if err != nil || !strings.HasSuffix(p, "cri-containerd-abc.scope") {
		t.Fatalf("%q %v", p, err)
	}
	if Dir(V1, "cpu", p) != "/sys/fs/cgroup/cpu"+p {
		t.Fatal(Dir(V1, "cpu", p))
	}
	pod := p[:strings.LastIndex(p, "/")]
	if q, err := QoSOfPodCgroup(pod); err != nil || q != Burstable {
		t.Fatalf("%s %v", q, err)
	}
	if !PodUIDInPath(pod, "0b8c-1d2e") || PodUIDInPath(pod, "ffff") {
		t.Fatal("uid match")
	}
	m2, _ := ParseProcCgroup(procV2)
	p2, err := m2.PathOf(V2, "cpu")
	if err != nil || Dir(V2, "cpu", p2) != "/sys/fs/cgroup/kubepods.slice/kubepods-pod0b8c_1d2e.slice/cri-containerd-abc.scope" {
		t.Fatalf("%q %v", p2, err)
	}
	if q, _ := QoSOfPodCgroup("/kubepods.slice/kubepods-pod0b8c_1d2e.slice"); q != Guaranteed {
		t.Fatal("guaranteed")
	}
	if q, _ := QoSOfPodCgroup("/kubepods/besteffort/pod0b8c-1d2e"); q != BestEffort {
		t.Fatal("cgroupfs besteffort")
	}
	if _, err := QoSOfPodCgroup("/system.slice/containerd.service"); err == nil {
		t.Fatal("not a pod cgroup")
	}
	if _, err := ParseProcCgroup("garbage"); err == nil {
		t.Fatal("malformed")
	}
}

func TestFormulas(t *testing.T) {
	if SharesFromMilliCPU(0) != 2 || SharesFromMilliCPU(1) != 2 || SharesFromMilliCPU(100) != 102 || SharesFromMilliCPU(1000) != 1024 {
		t.Fatal("shares")
	}
	if QuotaFromMilliCPU(100, 100000) != 10000 || QuotaFromMilliCPU(0, 100000) != -1 || QuotaFromMilliCPU(1, 100000) != 1000 {
		t.Fatal("quota")
	}
	if WeightFromShares(2) != 1 || WeightFromShares(1024) != 39 || WeightFromShares(262144) != 10000 {
		t.Fatalf("weight %d %d", WeightFromShares(1024), WeightFromShares(262144))
	}
	// The quadratic conversion (runc 1.4): 102 shares (100m) read 17 on
	// the cgroup v2 VM node; 1024 shares give the default 100.
	for shares, want := range map[int64]int64{0: 0, 2: 1, 102: 17, 1024: 100, 262144: 10000} {
		if got := WeightFromSharesQuadratic(shares); got != want {
			t.Errorf("quadratic weight of %d shares = %d, want %d", shares, got, want)
		}
	}
}

func TestCheckV1AndV2(t *testing.T) {
	e := Expected{CPURequestMilli: 100, CPULimitMilli: 200, MemoryLimit: 64 << 20}
	v1, err := ParseV1(map[string]string{"cpu.cfs_quota_us": "20000\n", "cpu.cfs_period_us": "100000\n", "cpu.shares": "102\n", "memory.limit_in_bytes": "67108864\n"})
	if err != nil {
		t.Fatal(err)
	}
	if m := Check(V1, e, v1); len(m) != 0 {
		t.Fatal(m)
	}
	v2, err := ParseV2(map[string]string{"cpu.max": "20000 100000\n", "cpu.weight": "4\n", "memory.max": "67108864\n"})
	if err != nil {
		t.Fatal(err)
	}
	if m := Check(V2, e, v2); len(m) != 0 {
		t.Fatal(m)
	}
	// Recorded on the VM node (runc 1.4.3): the quadratic weight passes;
	// a weight of neither conversion (e.g. the request ignored) fails.
	quad, _ := ParseV2(map[string]string{"cpu.max": "20000 100000", "cpu.weight": "17", "memory.max": "67108864"})
	if m := Check(V2, e, quad); len(m) != 0 {
		t.Fatal(m)
	}
	wrong, _ := ParseV2(map[string]string{"cpu.max": "20000 100000", "cpu.weight": "100", "memory.max": "67108864"})
	if m := Check(V2, e, wrong); len(m) != 1 || !strings.Contains(m[0], "cpu.weight 100, want 4 (linear) or 17 (quadratic") {
		t.Fatalf("%v", m)
	}
	// CFS quota disabled (cpuCFSQuota: false): the limit is not enforced.
	off, _ := ParseV1(map[string]string{"cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000", "cpu.shares": "102", "memory.limit_in_bytes": "9223372036854771712"})
	m := Check(V1, e, off)
	if len(m) != 2 || !strings.Contains(m[0], "cpu quota -1") || !strings.Contains(m[1], "memory limit -1") {
		t.Fatalf("%v", m)
	}
	unl, _ := ParseV2(map[string]string{"cpu.max": "max 100000", "cpu.weight": "1", "memory.max": "max"})
	if unl.CPUQuota != -1 || unl.MemoryLimit != -1 {
		t.Fatalf("%+v", unl)
	}
	// v2 with the limits not written (cpu.max and memory.max at max): both
	// reported, the request's weight still checked.
	loose, _ := ParseV2(map[string]string{"cpu.max": "max 100000", "cpu.weight": "4", "memory.max": "max"})
	if m := Check(V2, e, loose); len(m) != 2 || !strings.Contains(m[0], "cpu quota -1") || !strings.Contains(m[1], "memory limit -1, want 67108864") {
		t.Fatalf("%v", m)
	}
	if _, err := ParseV2(map[string]string{"cpu.max": "bogus"}); err == nil {
		t.Fatal("malformed cpu.max")
	}
}

// TestCheckOOMGroup judges v2's memory.oom.group against the kubelet's
// singleProcessOOMKill: group kill (1) by default on v2, one process (0)
// where it is set; v1 has no such file and is never judged.
func TestCheckOOMGroup(t *testing.T) {
	files := func(group string) map[string]string {
		return map[string]string{"cpu.max": "20000 100000", "cpu.weight": "4", "memory.max": "67108864", OOMGroupFile: group + "\n"}
	}
	group, err := ParseV2(files("1"))
	if err != nil || group.OOMGroup == nil || !*group.OOMGroup {
		t.Fatalf("%+v %v", group, err)
	}
	single, _ := ParseV2(files("0"))
	e := Expected{CPURequestMilli: 100, CPULimitMilli: 200, MemoryLimit: 64 << 20, SingleProcessOOMKill: new(false)}
	if m := Check(V2, e, group); len(m) != 0 {
		t.Fatal(m)
	}
	// A kubelet with singleProcessOOMKill: true where group kill is wanted.
	if m := Check(V2, e, single); len(m) != 1 || !strings.Contains(m[0], "memory.oom.group 0 (an OOM kills one process), want 1") {
		t.Fatalf("%v", m)
	}
	e.SingleProcessOOMKill = new(true)
	if m := Check(V2, e, single); len(m) != 0 {
		t.Fatal(m)
	}
	if m := Check(V2, e, group); len(m) != 1 || !strings.Contains(m[0], "want 0") {
		t.Fatalf("%v", m)
	}
	// A runtime that drops the kubelet's unified resources leaves no file
	// read: reported, not taken as either mode.
	none, _ := ParseV2(map[string]string{"cpu.max": "20000 100000", "cpu.weight": "4", "memory.max": "67108864"})
	if m := Check(V2, e, none); len(m) != 1 || !strings.Contains(m[0], "no memory.oom.group read") {
		t.Fatalf("%v", m)
	}
	if _, err := ParseV2(files("2")); err == nil {
		t.Fatal("memory.oom.group 2 must not parse")
	}
	v1, _ := ParseV1(map[string]string{"cpu.cfs_quota_us": "20000", "cpu.cfs_period_us": "100000", "cpu.shares": "102", "memory.limit_in_bytes": "67108864"})
	if m := Check(V1, e, v1); len(m) != 0 {
		t.Fatal(m)
	}
}

func TestCPUStats(t *testing.T) {
	a, err := ParseCPUStatV1("1000000000\n", "nr_periods 10\nnr_throttled 2\nthrottled_time 500\n")
	if err != nil || a.NrThrottled != 2 {
		t.Fatalf("%+v %v", a, err)
	}
	b, _ := ParseCPUStatV1("1500000000\n", "nr_periods 60\nnr_throttled 50\nthrottled_time 900\n")
	if f := CPUFraction(a, b, 5e9); f < 0.099 || f > 0.101 {
		t.Fatalf("fraction %f", f)
	}
	c, err := ParseCPUStatV2("usage_usec 2000\nuser_usec 1000\nsystem_usec 1000\nnr_periods 3\nnr_throttled 1\nthrottled_usec 40\n")
	if err != nil || c.UsageNanos != 2000000 || c.NrThrottled != 1 || c.ThrottledNano != 40000 {
		t.Fatalf("%+v %v", c, err)
	}
	if _, err := ParseCPUStatV2("nr_periods 1\n"); err == nil {
		t.Fatal("missing usage")
	}
}

func TestPodCgroupOf(t *testing.T) {
	uid := "2db50047-803b-47e1-8321-c9c7b8ddeeca"
	for _, tc := range []struct{ in, want string }{
		{"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod2db50047_803b_47e1_8321_c9c7b8ddeeca.slice/cri-containerd-abc.scope",
			"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod2db50047_803b_47e1_8321_c9c7b8ddeeca.slice"},
		{"/kubepods/burstable/pod2db50047-803b-47e1-8321-c9c7b8ddeeca/kata_abc", "/kubepods/burstable/pod2db50047-803b-47e1-8321-c9c7b8ddeeca"},
		{"/kubepods/podother/x", ""},
	} {
		got, ok := PodCgroupOf(tc.in, uid)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("%s: got %q %v, want %q", tc.in, got, ok, tc.want)
		}
	}
}

func TestExpectedPodParent(t *testing.T) {
	cases := []struct {
		driver, root string
		perQOS       bool
		q            QoS
		want         string
	}{
		{"systemd", "/kubelet", true, Burstable, "/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice"},
		{"systemd", "/kubelet", true, Guaranteed, "/kubelet.slice/kubelet-kubepods.slice"},
		{"systemd", "/", true, BestEffort, "/kubepods.slice/kubepods-besteffort.slice"},
		{"systemd", "", true, Guaranteed, "/kubepods.slice"},
		{"cgroupfs", "/kubelet", true, Burstable, "/kubelet/kubepods/burstable"},
		{"cgroupfs", "/", true, Guaranteed, "/kubepods"},
		{"systemd", "/my-root", true, Guaranteed, "/my_root.slice/my_root-kubepods.slice"},
		{"cgroupfs", "/kubelet", false, Burstable, "/kubelet"},
	}
	for _, c := range cases {
		if got := ExpectedPodParent(c.driver, c.root, c.perQOS, c.q); got != c.want {
			t.Errorf("%s %q perQOS=%v %s: got %s, want %s", c.driver, c.root, c.perQOS, c.q, got, c.want)
		}
	}
}

func TestOOMKills(t *testing.T) {
	// Recorded on the cgroup v2 VM node after an OOMKilled container.
	v2 := "low 0\nhigh 0\nmax 57\noom 1\noom_kill 1\noom_group_kill 0\n"
	if n, problem, err := OOMKills(V2, v2); err != nil || n != 1 || problem != "" {
		t.Fatalf("%d %q %v", n, problem, err)
	}
	if _, problem, _ := OOMKills(V2, "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n"); !strings.Contains(problem, "counts no oom_kill") {
		t.Fatalf("no kill on v2 must be a problem: %q", problem)
	}
	// v1 pod cgroups do not count their containers' kills: zero is evidence, not a failure.
	if n, problem, err := OOMKills(V1, "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"); err != nil || n != 0 || problem != "" {
		t.Fatalf("%d %q %v", n, problem, err)
	}
	if _, _, err := OOMKills(V2, "garbage"); err == nil {
		t.Fatal("a file without oom_kill must be an error")
	}
	if OOMFile(V2) != "memory.events" || OOMFile(V1) != "memory.oom_control" {
		t.Fatal("oom files")
	}
}

// TestJudgeOOMMode: memory.events after a kill, recorded on the cgroup v2
// VM node, against the kubelet's mode.
func TestJudgeOOMMode(t *testing.T) {
	group := "low 0\nhigh 0\nmax 31\noom 1\noom_kill 2\noom_group_kill 1\n"  // memory.oom.group 1 (the v2 default)
	single := "low 0\nhigh 0\nmax 55\noom 3\noom_kill 3\noom_group_kill 0\n" // singleProcessOOMKill: true (the negative control)
	if p := JudgeOOMMode(V2, false, group); p != "" {
		t.Fatal(p)
	}
	if p := JudgeOOMMode(V2, true, single); p != "" {
		t.Fatal(p)
	}
	// singleProcessOOMKill set where the profile wants group kill.
	if p := JudgeOOMMode(V2, false, single); !strings.Contains(p, "counts no oom_group_kill") {
		t.Fatalf("%q", p)
	}
	if p := JudgeOOMMode(V2, true, group); !strings.Contains(p, "counts 1 oom_group_kill") {
		t.Fatalf("%q", p)
	}
	// A kernel without the counter, and v1, prove nothing either way.
	if p := JudgeOOMMode(V2, false, "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n"); p != "" {
		t.Fatal(p)
	}
	if p := JudgeOOMMode(V1, false, "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"); p != "" {
		t.Fatal(p)
	}
}

func TestJudgeThrottle(t *testing.T) {
	b := ThrottleBounds{LimitedMin: 0.05, LimitedMax: 0.15, UnlimitedMin: 0.3}
	const wall = int64(6e9)
	u := func(fraction float64, throttled int64) CPUUsage {
		return CPUUsage{UsageNanos: int64(fraction * float64(wall)), NrThrottled: throttled}
	}
	good := ThrottleSample{LimitedAfter: u(0.1, 60), UnlimitedAfter: u(0.9, 0), WallNanos: wall}
	if got := JudgeThrottle(b, good); got != nil {
		t.Fatalf("enforced limit and a free loop: %v", got)
	}
	for name, tc := range map[string]struct {
		mutate func(*ThrottleSample)
		want   string
	}{
		// cpuCFSQuota false: no quota, the loop escapes and nothing throttles it.
		"no quota":             {func(s *ThrottleSample) { s.LimitedAfter = u(0.95, 0) }, "the limit is not enforced"},
		"limited loop starved": {func(s *ThrottleSample) { s.LimitedAfter = u(0.01, 3) }, "wanted at least 0.05"},
		"no throttle events":   {func(s *ThrottleSample) { s.LimitedAfter = u(0.1, 0) }, "did not grow (0 -> 0)"},
		// A quota where there must be none (a limit on the unlimited container).
		"free loop throttled": {func(s *ThrottleSample) { s.UnlimitedAfter = u(0.5, 40) }, "throttled by its own cgroup (0 -> 40)"},
		// A quota on a parent cgroup: the container's counter stays still.
		// Without the parents' counters, the floor catches it.
		"parent quota, parents not read": {func(s *ThrottleSample) { s.UnlimitedAfter = u(0.2, 0) }, "used only 0.200 of a CPU, wanted at least 0.30"},
		// With them, the parent is named, and the floor still fails.
		"parent quota": {func(s *ThrottleSample) {
			s.UnlimitedBefore.ParentThrottles = map[string]int64{"/sys/fs/cgroup/cpu/kubepods/burstable": 7, "/sys/fs/cgroup/cpu/kubepods": 0}
			s.UnlimitedAfter = u(0.2, 0)
			s.UnlimitedAfter.ParentThrottles = map[string]int64{"/sys/fs/cgroup/cpu/kubepods/burstable": 67, "/sys/fs/cgroup/cpu/kubepods": 0}
		}, "throttled by a parent cgroup's quota (0.200 of a CPU): /sys/fs/cgroup/cpu/kubepods/burstable (nr_throttled 7 -> 67)"},
		// A parent throttled even though the loop still got past the floor.
		"parent quota above the floor": {func(s *ThrottleSample) {
			s.UnlimitedBefore.ParentThrottles = map[string]int64{"/kubepods": 0}
			s.UnlimitedAfter = u(0.5, 0)
			s.UnlimitedAfter.ParentThrottles = map[string]int64{"/kubepods": 30}
		}, "/kubepods (nr_throttled 0 -> 30)"},
		"empty window": {func(s *ThrottleSample) { s.WallNanos = 0 }, "no measurement window"},
	} {
		s := good
		tc.mutate(&s)
		got := JudgeThrottle(b, s)
		if len(got) == 0 || !strings.Contains(strings.Join(got, "; "), tc.want) {
			t.Errorf("%s: got %q, want a problem containing %q", name, got, tc.want)
		}
	}
}

// A starved unlimited loop with every cgroup on its path read and none
// throttled is contention: no finding, and Contended says so.
func TestJudgeThrottleContention(t *testing.T) {
	b := ThrottleBounds{LimitedMin: 0.05, LimitedMax: 0.15, UnlimitedMin: 0.3}
	const wall = int64(3e9)
	parents := map[string]int64{"/sys/fs/cgroup/cpu/kubepods": 5, "/sys/fs/cgroup/cpu": 9}
	s := ThrottleSample{
		LimitedAfter:    CPUUsage{UsageNanos: int64(0.1 * float64(wall)), NrThrottled: 30},
		UnlimitedBefore: CPUUsage{ParentThrottles: parents},
		UnlimitedAfter:  CPUUsage{UsageNanos: int64(0.207 * float64(wall)), ParentThrottles: parents},
		WallNanos:       wall,
	}
	if got := JudgeThrottle(b, s); got != nil {
		t.Fatalf("contention judged a finding: %v", got)
	}
	if !b.Contended(s) {
		t.Fatal("not reported contended")
	}
	// Its own counter moving is no contention.
	s.UnlimitedAfter.NrThrottled = 4
	if b.Contended(s) || JudgeThrottle(b, s) == nil {
		t.Fatal("a loop throttled by its own cgroup passed as contended")
	}
}

func TestAncestorsAndNrThrottled(t *testing.T) {
	got := Ancestors("/kubelet.slice/kubelet-kubepods.slice/cri-containerd-1.scope")
	want := []string{"/kubelet.slice/kubelet-kubepods.slice", "/kubelet.slice", "/"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("Ancestors: got %q, want %q", got, want)
	}
	if a := Ancestors("/"); len(a) != 0 {
		t.Fatalf("the root has ancestors: %q", a)
	}
	if n, ok := NrThrottled("nr_periods 10\nnr_throttled 4\nthrottled_time 99\n"); !ok || n != 4 {
		t.Fatalf("NrThrottled: %d %v", n, ok)
	}
	// A v2 root's cpu.stat has usage only.
	if _, ok := NrThrottled("usage_usec 5\nuser_usec 3\nsystem_usec 2\n"); ok {
		t.Fatal("nr_throttled found in a root cpu.stat")
	}
}

func TestPastQuota(t *testing.T) {
	b := ThrottleBounds{LimitedMin: 0.05, LimitedMax: 0.15, UnlimitedMin: 0.3}
	for fraction, want := range map[float64]bool{0.95: true, 0.16: true, 0.1: false, 0.01: false} {
		s := ThrottleSample{LimitedAfter: CPUUsage{UsageNanos: int64(fraction * 6e9)}, WallNanos: 6e9}
		if got := b.PastQuota(s); got != want {
			t.Errorf("limited loop at %.2f of a CPU: PastQuota %v, want %v", fraction, got, want)
		}
	}
}

// The CFS-quota negative control judges the limited loop alone.
func TestJudgeLimitedAlone(t *testing.T) {
	b := ThrottleBounds{LimitedMin: 0.05, LimitedMax: 0.15, UnlimitedMin: 0.3}
	if got := JudgeLimited(b, CPUUsage{}, CPUUsage{UsageNanos: 6e8, NrThrottled: 60}, 6e9); got != nil {
		t.Fatalf("an enforced limit: %v", got)
	}
	got := JudgeLimited(b, CPUUsage{}, CPUUsage{UsageNanos: 57e8}, 6e9)
	if len(got) != 2 || !strings.Contains(got[0], "the limit is not enforced") || !strings.Contains(got[1], "did not grow") {
		t.Fatalf("cpuCFSQuota false: want the escaped loop and the still counter, got %q", got)
	}
}

func TestJudgeHugePages2Mi(t *testing.T) {
	for _, tc := range []struct {
		name       string
		declared   int64
		total      string
		capacity   int64
		have, fail bool
		reasonHas  string
	}{
		{"pages, none declared", 0, "32", 64 << 20, true, false, ""},
		{"pages, declared", 64 << 20, "32", 64 << 20, true, false, ""},
		{"none, none declared: skip", 0, "0", 0, false, false, "no 2Mi huge pages"},
		{"none, declared: fail", 64 << 20, "0", 0, false, true, "declares hugePages2Mi 67108864"},
		// Reserved in the kernel but the kubelet started before: no capacity.
		{"meminfo only, declared: fail", 64 << 20, "32", 0, false, true, "capacity 0"},
		{"no meminfo field", 0, "", 0, false, false, `HugePages_Total=""`},
	} {
		have, reason, fail := JudgeHugePages2Mi(tc.declared, tc.total, tc.capacity)
		if have != tc.have || fail != tc.fail || !strings.Contains(reason, tc.reasonHas) {
			t.Errorf("%s: got (%v, %q, %v), want have=%v fail=%v reason containing %q", tc.name, have, reason, fail, tc.have, tc.fail, tc.reasonHas)
		}
	}
}

func TestWorkingSet(t *testing.T) {
	// Recorded: a kind node's (v1) idle gVisor pod cgroup, a VM's (v2) one.
	v1stat := "cache 1081344\nrss 30375936\ntotal_cache 1081344\ntotal_rss 30375936\ntotal_inactive_file 540672\ntotal_active_file 540672\n"
	if ws, err := WorkingSet(V1, "33435648\n", v1stat); err != nil || ws != 33435648-540672 {
		t.Errorf("v1: %d %v", ws, err)
	}
	v2stat := "anon 27000832\nfile 2162688\ninactive_file 1081344\nactive_file 1081344\n"
	if ws, err := WorkingSet(V2, "29999104", v2stat); err != nil || ws != 29999104-1081344 {
		t.Errorf("v2: %d %v", ws, err)
	}
	// v1's own inactive_file is not hierarchical: only total_ counts.
	if _, err := WorkingSet(V1, "100", "inactive_file 10\n"); err == nil || !strings.Contains(err.Error(), "total_inactive_file") {
		t.Errorf("v1 without total_inactive_file: %v", err)
	}
	if ws, _ := WorkingSet(V2, "100", "inactive_file 200\n"); ws != 0 {
		t.Errorf("inactive above usage: %d, want 0", ws)
	}
	if _, err := WorkingSet(V2, "max", "inactive_file 0\n"); err == nil {
		t.Error("want an error for a usage that is no number")
	}
}

func TestParseKernel(t *testing.T) {
	out := "f123fb9f-a6e9\nprocessor\t: 0\nvendor_id\t: AuthenticAMD\n\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\n"
	id, cpus, err := ParseKernel(out)
	if err != nil || id != "f123fb9f-a6e9" || cpus != 2 {
		t.Fatalf("got %q %d %v", id, cpus, err)
	}
	for _, bad := range []string{"", "f123\n", "processor\t: 0\n", "f123\nvendor_id\t: x\n"} {
		if _, _, err := ParseKernel(bad); err == nil {
			t.Errorf("%q: want an error", bad)
		}
	}
}

func TestThrottleTurns(t *testing.T) {
	k := func(id string, cpus int) Kernel { return Kernel{BootID: id, CPUs: cpus} }
	for _, c := range []struct {
		name  string
		nodes []Kernel
		want  int
	}{
		{"machines of their own", []Kernel{k("a", 2), k("b", 2), k("c", 2)}, 0},
		{"one node", []Kernel{k("a", 2)}, 0},
		{"kind on 2 CPUs", []Kernel{k("a", 2), k("a", 2), k("a", 2)}, 1},
		{"kind on 1 CPU", []Kernel{k("a", 1), k("a", 1)}, 1},
		{"kind on 8 CPUs", []Kernel{k("a", 8), k("a", 8), k("a", 8)}, 7},
		{"kind and a VM", []Kernel{k("a", 2), k("a", 2), k("a", 2), k("vm", 2)}, 1},
	} {
		if got := ThrottleTurns(c.nodes); got != c.want {
			t.Errorf("%s: got %d, want %d", c.name, got, c.want)
		}
	}
}

func TestParseUptime(t *testing.T) {
	got, err := ParseUptime("73861.52 140170.88\n")
	if err != nil || got != 73861520*time.Millisecond {
		t.Fatalf("ParseUptime = %v, %v; want 73861.52s", got, err)
	}
	for _, bad := range []string{"", "73861.52", "x 1.0", "-1.0 2.0", "1 2 3"} {
		if _, err := ParseUptime(bad); err == nil {
			t.Errorf("ParseUptime(%q) accepted", bad)
		}
	}
}

func TestDriverMismatch(t *testing.T) {
	ep := "unix:///run/containerd/containerd.sock"
	for _, c := range []struct {
		kubelet string
		rc      probeapi.RuntimeConfig
		want    bool
	}{
		{"systemd", probeapi.RuntimeConfig{Endpoint: ep, Linux: true, CgroupDriver: "systemd"}, false},
		{"cgroupfs", probeapi.RuntimeConfig{Endpoint: ep, Linux: true, CgroupDriver: "cgroupfs"}, false},
		{"systemd", probeapi.RuntimeConfig{Endpoint: ep, Linux: true, CgroupDriver: "cgroupfs"}, true},
		{"cgroupfs", probeapi.RuntimeConfig{Endpoint: ep, Linux: true, CgroupDriver: "systemd"}, true},
		// Nothing to compare: the kubelet keeps its configured driver.
		{"systemd", probeapi.RuntimeConfig{Endpoint: ep, Unimplemented: true}, false},
		{"systemd", probeapi.RuntimeConfig{Endpoint: ep}, false},
	} {
		got := DriverMismatch(c.kubelet, c.rc)
		if (got != "") != c.want {
			t.Errorf("kubelet %s, runtime %+v: %q", c.kubelet, c.rc, got)
		}
		if got != "" && !strings.Contains(got, ep) {
			t.Errorf("message does not name the endpoint: %q", got)
		}
	}
}
