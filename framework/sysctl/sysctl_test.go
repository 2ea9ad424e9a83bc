package sysctl

import (
	"strings"
	"testing"
)

func TestSafeFor(t *testing.T) {
	if len(SafeFor(34)) != 12 || len(SafeFor(21)) != 4 {
		t.Fatalf("34: %d, 21: %d", len(SafeFor(34)), len(SafeFor(21)))
	}
	if !IsSafe("net.ipv4.tcp_rmem", 34) || IsSafe("net.ipv4.tcp_rmem", 31) || IsSafe("kernel.msgmax", 34) {
		t.Fatal("IsSafe")
	}
}

func TestAllowed(t *testing.T) {
	if !Allowed(UnsafeNamespacedGroups, "kernel.msgmax") || !Allowed(UnsafeNamespacedGroups, "kernel.sem") ||
		!Allowed(UnsafeNamespacedGroups, "net.core.somaxconn") || !Allowed(UnsafeNamespacedGroups, "fs.mqueue.msg_max") {
		t.Fatal("namespaced groups must be allowed")
	}
	if Allowed(UnsafeNamespacedGroups, "kernel.semx") || Allowed(UnsafeNamespacedGroups, "vm.swappiness") || Allowed(nil, "kernel.msgmax") {
		t.Fatal("outside the allowlist must not be allowed")
	}
}

func TestExpect(t *testing.T) {
	allow := UnsafeNamespacedGroups
	cases := []struct {
		name, policy string
		allow        []string
		want         Outcome
	}{
		{"net.ipv4.ip_local_port_range", "baseline", nil, Runs},
		{"net.ipv4.ip_local_port_range", "privileged", nil, Runs},
		{"kernel.msgmax", "baseline", allow, RejectedAtAdmission},
		{"kernel.msgmax", "privileged", allow, Runs},
		{"kernel.msgmax", "privileged", nil, Forbidden},
		{"kernel.msgmax", "", nil, Forbidden},
	}
	for _, c := range cases {
		if got := Expect(c.name, 34, 34, c.allow, c.policy); got != c.want {
			t.Errorf("%s/%s/%v: %s, want %s", c.name, c.policy, c.allow, got, c.want)
		}
	}
	// A kubelet older than the API server (an upgrade under way): admission
	// lets a sysctl of the newer release through, the kubelet refuses it
	// unless it allowlists it.
	const newer = "net.ipv4.tcp_notsent_lowat" // safe since 1.37
	for _, c := range []struct {
		api, kubelet int
		allow        []string
		policy       string
		want         Outcome
	}{
		{37, 37, nil, "baseline", Runs},
		{37, 36, nil, "baseline", Forbidden},
		{37, 36, allow, "baseline", Runs},
		{36, 37, nil, "baseline", RejectedAtAdmission},
		{36, 37, nil, "privileged", Runs},
	} {
		if got := Expect(newer, c.api, c.kubelet, c.allow, c.policy); got != c.want {
			t.Errorf("%s API 1.%d kubelet 1.%d %v %s: %s, want %s", newer, c.api, c.kubelet, c.allow, c.policy, got, c.want)
		}
	}
}

func TestMinorOf(t *testing.T) {
	for in, want := range map[string]int{"v1.36.3": 36, "v1.37.2-gke.1200": 37, "1.35+": 35, "v1.34.0-rc.1": 34} {
		if got, err := MinorOf(in); err != nil || got != want {
			t.Errorf("MinorOf(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "v2.0.1", "v1", "v1.x"} {
		if _, err := MinorOf(in); err == nil {
			t.Errorf("MinorOf(%q): no error", in)
		}
	}
}

// The matrix proves its negatives: a node that wrongly allowlists, or a
// kubelet that rejects a safe sysctl, is reported with node and sysctl.
func TestMismatches(t *testing.T) {
	cells := []Cell{
		{Sysctl: "kernel.msgmax", Node: "worker2", PodSecurity: "privileged", Expected: Forbidden, Observed: Runs},
		{Sysctl: "net.ipv4.tcp_syncookies", Node: "worker1", PodSecurity: "privileged", Expected: Runs, Observed: Forbidden},
		{Sysctl: "kernel.msgmax", Node: "worker1", PodSecurity: "privileged", Expected: Runs, Observed: Runs},
	}
	m := Mismatches(cells)
	if len(m) != 2 || !strings.Contains(m[0], "worker1") || !strings.Contains(m[0], "net.ipv4.tcp_syncookies") || !strings.Contains(m[1], "worker2") {
		t.Fatalf("%v", m)
	}
	if !strings.Contains(Table(cells), "MISMATCH") {
		t.Fatal("table must mark mismatches")
	}
	admitted := Cell{Sysctl: "kernel.msgmax", Node: "worker1", PodSecurity: "baseline", Expected: RejectedAtAdmission, Observed: Runs}
	if m := admitted.Mismatch(); !strings.Contains(m, "PodSecurity plugin is disabled") {
		t.Fatalf("a pod Pod Security should have refused must point at the admission: %s", m)
	}
	if m := cells[2].Mismatch(); m != "" {
		t.Fatalf("a matching cell has no mismatch: %s", m)
	}
}

func TestHelpers(t *testing.T) {
	if NormalizeValue("1100\t60999\n") != "1100 60999" {
		t.Fatal("NormalizeValue")
	}
	for name, want := range map[string]string{
		"kernel.sem":                       "/proc/sys/kernel/sem",
		"kernel/shm_rmid_forced":           "/proc/sys/kernel/shm_rmid_forced",
		"net/ipv4/conf/eno2.100/rp_filter": "/proc/sys/net/ipv4/conf/eno2.100/rp_filter",
		"net.ipv4.conf.eno2/100.rp_filter": "/proc/sys/net/ipv4/conf/eno2.100/rp_filter",
	} {
		if got := ProcPath(name); got != want {
			t.Errorf("ProcPath(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestNamesMissingFile(t *testing.T) {
	const name = "net.ipv4.nodeconform_missing"
	for msg, want := range map[string]bool{
		// runc 1.1 (Debian bookworm), recorded.
		"failed to create containerd task: OCI runtime create failed: runc create failed: unable to start container process: error during container init: open /proc/sys/net/ipv4/nodeconform_missing: no such file or directory: unknown": true,
		// runc 1.4.3, recorded.
		"runc create failed: unable to start container process: error during container init: open sysctl net.ipv4.nodeconform_missing file: unsafe procfs detected: openat2 fsmount:fscontext:proc/./sys/net/ipv4/nodeconform_missing: no such file or directory": true,
		// Another sysctl's file, or another error.
		"open /proc/sys/net/ipv4/nodeconform_missing_other: no such file or directory": false,
		"open /proc/sys/net/ipv4/nodeconform_missing: permission denied":               false,
		"forbidden sysctl: \"net.ipv4.nodeconform_missing\" not allowlisted":           false,
	} {
		if got := NamesMissingFile(msg, name); got != want {
			t.Errorf("NamesMissingFile(%q) = %v, want %v", msg, got, want)
		}
	}
}
