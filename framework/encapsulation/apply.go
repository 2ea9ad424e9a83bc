package encapsulation

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/nodeconform/nodeconform/fixtures"
	"github.com/nodeconform/nodeconform/framework/nodeaccess"
	"github.com/nodeconform/nodeconform/framework/nodechange"
)

// Paths nodeconform writes on systemd nodes.
const (
	KubensenterPath = "/usr/local/bin/kubensenter"
	UnitPath        = "/etc/systemd/system/kubens.service"
	PinnedNS        = "/run/kubens/mnt"
	dropInName      = "90-nodeconform-kubens.conf"
)

// RuntimeService is the container runtime of a node, as systemd and ps know it.
type RuntimeService struct {
	Unit string // e.g. containerd.service
	Comm string // e.g. containerd
}

// RuntimeOf derives the runtime from the node's reported runtime version.
func RuntimeOf(n *corev1.Node) (RuntimeService, error) {
	v := n.Status.NodeInfo.ContainerRuntimeVersion
	switch {
	case strings.HasPrefix(v, "containerd://"):
		return RuntimeService{Unit: "containerd.service", Comm: "containerd"}, nil
	case strings.HasPrefix(v, "cri-o://"):
		return RuntimeService{Unit: "crio.service", Comm: "crio"}, nil
	}
	return RuntimeService{}, fmt.Errorf("node %s: unsupported container runtime %q", n.Name, v)
}

// Node applies and reverts encapsulation on one systemd node through the probe.
type Node struct {
	Name    string
	Runtime RuntimeService
	Probes  *nodeaccess.Probes
	// RestartTimeout bounds the wait for kubelet and the runtime to come back.
	RestartTimeout time.Duration
	// Journal, when set, records on the node how to undo Apply and
	// InstallKubensenter before they change anything (Run names the
	// run); Revert and RemoveKubensenter then go through it.
	Journal *nodechange.Journal
	Run     string
}

// entry is the journal entry of what, on this node.
func (n *Node) entry(what string) nodechange.Entry {
	e := nodechange.Entry{Node: n.Name, Run: n.Run, Name: what}
	switch what {
	case "kubens":
		e.Undo, e.Restart = n.revertScript(), []string{n.Runtime.Unit, "kubelet.service"}
	case "kubensenter":
		// A kubensenter the node already had was set aside by Install.
		e.Undo = fmt.Sprintf("if test -e %[1]s.nodeconform-orig; then mv -f %[1]s.nodeconform-orig %[1]s; else rm -f %[1]s; fi; test ! -e %[1]s.nodeconform-orig", KubensenterPath)
	}
	return e
}

// Observe reads the mount namespaces of systemd (PID 1), kubelet and the runtime.
func (n *Node) Observe(ctx context.Context) (NodeNamespaces, error) {
	o, _, err := n.ObserveAnd(ctx, "")
	return o, err
}

// ObserveAnd is Observe that, in the same read, also finds the first
// process named comm (0 when there is none, or comm is empty).
func (n *Node) ObserveAnd(ctx context.Context, comm string) (NodeNamespaces, int, error) {
	comms := []string{"kubelet", n.Runtime.Comm}
	if comm != "" {
		comms = append(comms, comm)
	}
	procs, err := n.Probes.Processes(ctx, n.Name, []string{"1"}, comms)
	if err != nil {
		return NodeNamespaces{}, 0, err
	}
	o := NodeNamespaces{Node: n.Name, RuntimeCmd: n.Runtime.Comm}
	other := 0
	for _, p := range procs {
		switch {
		case p.PID == 1:
			o.Systemd = p.NS["mnt"]
		case p.Comm == "kubelet" && o.KubeletPID == 0:
			o.Kubelet, o.KubeletPID = p.NS["mnt"], p.PID
		case p.Comm == n.Runtime.Comm && o.RuntimePID == 0:
			o.Runtime, o.RuntimePID = p.NS["mnt"], p.PID
		case comm != "" && p.Comm == comm && other == 0:
			other = p.PID
		}
	}
	return o, other, nil
}

