// Package cgroups finds a container's and a pod's cgroups from what the
// kernel reports for the container's process, reads the limit files of
// cgroup v1 and v2, and holds the kubelet's formulas that turn requests
// and limits into those files, so specs compare exact values.
package cgroups

import (
	"bufio"
	"fmt"
	"math"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nodeconform/nodeconform/framework/probeapi"
)

// Version of the cgroup hierarchy on a node.
type Version int

// The two hierarchies.
const (
	V1 Version = 1
	V2 Version = 2
)

// Membership is a process's /proc/<pid>/cgroup: controller (or "" for the
// v2 unified hierarchy) to path.
type Membership map[string]string

// ParseProcCgroup parses /proc/<pid>/cgroup ("ID:controllers:path" lines).
func ParseProcCgroup(text string) (Membership, error) {
	m := Membership{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			return nil, fmt.Errorf("malformed cgroup line %q", line)
		}
		if parts[1] == "" {
			m[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			m[c] = parts[2]
		}
	}
	return m, sc.Err()
}

// Dir returns the directory under /sys/fs/cgroup holding controller's files
// for a cgroup path: v1 has one mount per controller, v2 one tree.
func Dir(v Version, controller, cgPath string) string {
	if v == V2 {
		return path.Join("/sys/fs/cgroup", cgPath)
	}
	return path.Join("/sys/fs/cgroup", controller, cgPath)
}

// PathOf returns the path of a process in the hierarchy holding controller.
func (m Membership) PathOf(v Version, controller string) (string, error) {
	if v == V2 {
		p, ok := m[""]
		if !ok {
			return "", fmt.Errorf("no cgroup v2 entry")
		}
		return p, nil
	}
	p, ok := m[controller]
	if !ok {
		return "", fmt.Errorf("no %s controller in the process's cgroups", controller)
	}
	return p, nil
}

// QoS of a pod as the kubelet places it.
type QoS string

// The QoS classes.
const (
	Guaranteed QoS = "Guaranteed"
	Burstable  QoS = "Burstable"
	BestEffort QoS = "BestEffort"
)

// QoSOfPodCgroup tells the QoS parent of a pod cgroup path from its name,
// for both drivers: systemd (kubepods-burstable-pod<uid>.slice) and
// cgroupfs (kubepods/burstable/pod<uid>).
func QoSOfPodCgroup(podPath string) (QoS, error) {
	base := path.Base(podPath)
	parent := path.Base(path.Dir(podPath))
	switch {
	case strings.Contains(base, "kubepods-burstable-pod") || (parent == "burstable" && strings.HasPrefix(base, "pod")):
		return Burstable, nil
	case strings.Contains(base, "kubepods-besteffort-pod") || (parent == "besteffort" && strings.HasPrefix(base, "pod")):
		return BestEffort, nil
	case strings.Contains(base, "kubepods-pod") || (parent == "kubepods" && strings.HasPrefix(base, "pod")):
		return Guaranteed, nil
	}
	return "", fmt.Errorf("%s is not a pod cgroup", podPath)
}

// PodCgroupOf cuts a cgroup path after the segment that names the pod
// (pod<uid> or …-pod<uid_with_underscores>.slice): from any process in the
// pod — a container, the pause process, a Kata shim or VMM in a sub-cgroup
// — to the pod-level cgroup.
func PodCgroupOf(cgPath, uid string) (string, bool) {
	parts := strings.Split(cgPath, "/")
	for i, p := range parts {
		if strings.Contains(p, "pod"+uid) || strings.Contains(p, "pod"+strings.ReplaceAll(uid, "-", "_")) {
			return strings.Join(parts[:i+1], "/"), true
		}
	}
	return "", false
}

// PodUIDInPath reports whether a pod cgroup path belongs to uid (systemd
// slices write the UID's dashes as underscores).
func PodUIDInPath(podPath, uid string) bool {
	base := path.Base(podPath)
	return strings.Contains(base, "pod"+uid) || strings.Contains(base, "pod"+strings.ReplaceAll(uid, "-", "_"))
}

