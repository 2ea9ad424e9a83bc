// Package capfix removes capabilities a host cannot grant from OCI runtime specs.
//
// Some hosts (sandboxed VMs, nested containers) run with a capability bounding
// set that lacks capabilities Docker grants to --privileged containers, such as
// CAP_SYS_RESOURCE. runc then fails with "unable to apply caps: operation not
// permitted". A runc wrapper that calls Filter on the bundle's config.json (for
// create/run) or the --process file (for exec) before handing over to the real
// runc makes privileged containers, and so kind nodes, work on such hosts.
package capfix

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
)

// capNames maps capability numbers to the names OCI specs use.
// Order follows linux/capability.h.
var capNames = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER",
	"CAP_FSETID", "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
	"CAP_LINUX_IMMUTABLE", "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST",
	"CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
	"CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT", "CAP_SYS_PTRACE",
	"CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
	"CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD",
	"CAP_LEASE", "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP",
	"CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM",
	"CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF",
	"CAP_CHECKPOINT_RESTORE",
}

// Name returns the OCI name of capability number n.
func Name(n int) string {
	if n >= 0 && n < len(capNames) {
		return capNames[n]
	}
	return "CAP_" + strconv.Itoa(n)
}

// Missing returns the names of capabilities numbered 0..lastCap that are not
// in the bounding set mask bnd, sorted.
func Missing(bnd uint64, lastCap int) []string {
	var out []string
	for n := 0; n <= lastCap && n < 64; n++ {
		if bnd&(1<<uint(n)) == 0 {
			out = append(out, Name(n))
		}
	}
	sort.Strings(out)
	return out
}

// ParseCapBnd extracts the CapBnd mask from the text of /proc/<pid>/status.
func ParseCapBnd(status []byte) (uint64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "CapBnd:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("no CapBnd line in status")
}

// HostMissing reads this process's bounding set and the kernel's last
// capability and returns what the process cannot grant to a child.
func HostMissing() ([]string, error) {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return nil, err
	}
	bnd, err := ParseCapBnd(status)
	if err != nil {
		return nil, err
	}
	last, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return nil, err
	}
	lastCap, err := strconv.Atoi(strings.TrimSpace(string(last)))
	if err != nil {
		return nil, fmt.Errorf("parse cap_last_cap %q: %w", last, err)
	}
	return Missing(bnd, lastCap), nil
}

var capSets = []string{"bounding", "effective", "inheritable", "permitted", "ambient"}

// FilterProcess removes the named capabilities from every capability set of
// an OCI process object (JSON). Unknown fields are preserved. It reports
// whether anything was removed.
func FilterProcess(process json.RawMessage, drop []string) (json.RawMessage, bool, error) {
	var p map[string]json.RawMessage
	if err := json.Unmarshal(process, &p); err != nil {
		return nil, false, fmt.Errorf("decode process: %w", err)
	}
	raw, ok := p["capabilities"]
	if !ok || string(raw) == "null" {
		return process, false, nil
	}
	var caps map[string][]string
	if err := json.Unmarshal(raw, &caps); err != nil {
		return nil, false, fmt.Errorf("decode capabilities: %w", err)
	}
	dropSet := map[string]bool{}
	for _, d := range drop {
		dropSet[d] = true
	}
	changed := false
	for _, set := range capSets {
		list, ok := caps[set]
		if !ok {
			continue
		}
		kept := list[:0:0]
		for _, c := range list {
			if dropSet[c] {
				changed = true
				continue
			}
			kept = append(kept, c)
		}
		caps[set] = kept
	}
	if !changed {
		return process, false, nil
	}
	enc, err := json.Marshal(caps)
	if err != nil {
		return nil, false, err
	}
	p["capabilities"] = enc
	out, err := json.Marshal(p)
	return out, true, err
}

// FilterSpec applies FilterProcess to the "process" member of a full OCI
// runtime spec (config.json).
func FilterSpec(spec []byte, drop []string) ([]byte, bool, error) {
	var s map[string]json.RawMessage
	if err := json.Unmarshal(spec, &s); err != nil {
		return nil, false, fmt.Errorf("decode spec: %w", err)
	}
	proc, ok := s["process"]
	if !ok {
		return spec, false, nil
	}
	np, changed, err := FilterProcess(proc, drop)
	if err != nil || !changed {
		return spec, false, err
	}
	s["process"] = np
	out, err := json.Marshal(s)
	return out, true, err
}

// Target says which file of a runc invocation holds capabilities to filter.
type Target struct {
	// Path is the JSON file to rewrite; empty when the command has none.
	Path string
	// IsProcess is true for an exec --process file, false for a bundle config.json.
	IsProcess bool
}

// FindTarget inspects runc's command line (without argv[0]) and returns the
// file whose capabilities must be filtered. cwd is used for create/run
// without --bundle, as runc does.
func FindTarget(args []string, cwd string) Target {
	cmd := ""
	bundle := ""
	process := ""
	for i := 0; i < len(args); i++ {
		a := args[i]
		next := func() string {
			if i+1 < len(args) {
				i++
				return args[i]
			}
			return ""
		}
		switch {
		case a == "--bundle" || a == "-b":
			bundle = next()
		case strings.HasPrefix(a, "--bundle="):
			bundle = strings.TrimPrefix(a, "--bundle=")
		case a == "--process" || a == "-p":
			process = next()
		case strings.HasPrefix(a, "--process="):
			process = strings.TrimPrefix(a, "--process=")
		case cmd == "" && !strings.HasPrefix(a, "-"):
			cmd = a
		case cmd == "" && takesValue(a):
			// Global flags such as --root or --log take a separate value that
			// must not be mistaken for the subcommand.
			next()
		}
	}
	switch cmd {
	case "create", "run":
		if bundle == "" {
			bundle = cwd
		}
		return Target{Path: bundle + "/config.json"}
	case "exec":
		if process != "" {
			return Target{Path: process, IsProcess: true}
		}
	}
	return Target{}
}

// takesValue lists runc's global flags that take a separate value.
func takesValue(flag string) bool {
	switch flag {
	case "--root", "--log", "--log-format", "--criu", "--rootless":
		return true
	}
	return false
}