// write puts content at path on the node, atomically.
func (n *Node) write(ctx context.Context, path string, content []byte, mode string) error {
	b64 := base64.StdEncoding.EncodeToString(content)
	script := fmt.Sprintf("set -e; mkdir -p \"$(dirname %[1]s)\"; echo %[2]s | base64 -d > %[1]s.tmp; chmod %[3]s %[1]s.tmp; mv %[1]s.tmp %[1]s", path, b64, mode)
	_, err := n.Probes.MustHost(ctx, n.Name, "sh", "-c", script)
	return err
}

// InstallKubensenter writes the kubensenter script (harmless when
// encapsulation is off: it then runs commands in the current namespace).
func (n *Node) InstallKubensenter(ctx context.Context) error {
	if n.Journal != nil {
		if err := n.Journal.Record(ctx, n.entry("kubensenter")); err != nil {
			return err
		}
		if _, err := n.Probes.MustHost(ctx, n.Name, "sh", "-c", fmt.Sprintf("if test -e %[1]s && ! test -e %[1]s.nodeconform-orig; then cp -p %[1]s %[1]s.nodeconform-orig; fi", KubensenterPath)); err != nil {
			return err
		}
	}
	return n.write(ctx, KubensenterPath, fixtures.MustRead("encapsulation/kubensenter"), "0755")
}

// RemoveKubensenter deletes what InstallKubensenter wrote.
func (n *Node) RemoveKubensenter(ctx context.Context) error {
	if n.Journal != nil {
		return n.Journal.Undo(ctx, n.entry("kubensenter"))
	}
	_, err := n.Probes.MustHost(ctx, n.Name, "rm", "-f", KubensenterPath)
	return err
}

// Options selects what Apply encapsulates; tests of the checks themselves
// encapsulate only one of the two on purpose.
type Options struct {
	Kubelet bool
	Runtime bool
}

// Apply installs kubens.service and drop-ins that start kubelet and the
// runtime through kubensenter, restarts both and waits until they are back.
func (n *Node) Apply(ctx context.Context, o Options) error {
	if n.Journal != nil {
		if err := n.Journal.Record(ctx, n.entry("kubens")); err != nil {
			return err
		}
	}
	if err := n.write(ctx, UnitPath, fixtures.MustRead("encapsulation/kubens.service"), "0644"); err != nil {
		return err
	}
	units := n.units(o)
	for _, u := range units {
		show, err := n.Probes.MustHost(ctx, n.Name, "systemctl", "show", "-p", "ExecStart", "--value", u)
		if err != nil {
			return err
		}
		exec, err := WrapExecStart(show, KubensenterPath)
		if err != nil {
			return fmt.Errorf("node %s, %s: %w", n.Name, u, err)
		}
		if err := n.write(ctx, dropInPath(u), []byte(DropIn(exec)), "0644"); err != nil {
			return err
		}
	}
	if _, err := n.Probes.MustHost(ctx, n.Name, "sh", "-c", "systemctl daemon-reload && systemctl enable --now kubens.service"); err != nil {
		return err
	}
	return n.restart(ctx, units)
}

// dropInPath is where Apply puts unit's drop-in.
func dropInPath(unit string) string { return "/etc/systemd/system/" + unit + ".d/" + dropInName }

// units are the systemd units o selects.
func (n *Node) units(o Options) []string {
	var units []string
	if o.Runtime {
		units = append(units, n.Runtime.Unit)
	}
	if o.Kubelet {
		units = append(units, "kubelet.service")
	}
	return units
}