// Kubelet's conversions (pkg/kubelet/cm/helpers_linux.go).
const (
	MinShares      = 2
	MaxShares      = 262144
	SharesPerCPU   = 1024
	MilliCPUToCPU  = 1000
	QuotaPeriod    = 100000 // µs, the kubelet's default cpuCFSQuotaPeriod
	MinQuotaPeriod = 1000
)

// SharesFromMilliCPU is the kubelet's MilliCPUToShares.
func SharesFromMilliCPU(milli int64) int64 {
	if milli == 0 {
		return MinShares
	}
	s := milli * SharesPerCPU / MilliCPUToCPU
	if s < MinShares {
		return MinShares
	}
	if s > MaxShares {
		return MaxShares
	}
	return s
}

// QuotaFromMilliCPU is the kubelet's MilliCPUToQuota: -1 means no limit.
func QuotaFromMilliCPU(milli, period int64) int64 {
	if milli == 0 {
		return -1
	}
	q := milli * period / MilliCPUToCPU
	if q < MinQuotaPeriod {
		q = MinQuotaPeriod
	}
	return q
}

// WeightFromShares is the linear cgroup v2 conversion of cpu.shares to
// cpu.weight that runtimes and the kubelet used until 2025 (runc ≤ 1.3,
// opencontainers/cgroups < v0.0.3).
func WeightFromShares(shares int64) int64 {
	if shares == 0 {
		return 0
	}
	return 1 + ((shares-2)*9999)/262142
}

// WeightFromSharesQuadratic is the conversion of opencontainers/cgroups
// v0.0.3 and later (runc 1.4, kubelet 1.35+): a quadratic in log2(shares)
// that maps 2, 1024 and 262144 shares to 1, 100 and 10000, so the default
// request weighs what an unconfigured cgroup does (100) instead of 39.
func WeightFromSharesQuadratic(shares int64) int64 {
	switch {
	case shares == 0:
		return 0
	case shares <= 2:
		return 1
	case shares >= 262144:
		return 10000
	}
	l := math.Log2(float64(shares))
	return int64(math.Ceil(math.Pow(10, (l*l+125*l)/612.0-7.0/34.0)))
}

// WeightsFromShares are the cpu.weight values a runtime may write for
// shares: the linear and the quadratic conversion (both are in use).
func WeightsFromShares(shares int64) []int64 {
	a, b := WeightFromShares(shares), WeightFromSharesQuadratic(shares)
	if a == b {
		return []int64{a}
	}
	return []int64{a, b}
}

// Limits are what a cgroup's files say, in the kubelet's units.
type Limits struct {
	// CPUQuota in µs per CPUPeriod; -1 for no limit.
	CPUQuota  int64 `json:"cpuQuota"`
	CPUPeriod int64 `json:"cpuPeriod"`
	// CPUShares (v1) or the shares equivalent of cpu.weight (v2 keeps the weight).
	CPUShares int64 `json:"cpuShares,omitempty"`
	CPUWeight int64 `json:"cpuWeight,omitempty"`
	// MemoryLimit in bytes; -1 for no limit.
	MemoryLimit int64 `json:"memoryLimit"`
	// OOMGroup is v2's memory.oom.group: on OOM the kernel kills every
	// process of the cgroup, not only the largest (nil on v1, which has
	// no such mode).
	OOMGroup *bool `json:"oomGroup,omitempty"`
	// Files read, with their raw content.
	Files map[string]string `json:"files"`
}

// noLimitV1 is what memory.limit_in_bytes says without a limit (page-rounded
// LONG_MAX); anything above 2^62 is treated as unlimited.
const unlimitedAbove = int64(1) << 62

