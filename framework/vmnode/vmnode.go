// Package vmnode makes a QEMU virtual machine a worker node of a kind
// cluster. On a host whose cgroups are v1 it is the only way to a real
// cgroup v2 kernel: the VM boots Debian's own kernel with the unified
// hierarchy and runs the same kubelet, containerd and runc builds as the
// kind nodes, while the control plane stays a native kind node. Only the
// kubelet, the runtime and the pods on the VM pay for emulation.
//
// The VM sits on the kind network's bridge through a tap device, with an
// address from the top of the network's subnet (Docker allocates from the
// bottom) and no default route: the API server and the VM's kubelet reach
// each other directly, and nothing leaves the machine.
package vmnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/kind/pkg/log"

	"github.com/nodeconform/nodeconform/framework/imagearchive"
	"github.com/nodeconform/nodeconform/framework/nodeimage"
)

// Label marks a VM node; its value is the machine kind.
const Label = "nodeconform.io/machine"

// LabelValue is Label's value on a VM node.
const LabelValue = "vm-cgroup-v2"

// Taint keeps ordinary workloads off the slow emulated node; the suites'
// per-node pods and the node DaemonSets tolerate it.
const Taint = "nodeconform.io/vm"

// Options configure Up.
type Options struct {
	Logger log.Logger
	// Cluster is the kind cluster name; the VM node is "<cluster>-vm".
	Cluster string
	// Network is kind's Docker network.
	Network string
	// Disk is the built VM disk (nodeimage.BuildVMDisk).
	Disk nodeimage.VMDisk
	// StateRoot holds, per cluster, the running VM's overlay disk,
	// console log and state (DefaultStateRoot).
	StateRoot string
	// CPUs and MemoryMiB size the guest.
	CPUs      int
	MemoryMiB int
	// HugePages2Mi are reserved at boot (kernel command line).
	HugePages2Mi int
	// BootTimeout bounds boot to sshd; JoinTimeout bounds join to Ready.
	BootTimeout time.Duration
	JoinTimeout time.Duration
}

// State is what a running VM node leaves on disk, for Down and for image
// loading.
type State struct {
	Cluster string    `json:"cluster"`
	Node    string    `json:"node"`
	IP      string    `json:"ip"`
	Tap     string    `json:"tap"`
	PID     int       `json:"pid"`
	SSHKey  string    `json:"sshKey"`
	HostKey string    `json:"hostKey"`
	Dir     string    `json:"dir"`
	Started time.Time `json:"started"`
}

// DefaultStateRoot is where running VM nodes keep their state (absolute,
// so every command finds the same one).
func DefaultStateRoot(cache string) string {
	if abs, err := filepath.Abs(cache); err == nil {
		cache = abs
	}
	return filepath.Join(cache, "vm", "run")
}

// NodeName is the VM node of a cluster.
func NodeName(cluster string) string { return cluster + "-vm" }

// KernelArgs is the guest's kernel command line: cgroup v2 only, the
// node's address, the API endpoint's name and the service range route.
func KernelArgs(node string, ip net.IP, prefix int, cpName string, cpIP net.IP, serviceCIDR string, hugePages int) string {
	args := []string{
		"console=ttyS0", "root=/dev/vda", "rw", "net.ifnames=0",
		"systemd.unified_cgroup_hierarchy=1", "cgroup_no_v1=all", "apparmor=0",
		"systemd.hostname=" + node,
		fmt.Sprintf("nodeconform.ip=%s/%d", ip, prefix),
		fmt.Sprintf("nodeconform.host=%s@%s", cpIP, cpName),
		fmt.Sprintf("nodeconform.route=%s@%s", serviceCIDR, cpIP),
	}
	if hugePages > 0 {
		args = append(args, "hugepagesz=2M", "hugepages="+strconv.Itoa(hugePages))
	}
	return strings.Join(args, " ")
}

// QEMUArgs is the command line of the VM: TCG (stock kernels do not boot
// under this host's KVM-PVM), a copy-on-write overlay of the cached disk,
// the tap on the kind bridge, the serial console in a file.
func QEMUArgs(name, dir string, d nodeimage.VMDisk, cpus, memMiB int, tap, mac, cmdline string) []string {
	return []string{
		"-name", name,
		"-machine", "q35", "-accel", "tcg,thread=multi,tb-size=512", "-cpu", "max",
		"-smp", strconv.Itoa(cpus), "-m", strconv.Itoa(memMiB),
		"-kernel", d.Kernel, "-initrd", d.Initrd, "-append", cmdline,
		"-drive", "file=" + filepath.Join(dir, "overlay.qcow2") + ",if=virtio,format=qcow2,cache=unsafe",
		"-netdev", "tap,id=n0,ifname=" + tap + ",script=no,downscript=no",
		"-device", "virtio-net-pci,netdev=n0,mac=" + mac,
		"-display", "none", "-monitor", "none", "-serial", "file:" + filepath.Join(dir, "console.log"),
		"-pidfile", filepath.Join(dir, "qemu.pid"), "-daemonize",
	}
}

// Machine is a running VM node.
type Machine struct {
	State
	ssh *sshClient
}