// Unwrap takes the units o selects back out of the pinned namespace
// (their drop-ins removed, only they restarted) and leaves the rest
// encapsulated: from the applied state, the half-applied one a negative
// control needs costs one restart. Revert (the journal's undo) still
// removes everything Apply wrote.
func (n *Node) Unwrap(ctx context.Context, o Options) error {
	units := n.units(o)
	script := "rm -f"
	for _, u := range units {
		script += " " + dropInPath(u)
	}
	if _, err := n.Probes.MustHost(ctx, n.Name, "sh", "-c", script+" && systemctl daemon-reload"); err != nil {
		return err
	}
	return n.restart(ctx, units)
}

// Revert removes everything Apply wrote, stops kubens.service and restarts
// kubelet and the runtime in the host namespace.
func (n *Node) Revert(ctx context.Context) error {
	if n.Journal != nil {
		return n.Journal.Undo(ctx, n.entry("kubens"))
	}
	if _, err := n.Probes.MustHost(ctx, n.Name, "sh", "-c", n.revertScript()); err != nil {
		return err
	}
	return n.restart(ctx, []string{n.Runtime.Unit, "kubelet.service"})
}

// Forget drops the journal entry of an Apply found already undone.
func (n *Node) Forget(ctx context.Context) error {
	if n.Journal == nil {
		return nil
	}
	return n.Journal.Done(ctx, n.entry("kubens"))
}

// revertScript removes everything Apply wrote; safe to run twice and on a
// node Apply never touched.
func (n *Node) revertScript() string {
	// Drop-ins go (and systemd forgets their Requires=) before kubens.service
	// stops, so the stop does not take kubelet and the runtime down with it.
	return fmt.Sprintf("rm -f /etc/systemd/system/kubelet.service.d/%[1]s /etc/systemd/system/%[2]s.d/%[1]s; systemctl daemon-reload; "+
		"systemctl disable --now kubens.service >/dev/null 2>&1 || true; rm -f %[3]s; systemctl daemon-reload; systemctl reset-failed kubens.service >/dev/null 2>&1 || true; "+
		"rmdir --ignore-fail-on-non-empty /etc/systemd/system/%[2]s.d /etc/systemd/system/kubelet.service.d 2>/dev/null || true; "+
		// The undo must fail, and keep its journal entry, if anything is left.
		"test ! -e /etc/systemd/system/kubelet.service.d/%[1]s && test ! -e /etc/systemd/system/%[2]s.d/%[1]s && test ! -e %[3]s",
		dropInName, n.Runtime.Unit, UnitPath)
}

// State reads what is left of encapsulation on the node.
func (n *Node) State(ctx context.Context) (RevertState, error) {
	s := RevertState{Node: n.Name}
	r, err := n.Probes.Host(ctx, n.Name, "systemctl", "is-enabled", "kubens.service")
	if err != nil {
		return s, err
	}
	s.UnitEnabled = strings.TrimSpace(r.Stdout)
	if r, err = n.Probes.Host(ctx, n.Name, "systemctl", "is-active", "kubens.service"); err != nil {
		return s, err
	}
	s.UnitActive = strings.TrimSpace(r.Stdout)
	script := fmt.Sprintf("test -e %s && echo ns; test -e %s && echo unit; ls /etc/systemd/system/*.d/%s 2>/dev/null; true", PinnedNS, UnitPath, dropInName)
	out, err := n.Probes.MustHost(ctx, n.Name, "sh", "-c", script)
	if err != nil {
		return s, err
	}
	for _, line := range strings.Fields(out) {
		switch line {
		case "ns":
			s.PinnedNSFile = true
		case "unit":
			s.UnitFileFound = true
		default:
			s.DropIns = append(s.DropIns, line)
		}
	}
	return s, nil
}

// restart restarts units and waits until the processes of exactly those
// units run under new PIDs (a unit not restarted keeps its PID).
func (n *Node) restart(ctx context.Context, units []string) error {
	var comms []string
	for _, u := range units {
		switch u {
		case "kubelet.service":
			comms = append(comms, "kubelet")
		case n.Runtime.Unit:
			comms = append(comms, n.Runtime.Comm)
		}
	}
	return n.Probes.Restart(ctx, n.Name, units, comms, n.RestartTimeout)
}