// ParseV1 interprets v1 file contents (cpu.cfs_quota_us, cpu.cfs_period_us,
// cpu.shares, memory.limit_in_bytes).
func ParseV1(files map[string]string) (Limits, error) {
	l := Limits{Files: files}
	var err error
	if l.CPUQuota, err = intFile(files, "cpu.cfs_quota_us"); err != nil {
		return l, err
	}
	if l.CPUPeriod, err = intFile(files, "cpu.cfs_period_us"); err != nil {
		return l, err
	}
	if l.CPUShares, err = intFile(files, "cpu.shares"); err != nil {
		return l, err
	}
	mem, err := uintFile(files, "memory.limit_in_bytes")
	if err != nil {
		return l, err
	}
	l.MemoryLimit = int64(mem)
	if mem > uint64(unlimitedAbove) {
		l.MemoryLimit = -1
	}
	return l, nil
}

// ParseV2 interprets v2 file contents (cpu.max, cpu.weight, memory.max).
func ParseV2(files map[string]string) (Limits, error) {
	l := Limits{Files: files}
	f := strings.Fields(files["cpu.max"])
	if len(f) != 2 {
		return l, fmt.Errorf("cpu.max %q: want \"QUOTA PERIOD\"", files["cpu.max"])
	}
	if f[0] == "max" {
		l.CPUQuota = -1
	} else if q, err := strconv.ParseInt(f[0], 10, 64); err == nil {
		l.CPUQuota = q
	} else {
		return l, fmt.Errorf("cpu.max quota %q: %w", f[0], err)
	}
	var err error
	if l.CPUPeriod, err = strconv.ParseInt(f[1], 10, 64); err != nil {
		return l, fmt.Errorf("cpu.max period %q: %w", f[1], err)
	}
	if l.CPUWeight, err = intFile(files, "cpu.weight"); err != nil {
		return l, err
	}
	m := strings.TrimSpace(files["memory.max"])
	if m == "max" {
		l.MemoryLimit = -1
	} else if l.MemoryLimit, err = strconv.ParseInt(m, 10, 64); err != nil {
		return l, fmt.Errorf("memory.max %q: %w", m, err)
	}
	if g, ok := files[OOMGroupFile]; ok {
		switch strings.TrimSpace(g) {
		case "0":
			l.OOMGroup = new(false)
		case "1":
			l.OOMGroup = new(true)
		default:
			return l, fmt.Errorf("%s %q: want 0 or 1", OOMGroupFile, g)
		}
	}
	return l, nil
}

// OOMGroupFile is v2's switch between killing one process and the whole
// cgroup on OOM; the kubelet writes 1 into every container's cgroup unless
// singleProcessOOMKill is set.
const OOMGroupFile = "memory.oom.group"

// Files lists the limit files of a version, by controller.
func Files(v Version) map[string][]string {
	if v == V2 {
		return map[string][]string{"": {"cpu.max", "cpu.weight", "memory.max", OOMGroupFile}}
	}
	return map[string][]string{"cpu": {"cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.shares"}, "memory": {"memory.limit_in_bytes"}}
}

// Expected is what the kubelet should write for requests and limits
// (millicores, bytes; 0 for unset).
type Expected struct {
	CPURequestMilli, CPULimitMilli int64
	MemoryLimit                    int64
	// SingleProcessOOMKill is the kubelet's mode the container's v2
	// memory.oom.group must show (nil: not judged; v1 has no such file).
	SingleProcessOOMKill *bool
}