// Run runs a shell command on the VM as root.
func (m *Machine) Run(ctx context.Context, cmd string) (string, error) {
	return m.ssh.Run(ctx, cmd, nil)
}

// RunInput runs a shell command on the VM with stdin.
func (m *Machine) RunInput(ctx context.Context, cmd string, stdin io.Reader) (string, error) {
	return m.ssh.Run(ctx, cmd, stdin)
}

// ImportArchive imports an image archive (docker save format) into the
// VM's containerd, as kind does for its nodes. Images the guest already
// holds (same configuration, same tags; the disk preloads the probe and
// NFD images) are not sent again: importing hashes every layer under
// emulation.
func (m *Machine) ImportArchive(ctx context.Context, archive string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	imgs, err := imagearchive.Images(f)
	if err != nil {
		return fmt.Errorf("%s: %w", archive, err)
	}
	out, err := m.ssh.Run(ctx, imagearchive.MissingScript(imgs), nil)
	if err != nil {
		return err
	}
	if strings.TrimSpace(out) == "" {
		return nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	_, err = m.ssh.Run(ctx, "ctr --namespace=k8s.io images import --all-platforms --digests -", f)
	return err
}

// Attached returns the running VM nodes of a cluster recorded under root.
func Attached(root, cluster string) ([]*Machine, error) {
	st, err := readState(filepath.Join(root, cluster))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !alive(st.PID) {
		return nil, fmt.Errorf("VM node %s of %s is recorded in %s but its QEMU (pid %d) is not running: nodeconform vm down, then vm up", st.Node, cluster, filepath.Join(root, cluster), st.PID)
	}
	c, err := newSSH(st.IP, st.SSHKey, st.HostKey)
	if err != nil {
		return nil, err
	}
	return []*Machine{{State: st, ssh: c}}, nil
}

func readState(dir string) (State, error) {
	var st State
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("%s: %w", filepath.Join(dir, "state.json"), err)
	}
	return st, nil
}

func writeState(st State) error {
	data, _ := json.MarshalIndent(st, "", "  ")
	return os.WriteFile(filepath.Join(st.Dir, "state.json"), data, 0o644)
}

func alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	// A recycled PID is not our QEMU.
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return err == nil && strings.HasPrefix(strings.TrimSpace(string(comm)), "qemu")
}

// stop ends the QEMU process: SIGTERM, then SIGKILL after grace.
func stop(pid int, grace time.Duration) {
	if !alive(pid) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 50 && alive(pid); i++ {
		time.Sleep(100 * time.Millisecond)
	}
}

// Down stops a cluster's VM, removes its tap and state (overlay disk,
// console log). Removing the Node object is the caller's (it holds the
// API client); Down works without the cluster. A QEMU that does not stop
// keeps its state, so the next Down still knows its PID.
func Down(root, cluster string) (bool, error) {
	dir := filepath.Join(root, cluster)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		// Nothing recorded; a tap may still be there from a crash.
		return false, delTap(TapName(cluster))
	}
	pid := 0
	if st, err := readState(dir); err == nil {
		pid = st.PID
	}
	if pid == 0 {
		// No (or a corrupt) state.json: QEMU's own pid file.
		if data, err := os.ReadFile(filepath.Join(dir, "qemu.pid")); err == nil {
			pid, _ = strconv.Atoi(strings.TrimSpace(string(data)))
		}
	}
	stop(pid, 5*time.Second)
	if alive(pid) {
		return true, fmt.Errorf("QEMU (pid %d) of the VM node of %s did not stop; its state stays in %s", pid, cluster, dir)
	}
	tapErr := delTap(TapName(cluster))
	if err := os.RemoveAll(dir); err != nil {
		return true, err
	}
	return true, tapErr
}

// recordedIPs are the addresses of every VM node recorded under root:
// VMs of other clusters share the kind network but are not Docker's.
func recordedIPs(root string) []net.IP {
	var out []net.IP
	entries, _ := os.ReadDir(root)
	for _, e := range entries {
		if st, err := readState(filepath.Join(root, e.Name())); err == nil && alive(st.PID) {
			if ip := net.ParseIP(st.IP); ip != nil {
				out = append(out, ip)
			}
		}
	}
	return out
}

// DownAll stops every VM node recorded under root.
func DownAll(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var stopped []string
	var errs []error
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if did, err := Down(root, e.Name()); err != nil {
			errs = append(errs, err)
		} else if did {
			stopped = append(stopped, NodeName(e.Name()))
		}
	}
	return stopped, errors.Join(errs...)
}

// ensureQEMU installs QEMU from the Debian archive where it is missing.
func ensureQEMU(ctx context.Context, logger log.Logger, install func(context.Context, log.Logger, ...string) error) error {
	missing := false
	for _, b := range []string{"qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = true
		}
	}
	if !missing {
		return nil
	}
	logger.V(0).Info("installing qemu-system-x86 and qemu-utils with apt-get (the cgroup v2 VM node)")
	if err := install(ctx, logger, "qemu-system-x86", "qemu-utils"); err != nil {
		return fmt.Errorf("QEMU is needed for the cgroup v2 VM node: %w", err)
	}
	return nil
}
