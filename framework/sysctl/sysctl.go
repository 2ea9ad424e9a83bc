// Package sysctl holds the rules that decide what should happen to a pod
// that sets sysctls (SPEC §2, seed 003): which sysctls are safe in a
// Kubernetes release, which an allowlist admits, and the expected outcome
// of each sysctl × node × namespace policy, compared with what happened.
package sysctl

import (
	"fmt"
	"sort"
	"strings"
)

// Safe is one sysctl the kubelet allows by default, from the release that
// made it safe (pkg/kubelet/sysctl/safe_sysctls.go).
type Safe struct {
	Name  string
	Since int // Kubernetes minor version
	// Value is a valid, non-default value to request in tests.
	Value string
}

// SafeSysctls lists the safe set up to v1.37 (the kubelet's
// pkg/kubelet/sysctl/safe_sysctls.go of each release).
var SafeSysctls = []Safe{
	{"kernel.shm_rmid_forced", 0, "1"},
	{"net.ipv4.ip_local_port_range", 0, "1100 60999"},
	{"net.ipv4.tcp_syncookies", 0, "0"},
	{"net.ipv4.ping_group_range", 0, "0 2147483647"},
	{"net.ipv4.ip_unprivileged_port_start", 22, "100"},
	{"net.ipv4.ip_local_reserved_ports", 27, "30000-30010"},
	{"net.ipv4.tcp_keepalive_time", 29, "600"},
	{"net.ipv4.tcp_fin_timeout", 29, "30"},
	{"net.ipv4.tcp_keepalive_intvl", 29, "30"},
	{"net.ipv4.tcp_keepalive_probes", 29, "5"},
	{"net.ipv4.tcp_rmem", 32, "4096 87380 6291000"},
	{"net.ipv4.tcp_wmem", 32, "4096 16384 4194000"},
	{"net.ipv4.tcp_slow_start_after_idle", 37, "0"},
	{"net.ipv4.tcp_notsent_lowat", 37, "16384"},
}

// SafeFor returns the safe sysctls of a Kubernetes minor version.
func SafeFor(minor int) []Safe {
	var out []Safe
	for _, s := range SafeSysctls {
		if s.Since <= minor {
			out = append(out, s)
		}
	}
	return out
}

// MinorOf reads the minor version from a Kubernetes version string as
// nodes report their kubelet's ("v1.36.3", "v1.36.3-gke.1200", "1.36+").
func MinorOf(version string) (int, error) {
	parts := strings.SplitN(strings.TrimPrefix(version, "v"), ".", 3)
	if len(parts) < 2 || parts[0] != "1" {
		return 0, fmt.Errorf("version %q: not v1.<minor>", version)
	}
	digits := parts[1]
	if i := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		digits = digits[:i]
	}
	var minor int
	if _, err := fmt.Sscanf(digits, "%d", &minor); err != nil {
		return 0, fmt.Errorf("version %q: minor %q: %w", version, parts[1], err)
	}
	return minor, nil
}

// IsSafe reports whether name is in the safe set of minor.
func IsSafe(name string, minor int) bool {
	for _, s := range SafeFor(minor) {
		if s.Name == name {
			return true
		}
	}
	return false
}

// UnsafeNamespacedGroups are the only unsafe sysctls the kubelet accepts in
// --allowed-unsafe-sysctls; anything else would not be namespaced.
var UnsafeNamespacedGroups = []string{"kernel.shm*", "kernel.msg*", "kernel.sem", "fs.mqueue.*", "net.*"}

// Allowed reports whether an allowlist (kubelet allowedUnsafeSysctls)
// admits name; a trailing * matches a prefix.
func Allowed(allowlist []string, name string) bool {
	for _, p := range allowlist {
		if strings.HasSuffix(p, "*") {
			if strings.HasPrefix(name, strings.TrimSuffix(p, "*")) {
				return true
			}
		} else if p == name {
			return true
		}
	}
	return false
}

// Outcome of creating a pod with a sysctl.
type Outcome string

// Outcomes, from the first gate that stops the pod.
const (
	// Runs: the pod runs and the value is set inside it.
	Runs Outcome = "runs"
	// RejectedAtAdmission: Pod Security admission refuses the pod.
	RejectedAtAdmission Outcome = "rejected-at-admission"
	// Forbidden: the kubelet rejects it (SysctlForbidden).
	Forbidden Outcome = "kubelet-forbidden"
)

