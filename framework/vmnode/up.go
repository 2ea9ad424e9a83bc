package vmnode

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/nodeconform/nodeconform/framework/hostprep"
)

// Up boots the VM and makes it a Ready worker of the cluster. Whatever it
// started is removed again when it fails or ctx ends.
func Up(ctx context.Context, o Options, cs kubernetes.Interface) (m *Machine, err error) {
	start := time.Now()
	node := NodeName(o.Cluster)
	if err := ensureQEMU(ctx, o.Logger, hostprep.AptInstall); err != nil {
		return nil, err
	}
	nw, err := InspectNetwork(ctx, o.Network)
	if err != nil {
		return nil, err
	}
	cpName := o.Cluster + "-control-plane"
	cpIP := nw.Containers[cpName]
	if cpIP == nil {
		return nil, fmt.Errorf("control-plane container %s is not on docker network %s", cpName, o.Network)
	}
	// Another cluster's VM on the shared kind network is not in Docker's list.
	ip, err := PickAddress(nw.Subnet, append(nw.Used, recordedIPs(o.StateRoot)...), 0)
	if err != nil {
		return nil, err
	}
	svc, err := serviceSubnet(ctx, cs)
	if err != nil {
		return nil, err
	}
	if _, err := Down(o.StateRoot, o.Cluster); err != nil {
		return nil, fmt.Errorf("remove the earlier VM node of %s: %w", o.Cluster, err)
	}
	// A Node object of an earlier VM would make kubeadm join refuse.
	if err := deleteNode(ctx, cs, node); err != nil {
		return nil, err
	}
	dir := filepath.Join(o.StateRoot, o.Cluster)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			o.Logger.Warnf("VM node %s failed (%v); removing it", node, firstLine(err))
			// The VM first: a kubelet still running could register the
			// Node again after its deletion.
			if _, derr := Down(o.StateRoot, o.Cluster); derr != nil {
				o.Logger.Warnf("%v", derr)
			}
			_ = deleteNode(context.Background(), cs, node)
		}
	}()
	if out, err := exec.CommandContext(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", o.Disk.Disk, filepath.Join(dir, "overlay.qcow2")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("qemu-img create overlay: %w: %s", err, out)
	}
	tap := TapName(o.Cluster)
	if err := addTap(tap, nw.Bridge); err != nil {
		return nil, err
	}
	prefix, _ := nw.Subnet.Mask.Size()
	cmdline := KernelArgs(node, ip, prefix, cpName, cpIP, svc, o.HugePages2Mi)
	args := QEMUArgs("nodeconform-"+node, dir, o.Disk, o.CPUs, o.MemoryMiB, tap, MAC(tap), cmdline)
	o.Logger.V(0).Infof("booting VM node %s (QEMU/TCG, %d CPUs, %d MiB, %s on bridge %s, cgroup v2 kernel)", node, o.CPUs, o.MemoryMiB, ip, nw.Bridge)
	if out, err := exec.CommandContext(ctx, "qemu-system-x86_64", args...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("qemu-system-x86_64 did not start: %w: %s", err, out)
	}
	pidData, err := os.ReadFile(filepath.Join(dir, "qemu.pid"))
	if err != nil {
		return nil, fmt.Errorf("QEMU wrote no pid file: %w", err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidData)))
	st := State{Cluster: o.Cluster, Node: node, IP: ip.String(), Tap: tap, PID: pid,
		SSHKey: o.Disk.SSHKey, HostKey: o.Disk.HostKey, Dir: dir, Started: start}
	if err := writeState(st); err != nil {
		return nil, err
	}
	c, err := newSSH(st.IP, st.SSHKey, st.HostKey)
	if err != nil {
		return nil, err
	}
	m = &Machine{State: st, ssh: c}
	if err := m.waitSSH(ctx, o, dir); err != nil {
		return nil, err
	}
	booted := time.Since(start)
	o.Logger.V(0).Infof("VM node %s booted to sshd in %s", node, booted.Round(time.Second))
	t := time.Now()
	if err := m.join(ctx, o, cpName, ip.String()); err != nil {
		return nil, err
	}
	if err := waitReady(ctx, o, cs, node); err != nil {
		return nil, fmt.Errorf("%w%s", err, m.diagnose(ctx, dir))
	}
	o.Logger.V(0).Infof("VM node %s joined and Ready in %s (boot %s, whole %s)", node, time.Since(t).Round(time.Second), booted.Round(time.Second), time.Since(start).Round(time.Second))
	return m, nil
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i > 0 {
		return s[:i]
	}
	return s
}