// Check compares limits read from cgroup files with the expectation and
// returns one message per mismatch.
func Check(v Version, e Expected, l Limits) []string {
	var out []string
	wantQuota := QuotaFromMilliCPU(e.CPULimitMilli, l.CPUPeriod)
	if l.CPUQuota != wantQuota {
		out = append(out, fmt.Sprintf("cpu quota %d µs per %d µs, want %d (limit %dm)", l.CPUQuota, l.CPUPeriod, wantQuota, e.CPULimitMilli))
	}
	shares := SharesFromMilliCPU(e.CPURequestMilli)
	if v == V1 && l.CPUShares != shares {
		out = append(out, fmt.Sprintf("cpu.shares %d, want %d (request %dm)", l.CPUShares, shares, e.CPURequestMilli))
	}
	if v == V2 {
		ok := false
		for _, w := range WeightsFromShares(shares) {
			ok = ok || l.CPUWeight == w
		}
		if !ok {
			out = append(out, fmt.Sprintf("cpu.weight %d, want %d (linear) or %d (quadratic conversion) for %d shares (request %dm)",
				l.CPUWeight, WeightFromShares(shares), WeightFromSharesQuadratic(shares), shares, e.CPURequestMilli))
		}
	}
	wantMem := int64(-1)
	if e.MemoryLimit > 0 {
		wantMem = e.MemoryLimit
	}
	if l.MemoryLimit != wantMem {
		out = append(out, fmt.Sprintf("memory limit %d, want %d", l.MemoryLimit, wantMem))
	}
	if v == V2 && e.SingleProcessOOMKill != nil {
		want := !*e.SingleProcessOOMKill
		switch {
		case l.OOMGroup == nil:
			out = append(out, fmt.Sprintf("no %s read, want %s", OOMGroupFile, oomGroupText(want)))
		case *l.OOMGroup != want:
			out = append(out, fmt.Sprintf("%s %s, want %s (singleProcessOOMKill %t)", OOMGroupFile, oomGroupText(*l.OOMGroup), oomGroupText(want), *e.SingleProcessOOMKill))
		}
	}
	return out
}

func oomGroupText(group bool) string {
	if group {
		return "1 (an OOM kills the whole container)"
	}
	return "0 (an OOM kills one process)"
}

// CPUUsage is cumulative CPU time in nanoseconds with throttling counters.
type CPUUsage struct {
	UsageNanos    int64 `json:"usageNanos"`
	NrThrottled   int64 `json:"nrThrottled"`
	ThrottledNano int64 `json:"throttledNanos"`
	// ParentThrottles is nr_throttled of each ancestor cgroup, by its
	// directory, read with the rest; nil when they were not read.
	ParentThrottles map[string]int64 `json:"parentThrottles,omitempty"`
}

// NrThrottled is cpu.stat's nr_throttled, if the file has one (a v2
// root's cpu.stat does not).
func NrThrottled(stat string) (int64, bool) {
	n, ok := keyValues(stat)["nr_throttled"]
	return n, ok
}

// Ancestors are the cgroup paths above cgPath, nearest first, up to and
// including the root "/".
func Ancestors(cgPath string) []string {
	var out []string
	p := path.Clean("/" + cgPath)
	for p != "/" {
		p = path.Dir(p)
		out = append(out, p)
	}
	return out
}

// ThrottledParents lists each ancestor whose nr_throttled grew between
// two readings, as "dir (nr_throttled a -> b)", sorted by directory.
func ThrottledParents(before, after CPUUsage) []string {
	var out []string
	for dir, b := range after.ParentThrottles {
		if a, ok := before.ParentThrottles[dir]; ok && b > a {
			out = append(out, fmt.Sprintf("%s (nr_throttled %d -> %d)", dir, a, b))
		}
	}
	sort.Strings(out)
	return out
}

// Contended reports a sample whose unlimited loop got less than
// UnlimitedMin while no cgroup on its path, its own or an ancestor read
// with it, was throttled: the host's CPU was busy, which says nothing
// about bandwidth control.
func (b ThrottleBounds) Contended(s ThrottleSample) bool {
	return s.UnlimitedBefore.ParentThrottles != nil && s.UnlimitedAfter.ParentThrottles != nil &&
		CPUFraction(s.UnlimitedBefore, s.UnlimitedAfter, s.WallNanos) < b.UnlimitedMin &&
		s.UnlimitedAfter.NrThrottled <= s.UnlimitedBefore.NrThrottled &&
		len(ThrottledParents(s.UnlimitedBefore, s.UnlimitedAfter)) == 0
}