// Expect returns what should happen to a pod setting name on a node with
// allowlist, in a namespace enforcing podSecurity. Pod Security admission
// judges with the API server's release (apiMinor: the namespaces do not
// pin a version), the kubelet with its own (kubeletMinor), which may be
// older while a cluster is upgraded.
func Expect(name string, apiMinor, kubeletMinor int, allowlist []string, podSecurity string) Outcome {
	if !IsSafe(name, apiMinor) && (podSecurity == "baseline" || podSecurity == "restricted") {
		return RejectedAtAdmission
	}
	if IsSafe(name, kubeletMinor) || Allowed(allowlist, name) {
		return Runs
	}
	return Forbidden
}

// Cell is one entry of the outcome matrix.
type Cell struct {
	Sysctl      string  `json:"sysctl"`
	Node        string  `json:"node"`
	PodSecurity string  `json:"podSecurity"`
	Expected    Outcome `json:"expected"`
	Observed    Outcome `json:"observed"`
	Detail      string  `json:"detail,omitempty"`
}

// Mismatches returns a message for every cell whose observed outcome is
// not the expected one, naming node and sysctl.
func Mismatches(cells []Cell) []string {
	var out []string
	for _, c := range cells {
		if m := c.Mismatch(); m != "" {
			out = append(out, "node "+c.Node+": "+m)
		}
	}
	sort.Strings(out)
	return out
}

// Mismatch says how the cell's outcome differs from the expected one, or
// "" when it does not.
func (c Cell) Mismatch() string {
	if c.Observed == c.Expected {
		return ""
	}
	m := fmt.Sprintf("sysctl %s, namespace %s: expected %s, observed %s (%s)", c.Sysctl, c.PodSecurity, c.Expected, c.Observed, c.Detail)
	if c.Expected == RejectedAtAdmission {
		m += fmt.Sprintf("; Pod Security admission let it through at level %s: its PodSecurity plugin is disabled, or exempts this namespace or user", c.PodSecurity)
	}
	return m
}

// Table renders the matrix for the report.
func Table(cells []Cell) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-32s %-28s %-11s %-22s %-22s\n", "SYSCTL", "NODE", "NAMESPACE", "EXPECTED", "OBSERVED")
	for _, c := range cells {
		mark := ""
		if c.Expected != c.Observed {
			mark = "  <-- MISMATCH"
		}
		fmt.Fprintf(&b, "%-32s %-28s %-11s %-22s %-22s%s\n", c.Sysctl, c.Node, c.PodSecurity, c.Expected, c.Observed, mark)
	}
	return b.String()
}

// NormalizeValue makes kernel output comparable with a requested value:
// multi-value sysctls print tab-separated fields.
func NormalizeValue(v string) string {
	return strings.Join(strings.Fields(v), " ")
}

// NamesMissingFile reports whether a runtime's error message says the
// sysctl's /proc/sys file does not exist. runc up to 1.3 writes
// "open /proc/sys/net/ipv4/x: no such file or directory"; runc 1.4 opens it
// through a private procfs: "open sysctl net.ipv4.x file: unsafe procfs
// detected: openat2 fsmount:fscontext:proc/./sys/net/ipv4/x: no such file
// or directory". Both name the file under sys/.
func NamesMissingFile(msg, name string) bool {
	return strings.Contains(msg, strings.TrimPrefix(ProcPath(name), "/proc/")+":") && strings.Contains(msg, "no such file or directory")
}

// ProcPath is the /proc/sys file of a sysctl name. Kubernetes accepts
// both of sysctl(8)'s notations: a name whose first separator is a slash
// is the path itself (kernel/shm_rmid_forced, net/ipv4/conf/eno2.100/rp_filter,
// where a dot is part of a component); in a dotted name a slash stands
// for a dot in the path (net.ipv4.conf.eno2/100.rp_filter).
func ProcPath(name string) string {
	if i := strings.IndexAny(name, "./"); i >= 0 && name[i] == '/' {
		return "/proc/sys/" + name
	}
	return "/proc/sys/" + strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, name)
}