func (m *Machine) waitSSH(ctx context.Context, o Options, dir string) error {
	deadline := time.Now().Add(o.BootTimeout)
	last := time.Now()
	for {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		state, err := m.Run(cctx, "systemctl is-system-running --wait 2>/dev/null; true")
		cancel()
		if err == nil {
			switch strings.TrimSpace(state) {
			case "running":
				return nil
			case "degraded":
				// Say which units failed; the join shows whether they matter.
				failed, _ := m.Run(ctx, "systemctl --failed --no-legend --plain 2>&1 | head -20")
				o.Logger.Warnf("VM node booted degraded; failed units:\n%s", failed)
				return nil
			}
			err = fmt.Errorf("system state %q", strings.TrimSpace(state))
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !alive(m.PID) {
			return fmt.Errorf("QEMU exited while the VM booted%s", consoleTail(dir))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("VM node did not answer ssh within %s (last: %v)%s", o.BootTimeout, err, consoleTail(dir))
		}
		if time.Since(last) >= 15*time.Second {
			o.Logger.V(0).Infof("   … VM booting: %s elapsed, ssh: %s (console: %s)", time.Since(deadline.Add(-o.BootTimeout)).Round(time.Second), firstLine(err), filepath.Join(dir, "console.log"))
			last = time.Now()
		}
		time.Sleep(2 * time.Second)
	}
}

func consoleTail(dir string) string {
	data, err := os.ReadFile(filepath.Join(dir, "console.log"))
	if err != nil {
		return ""
	}
	return "\nconsole (last lines):\n" + tail(string(data), 3000)
}

var joinRe = regexp.MustCompile(`kubeadm join (\S+) --token (\S+) --discovery-token-ca-cert-hash (\S+)`)

// ParseJoinCommand reads `kubeadm token create --print-join-command`.
func ParseJoinCommand(out string) (endpoint, token, caHash string, err error) {
	m := joinRe.FindStringSubmatch(out)
	if m == nil {
		return "", "", "", fmt.Errorf("unexpected join command: %q", strings.TrimSpace(out))
	}
	return m[1], m[2], m[3], nil
}

// JoinConfiguration is the kubeadm (v1beta4) join of the VM node: its
// name, address, label and taint; the kubelet configuration comes from the
// cluster, as for every other node.
func JoinConfiguration(endpoint, token, caHash, node, ip string) string {
	return fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: JoinConfiguration
discovery:
  bootstrapToken:
    apiServerEndpoint: %q
    token: %q
    caCertHashes: [%q]
nodeRegistration:
  name: %q
  criSocket: unix:///run/containerd/containerd.sock
  ignorePreflightErrors: [all]
  kubeletExtraArgs:
  - name: node-ip
    value: %q
  - name: node-labels
    value: %q
  taints:
  - key: %q
    value: cgroup-v2
    effect: NoSchedule
`, endpoint, token, caHash, node, ip, Label+"="+LabelValue, Taint)
}

func (m *Machine) join(ctx context.Context, o Options, cpName, ip string) error {
	cp := func(ctx context.Context, args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, "docker", append([]string{"exec", cpName, "kubeadm"}, args...)...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("kubeadm %s on %s: %w: %s", strings.Join(args, " "), cpName, err, out)
		}
		return string(out), nil
	}
	// A token for this join only: generated first, so it is deleted
	// whatever happens after it is created.
	tok, err := cp(ctx, "token", "generate")
	if err != nil {
		return err
	}
	token := strings.TrimSpace(tok)
	defer func() {
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cp(dctx, "token", "delete", token); err != nil {
			o.Logger.Warnf("%v", err)
		}
	}()
	out, err := cp(ctx, "token", "create", token, "--ttl", "30m", "--print-join-command")
	if err != nil {
		return err
	}
	endpoint, _, hash, err := ParseJoinCommand(out)
	if err != nil {
		return err
	}
	cfg := JoinConfiguration(endpoint, token, hash, m.Node, ip)
	o.Logger.V(0).Infof("VM node %s: kubeadm join %s", m.Node, endpoint)
	if _, err := m.ssh.Run(ctx, "cat > /run/nodeconform-join.yaml && kubeadm join --config /run/nodeconform-join.yaml && rm -f /run/nodeconform-join.yaml", strings.NewReader(cfg)); err != nil {
		return fmt.Errorf("kubeadm join: %w", err)
	}
	return nil
}

func waitReady(ctx context.Context, o Options, cs kubernetes.Interface, node string) error {
	deadline := time.Now().Add(o.JoinTimeout)
	last := time.Now()
	for {
		n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err == nil {
			for _, c := range n.Status.Conditions {
				if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
					return nil
				}
			}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("VM node %s not Ready within %s", node, o.JoinTimeout)
		}
		if time.Since(last) >= 15*time.Second {
			o.Logger.V(0).Infof("   … VM node %s joining: waiting for Ready", node)
			last = time.Now()
		}
		time.Sleep(2 * time.Second)
	}
}

// diagnose gathers the kubelet's and containerd's last words for an error.
func (m *Machine) diagnose(ctx context.Context, dir string) string {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := m.Run(cctx, "journalctl -u kubelet -u containerd --no-pager -n 40 2>&1")
	if err != nil {
		return consoleTail(dir)
	}
	return "\nVM journal (kubelet, containerd):\n" + out
}

// serviceSubnet reads the service range from kubeadm's ClusterConfiguration.
func serviceSubnet(ctx context.Context, cs kubernetes.Interface) (string, error) {
	cm, err := cs.CoreV1().ConfigMaps("kube-system").Get(ctx, "kubeadm-config", metav1.GetOptions{})
	if err != nil {
		return "", fmt.Errorf("read kube-system/kubeadm-config: %w", err)
	}
	var cc struct {
		Networking struct {
			ServiceSubnet string `json:"serviceSubnet"`
		} `json:"networking"`
	}
	if err := yaml.Unmarshal([]byte(cm.Data["ClusterConfiguration"]), &cc); err != nil {
		return "", fmt.Errorf("kubeadm-config: %w", err)
	}
	if cc.Networking.ServiceSubnet == "" {
		return "10.96.0.0/12", nil
	}
	// Dual-stack lists both; the VM routes the IPv4 range.
	return strings.Split(cc.Networking.ServiceSubnet, ",")[0], nil
}

// deleteNode removes the VM's Node object; a missing one is fine.
func deleteNode(ctx context.Context, cs kubernetes.Interface, node string) error {
	if cs == nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err := cs.CoreV1().Nodes().Delete(cctx, node, metav1.DeleteOptions{})
	if err != nil && !strings.Contains(err.Error(), "not found") {
		return err
	}
	return nil
}

// DeleteNode removes the VM's Node object from the cluster.
func DeleteNode(ctx context.Context, cs kubernetes.Interface, cluster string) error {
	return deleteNode(ctx, cs, NodeName(cluster))
}