// ParseCPUStatV1 reads cpuacct.usage and cpu.stat (nr_throttled, throttled_time).
func ParseCPUStatV1(usage, stat string) (CPUUsage, error) {
	u, err := strconv.ParseInt(strings.TrimSpace(usage), 10, 64)
	if err != nil {
		return CPUUsage{}, fmt.Errorf("cpuacct.usage %q: %w", usage, err)
	}
	kv := keyValues(stat)
	return CPUUsage{UsageNanos: u, NrThrottled: kv["nr_throttled"], ThrottledNano: kv["throttled_time"]}, nil
}

// ParseCPUStatV2 reads cpu.stat (usage_usec, nr_throttled, throttled_usec).
func ParseCPUStatV2(stat string) (CPUUsage, error) {
	kv := keyValues(stat)
	if _, ok := kv["usage_usec"]; !ok {
		return CPUUsage{}, fmt.Errorf("cpu.stat without usage_usec: %q", stat)
	}
	return CPUUsage{UsageNanos: kv["usage_usec"] * 1000, NrThrottled: kv["nr_throttled"], ThrottledNano: kv["throttled_usec"] * 1000}, nil
}

// ParseUptime reads /proc/uptime ("12345.67 23456.78": seconds since
// boot, then idle time) as the time since boot. Its 10 ms resolution is
// 0.3% of a 3 s window.
func ParseUptime(s string) (time.Duration, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0, fmt.Errorf("/proc/uptime %q: want two fields", s)
	}
	secs, err := strconv.ParseFloat(f[0], 64)
	if err != nil || secs < 0 {
		return 0, fmt.Errorf("/proc/uptime %q: not a time since boot", s)
	}
	return time.Duration(secs * float64(time.Second)), nil
}

// CPUFraction is the share of one CPU used between two readings.
func CPUFraction(a, b CPUUsage, wallNanos int64) float64 {
	if wallNanos <= 0 {
		return math.NaN()
	}
	return float64(b.UsageNanos-a.UsageNanos) / float64(wallNanos)
}

// ThrottleBounds are the CPU fractions a throttling measurement is
// judged against (config: cgroups.limitedCPUMin/Max, unlimitedCPUMin).
type ThrottleBounds struct {
	LimitedMin, LimitedMax, UnlimitedMin float64
}

// PastQuota reports whether the sample's limited loop ran above
// LimitedMax: contention on a busy host only lowers what a loop gets, so
// such a sample fails for good and is not measured again.
func (b ThrottleBounds) PastQuota(s ThrottleSample) bool {
	return CPUFraction(s.LimitedBefore, s.LimitedAfter, s.WallNanos) > b.LimitedMax
}

// ThrottleSample is one measurement: a busy loop under a CPU limit and
// one without, each read before and after the same wall-clock window.
type ThrottleSample struct {
	LimitedBefore, LimitedAfter     CPUUsage
	UnlimitedBefore, UnlimitedAfter CPUUsage
	WallNanos                       int64
}

