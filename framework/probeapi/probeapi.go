// Package probeapi is the JSON contract between nodeconform-probe and the
// framework: each probe subcommand prints one of these objects. It has no
// dependencies, so the probe binary stays small.
package probeapi

import "github.com/nodeconform/nodeconform/framework/procfs"

// readOnly are the subcommands that change nothing, in the pod or on the
// node: running one twice answers the same question twice.
var readOnly = map[string]bool{"get": true, "lookup": true, "ns": true, "mounts": true, "read": true, "read-all": true, "cgroup-of": true, "cri-runtime-config": true, "nft-table": true}

// ReadOnly reports whether the probe command args (subcommand first)
// changes nothing, so that a run whose outcome is unknown may go again.
func ReadOnly(args []string) bool { return len(args) > 0 && readOnly[args[0]] }

// Error is printed (with exit code 1) when a subcommand fails.
type Error struct {
	Error string `json:"error"`
}

// Get is the answer of `get URL`.
type Get struct {
	URL      string `json:"url"`
	Status   int    `json:"status"`
	Hostname string `json:"hostname"`
	Remote   string `json:"remote"`
	Millis   int64  `json:"millis"`
}

// Lookup is the answer of `lookup NAME`.
type Lookup struct {
	Name      string   `json:"name"`
	Addresses []string `json:"addresses"`
}

// NS is the answer of `ns`.
type NS struct {
	Processes []procfs.Process `json:"processes"`
}

// Mounts is the answer of `mounts`.
type Mounts struct {
	PID    int            `json:"pid"`
	Mounts []procfs.Mount `json:"mounts"`
}

// Host is the answer of `host -- CMD`: a non-zero exit is data, not an error.
type Host struct {
	Command  []string `json:"command"`
	ExitCode int      `json:"exitCode"`
	Stdout   string   `json:"stdout"`
	Stderr   string   `json:"stderr"`
}

// Read is the answer of `read PATH`.
type Read struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

// CgroupOf is the answer of `cgroup-of --container ID`.
type CgroupOf struct {
	PID    int    `json:"pid"`
	Cgroup string `json:"cgroup"`
}

// RuntimeConfig is the answer of `cri-runtime-config`: what the container
// runtime says over CRI RuntimeConfig, the call the kubelet takes its
// cgroup driver from when it starts.
type RuntimeConfig struct {
	Endpoint string `json:"endpoint"`
	// Unimplemented: the runtime lacks the call (containerd before 2.0);
	// the kubelet then keeps its configured driver.
	Unimplemented bool `json:"unimplemented,omitempty"`
	// Linux: the answer carried a Linux configuration; without it the
	// runtime said nothing of its driver.
	Linux        bool   `json:"linux,omitempty"`
	CgroupDriver string `json:"cgroupDriver,omitempty"`
}

// SessionHello is the first line `session` prints: the framework sends no
// request before it, so a session whose exec never started is told from
// one that broke while a command ran (that command may have run).
type SessionHello struct {
	Session int `json:"session"`
}

// SessionVersion is the session protocol's version, in SessionHello.
const SessionVersion = 1

// SessionRequest is one line on a session's stdin: run the probe with Args,
// as if exec'd with them.
type SessionRequest struct {
	ID   uint64   `json:"id"`
	Args []string `json:"args"`
}

// SessionReply is one line on a session's stdout: what the probe run for
// request ID printed and how it exited. Replies come in completion order.
type SessionReply struct {
	ID       uint64 `json:"id"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr,omitempty"`
	ExitCode int    `json:"exitCode"`
	// Error says why the probe could not be run at all.
	Error string `json:"error,omitempty"`
}

// NFTTable is the answer of `nft-table`: one nftables table as the node's
// kernel holds it (Found false: there is none of that name and family).
type NFTTable struct {
	Family string   `json:"family"`
	Table  string   `json:"table"`
	Found  bool     `json:"found"`
	Chains []string `json:"chains,omitempty"`
	// Maps holds the elements of each map asked for that exists.
	Maps map[string][]NFTElement `json:"maps,omitempty"`
}

// NFTElement is one element of an nftables set or map: its key as the
// kernel stores it (a concatenation's parts each padded to 4 bytes) and,
// for a verdict map, the verdict ("goto CHAIN").
type NFTElement struct {
	Key     []byte `json:"key"`
	Verdict string `json:"verdict,omitempty"`
}