// JudgeThrottle returns every way the sample contradicts CFS bandwidth
// control (nil when it holds): the limited loop as JudgeLimited; the
// unlimited loop must not be throttled, by its own cgroup or by an
// ancestor (a quota on kubepods or a slice throttles the parent's
// counter, not the container's), and must get far more than the limit.
// Where the ancestors' counters were read, a loop below that floor with
// no cgroup on its path throttled is contention (Contended), not a
// finding; where they were not, the floor is what catches a parent's
// quota.
func JudgeThrottle(b ThrottleBounds, s ThrottleSample) []string {
	ff := CPUFraction(s.UnlimitedBefore, s.UnlimitedAfter, s.WallNanos)
	if math.IsNaN(ff) {
		return []string{fmt.Sprintf("no measurement window (%d ns)", s.WallNanos)}
	}
	out := JudgeLimited(b, s.LimitedBefore, s.LimitedAfter, s.WallNanos)
	if s.UnlimitedAfter.NrThrottled > s.UnlimitedBefore.NrThrottled {
		out = append(out, fmt.Sprintf("busy loop without a limit was throttled by its own cgroup (%d -> %d)", s.UnlimitedBefore.NrThrottled, s.UnlimitedAfter.NrThrottled))
	}
	if parents := ThrottledParents(s.UnlimitedBefore, s.UnlimitedAfter); len(parents) > 0 {
		out = append(out, fmt.Sprintf("busy loop without a limit was throttled by a parent cgroup's quota (%.3f of a CPU): %s", ff, strings.Join(parents, ", ")))
	}
	if ff < b.UnlimitedMin && !b.Contended(s) {
		out = append(out, fmt.Sprintf("busy loop without a limit used only %.3f of a CPU, wanted at least %.2f", ff, b.UnlimitedMin))
	}
	return out
}

// JudgeLimited returns every way a busy loop under a CPU limit, read
// before and after wallNanos, contradicts its quota: it must run, stay
// under the ceiling and be throttled by its own cgroup.
func JudgeLimited(b ThrottleBounds, before, after CPUUsage, wallNanos int64) []string {
	fl := CPUFraction(before, after, wallNanos)
	var out []string
	switch {
	case math.IsNaN(fl):
		return []string{fmt.Sprintf("no measurement window (%d ns)", wallNanos)}
	case fl < b.LimitedMin:
		out = append(out, fmt.Sprintf("busy loop under the limit used %.3f of a CPU, wanted at least %.2f", fl, b.LimitedMin))
	case fl > b.LimitedMax:
		out = append(out, fmt.Sprintf("busy loop under the limit used %.3f of a CPU, wanted at most %.2f: the limit is not enforced", fl, b.LimitedMax))
	}
	if after.NrThrottled <= before.NrThrottled {
		out = append(out, fmt.Sprintf("throttle counter of the limited loop did not grow (%d -> %d)", before.NrThrottled, after.NrThrottled))
	}
	return out
}

func keyValues(text string) map[string]int64 {
	out := map[string]int64{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 2 {
			if v, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				out[f[0]] = v
			}
		}
	}
	return out
}

func intFile(files map[string]string, name string) (int64, error) {
	raw, ok := files[name]
	if !ok {
		return 0, fmt.Errorf("%s not read", name)
	}
	v, err := strconv.ParseInt(strings.TrimSpace(raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %w", name, raw, err)
	}
	return v, nil
}

func uintFile(files map[string]string, name string) (uint64, error) {
	raw, ok := files[name]
	if !ok {
		return 0, fmt.Errorf("%s not read", name)
	}
	v, err := strconv.ParseUint(strings.TrimSpace(raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q: %w", name, raw, err)
	}
	return v, nil
}

// ExpectedPodParent is the cgroup a pod of class q must sit in under the
// kubelet's cgroupRoot, cgroup driver and cgroupsPerQOS, as the kubelet
// names it: the systemd driver turns the components
// [root..., kubepods, qos] into nested slices ("/kubelet.slice/
// kubelet-kubepods.slice/kubelet-kubepods-burstable.slice"), cgroupfs
// joins them as directories ("/kubelet/kubepods/burstable"). Guaranteed
// pods sit directly in kubepods.
func ExpectedPodParent(driver, cgroupRoot string, perQOS bool, q QoS) string {
	var parts []string
	for _, p := range strings.Split(cgroupRoot, "/") {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if perQOS {
		parts = append(parts, "kubepods")
		switch q {
		case Burstable:
			parts = append(parts, "burstable")
		case BestEffort:
			parts = append(parts, "besteffort")
		}
	}
	if driver != "systemd" {
		return "/" + strings.Join(parts, "/")
	}
	if len(parts) == 0 {
		return "/"
	}
	// systemd writes "-" inside a component as "_" (the kubelet's
	// escapeSystemdCgroupName), since "-" separates the levels.
	var b strings.Builder
	prefix := ""
	for _, p := range parts {
		p = strings.ReplaceAll(p, "-", "_")
		if prefix == "" {
			prefix = p
		} else {
			prefix += "-" + p
		}
		b.WriteString("/" + prefix + ".slice")
	}
	return b.String()
}

// OOMFile is the memory controller file that counts OOM kills: v2's
// memory.events (hierarchical: a pod cgroup counts its containers' kills)
// and v1's memory.oom_control (that cgroup's own kills only).
func OOMFile(v Version) string {
	if v == V2 {
		return "memory.events"
	}
	return "memory.oom_control"
}

// OOMKills reads the oom_kill counter of OOMFile's content, and on v2 says
// what is wrong when a pod cgroup whose container the kubelet reports
// OOMKilled counts none. v1 counts kills per memory cgroup, and the
// killed container's cgroup is gone after its restart, so a pod cgroup's
// zero there proves nothing and is not a problem.
func OOMKills(v Version, text string) (int64, string, error) {
	kv := keyValues(text)
	n, ok := kv["oom_kill"]
	if !ok {
		return 0, "", fmt.Errorf("%s has no oom_kill counter: %q", OOMFile(v), strings.TrimSpace(text))
	}
	if v == V2 && n == 0 {
		return 0, "the kubelet reports OOMKilled but the pod cgroup's memory.events counts no oom_kill", nil
	}
	return n, "", nil
}

// JudgeOOMMode says what is wrong with the kind of kill v2's memory.events
// (OOMFile's content, read after a kill) counts, against the kubelet's
// mode: oom_group_kill counts kills of a whole cgroup (memory.oom.group
// 1), so after a kill it is zero where one process was killed. v1 has no
// group kill, and a kernel without the counter proves nothing: "" for
// both.
func JudgeOOMMode(v Version, singleProcessOOMKill bool, text string) string {
	n, counted := keyValues(text)["oom_group_kill"]
	if v != V2 || !counted {
		return ""
	}
	switch {
	case !singleProcessOOMKill && n == 0:
		return "memory.events counts no oom_group_kill: the kernel killed one process, not the whole container (singleProcessOOMKill false wants the group)"
	case singleProcessOOMKill && n > 0:
		return fmt.Sprintf("memory.events counts %d oom_group_kill: the kernel killed the whole container (singleProcessOOMKill true wants one process)", n)
	}
	return ""
}

// HugeTLB2MiLimitFile is the hugetlb controller's limit file for 2Mi pages.
func HugeTLB2MiLimitFile(v Version) string {
	if v == V2 {
		return "hugetlb.2MB.max"
	}
	return "hugetlb.2MB.limit_in_bytes"
}

// JudgeHugePages2Mi decides whether a node's 2Mi huge pages can be
// checked, from /proc/meminfo's HugePages_Total, the Node's capacity and
// what its profile group declares (0: nothing). A node without pages is a
// skip, unless its group declares pages: then a skip would hide a boot that
// lost its reservation, and it is a failure.
func JudgeHugePages2Mi(declaredBytes int64, total string, capacityBytes int64) (have bool, reason string, fail bool) {
	if total != "" && total != "0" && capacityBytes > 0 {
		return true, "", false
	}
	found := fmt.Sprintf("HugePages_Total=%q, capacity %d bytes", total, capacityBytes)
	if declaredBytes > 0 {
		return false, fmt.Sprintf("the profile declares hugePages2Mi %d bytes, the node has none (%s)", declaredBytes, found), true
	}
	return false, "no 2Mi huge pages (" + found + ")", false
}

// MemoryUsageFiles are the files WorkingSet reads in a memory cgroup.
func MemoryUsageFiles(v Version) (usage, stat string) {
	if v == V2 {
		return "memory.current", "memory.stat"
	}
	return "memory.usage_in_bytes", "memory.stat"
}

// WorkingSet is a memory cgroup's working set as the kubelet and
// metrics-server count it: usage minus inactive file pages (v1
// total_inactive_file, hierarchical; v2 inactive_file), never below 0.
func WorkingSet(v Version, usage, stat string) (int64, error) {
	u, err := strconv.ParseInt(strings.TrimSpace(usage), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("memory usage %q: %w", strings.TrimSpace(usage), err)
	}
	key := "total_inactive_file"
	if v == V2 {
		key = "inactive_file"
	}
	inactive, ok := keyValues(stat)[key]
	if !ok {
		return 0, fmt.Errorf("memory.stat has no %s", key)
	}
	if inactive > u {
		return 0, nil
	}
	return u - inactive, nil
}

// Kernel is what the throttling check knows of the kernel a node runs
// on: kind nodes share their host's, real machines have their own.
type Kernel struct {
	BootID string
	CPUs   int
}

// ParseKernel reads the output of `cat /proc/sys/kernel/random/boot_id
// /proc/cpuinfo` (one read-only command, allowed in verify mode): the
// boot ID, then one "processor" line per CPU the kernel has.
func ParseKernel(out string) (bootID string, cpus int, err error) {
	first, rest, _ := strings.Cut(strings.TrimLeft(out, "\n"), "\n")
	bootID = strings.TrimSpace(first)
	if bootID == "" || strings.Contains(bootID, ":") {
		return "", 0, fmt.Errorf("kernel: want a boot_id first, got %q", first)
	}
	for _, line := range strings.Split(rest, "\n") {
		if k, _, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "processor" {
			cpus++
		}
	}
	if cpus == 0 {
		return "", 0, fmt.Errorf("kernel: no processor in /proc/cpuinfo")
	}
	return bootID, cpus, nil
}

// ThrottleTurns is how many nodes may measure their busy loops at once:
// 0 (no bound) when every node has a kernel of its own; when every node
// shares one kernel, one node per CPU of it but one (a node's turn is
// one unlimited loop, at most a CPU, and a 100m one; the CPU left over
// serves the cluster itself, its control plane, runtime and the suite:
// with a turn per CPU, two unlimited loops on a 2-CPU host got 0.207 of
// a CPU in each of 3 windows on a loaded CI machine); one at a time
// when kernels are mixed, since a kernel of its own may still be a VM
// on the shared kernel's CPUs.
func ThrottleTurns(nodes []Kernel) int {
	cpus := map[string]int{}
	for _, k := range nodes {
		cpus[k.BootID] = k.CPUs
	}
	switch {
	case len(cpus) == len(nodes):
		return 0
	case len(cpus) == 1:
		return max(1, nodes[0].CPUs-1)
	}
	return 1
}

// DriverMismatch returns why a runtime's CRI RuntimeConfig answer
// contradicts the kubelet's running cgroup driver, or "". The kubelet
// (v1.34 on) adopts the runtime's driver when it starts, so a mismatch
// means the runtime's driver changed under a running kubelet: the
// runtime then creates containers' cgroups where the kubelet's pod
// cgroups are not. A runtime without the call, or one that says nothing
// of Linux, leaves the kubelet's configured driver in force: no mismatch
// can be read.
func DriverMismatch(kubelet string, rc probeapi.RuntimeConfig) string {
	if rc.Unimplemented || !rc.Linux || rc.CgroupDriver == kubelet {
		return ""
	}
	return fmt.Sprintf("the container runtime at %s uses cgroup driver %s, the kubelet %s: containers' cgroups are not created under the kubelet's pod cgroups "+
		"(the kubelet takes the runtime's driver when it starts: restart it after changing the runtime's driver, or change the runtime back)",
		rc.Endpoint, rc.CgroupDriver, kubelet)
}
