package nodeimage

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/nodeconform/nodeconform/framework/digest"
	"github.com/nodeconform/nodeconform/framework/versions"
)

// vmAssets are the files only a VM node has (its network from the kernel
// command line, sshd settings, fstab).
//
//go:embed all:vmfiles
var vmAssets embed.FS

// vmRecipe changes whenever the VM disk steps change in a way the hashed
// inputs do not show.
const vmRecipe = "2"

// vmPackages make a bootable machine: a kernel and initramfs, systemd,
// sshd for the host to drive it, and what kubelet and the CNI need.
var vmPackages = []string{
	"systemd", "systemd-sysv", "udev", "dbus", "linux-image-amd64", "initramfs-tools",
	"openssh-server", "iproute2", "kmod", "procps", "iptables", "containernetworking-plugins",
	"conntrack", "ethtool", "socat", "util-linux", "mount",
}

// vmImageRefs are the images every node runs before any suite loads its
// own: the sandbox, kube-proxy and the CNI daemon (their DaemonSets
// tolerate every taint).
func (k kubeImages) vmImageRefs(cniImage string) []string {
	return []string{registry + "pause:" + k.pauseTag, registry + "kube-proxy:" + k.version, cniImage}
}

// VMDisk is a cached, bootable cgroup v2 node: a raw ext4 disk whose root
// holds the same kubelet, containerd and runc builds as the node image,
// the kernel and initramfs to boot it with, and what the host needs to
// drive it.
type VMDisk struct {
	Key               string `json:"key"`
	KubernetesVersion string `json:"kubernetesVersion"`
	Disk              string `json:"disk"`
	Kernel            string `json:"kernel"`
	Initrd            string `json:"initrd"`
	// SSHKey is the private key whose public half is root's authorized key.
	SSHKey string `json:"sshKey"`
	// HostKey is the guest sshd's public key (authorized_keys format), so
	// the host can pin it.
	HostKey string `json:"hostKey"`
}

// BuildVMDisk builds (or finds in the cache) the VM node disk of
// o.KubernetesVersion. It builds the node image first: the binaries and
// component images are shared, not rebuilt.
//
// extraArchives (docker save archives, e.g. the probe and NFD images) are
// preloaded beside the node images, so runs that load them find them.
func BuildVMDisk(ctx context.Context, o Options, extraArchives ...string) (VMDisk, error) {
	if os.Geteuid() != 0 {
		return VMDisk{}, fmt.Errorf("building a VM disk needs root (debootstrap, mkfs.ext4 -d)")
	}
	if _, err := Build(ctx, o); err != nil {
		return VMDisk{}, err
	}
	if o.Image == "" {
		o.Image = DefaultImage(o.KubernetesVersion)
	}
	var err error
	if o.CacheDir, err = filepath.Abs(o.CacheDir); err != nil {
		return VMDisk{}, err
	}
	if o.SourceDir, err = filepath.Abs(o.SourceDir); err != nil {
		return VMDisk{}, err
	}
	b := &builder{Options: o, started: time.Now()}
	defer b.stopAll()
	if b.kube, err = b.kubeImagesFor(ctx); err != nil {
		return VMDisk{}, err
	}
	bins, err := b.ensureBinaries(ctx)
	if err != nil {
		return VMDisk{}, err
	}
	cni, err := b.buildCNI(ctx)
	if err != nil {
		return VMDisk{}, err
	}
	return b.vmDisk(ctx, bins, "nodeconform.local/cni:"+cni[:12], extraArchives)
}

func (b *builder) vmDisk(ctx context.Context, bins binaries, cniImage string, extra []string) (VMDisk, error) {
	dir := filepath.Join(b.CacheDir, "vm")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return VMDisk{}, err
	}
	keyPath := filepath.Join(dir, "id_ed25519")
	pub, err := ensureSSHKey(keyPath)
	if err != nil {
		return VMDisk{}, err
	}
	key, err := b.vmKey(ctx, bins, cniImage, pub, extra)
	if err != nil {
		return VMDisk{}, err
	}
	out := filepath.Join(dir, "disk-"+key[:12])
	manifest := filepath.Join(out, "disk.json")
	if data, err := os.ReadFile(manifest); err == nil && !b.Force {
		var d VMDisk
		if json.Unmarshal(data, &d) == nil && d.Key == key {
			b.Logger.V(0).Infof("VM disk %s is up to date (key %s), not rebuilding", out, key[:12])
			return d, nil
		}
	}
	b.Logger.V(0).Infof("building VM disk %s (Kubernetes %s, cgroup v2 guest)", out, b.KubernetesVersion)
	root, err := b.vmRoot(ctx, dir)
	if err != nil {
		return VMDisk{}, err
	}
	tmp := out + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return VMDisk{}, err
	}
	defer os.RemoveAll(tmp)
	work := filepath.Join(tmp, "root")
	done := b.step("copy root filesystem and node files")
	// cp -a keeps owners, modes, links and device nodes of the cached root.
	if _, err := run(ctx, "cp", []string{"-a", root, work}); err != nil {
		return VMDisk{}, err
	}
	if err := b.vmFiles(work, bins, pub); err != nil {
		return VMDisk{}, err
	}
	hostKey, err := os.ReadFile(filepath.Join(work, "etc", "ssh", "ssh_host_ed25519_key.pub"))
	if err != nil {
		return VMDisk{}, fmt.Errorf("VM root has no sshd host key: %w", err)
	}
	kernel, initrd, err := bootFiles(work)
	if err != nil {
		return VMDisk{}, err
	}
	for src, dst := range map[string]string{kernel: filepath.Join(tmp, "vmlinuz"), initrd: filepath.Join(tmp, "initrd.img")} {
		if err := copyFile(src, dst); err != nil {
			return VMDisk{}, err
		}
	}
	done()
	done = b.step("preload the images every node runs into the disk's containerd")
	if err := b.preloadImages(ctx, work, tmp, cniImage, extra); err != nil {
		return VMDisk{}, err
	}
	done()
	done = b.step("make the ext4 disk (mkfs.ext4 -d)")
	disk := filepath.Join(tmp, "disk.raw")
	if _, err := run(ctx, "mkfs.ext4", []string{"-q", "-F", "-L", "nodeconform", "-d", work, disk, "16G"}); err != nil {
		return VMDisk{}, err
	}
	if err := os.RemoveAll(work); err != nil {
		return VMDisk{}, err
	}
	done()
	d := VMDisk{Key: key, KubernetesVersion: b.KubernetesVersion,
		Disk: filepath.Join(out, "disk.raw"), Kernel: filepath.Join(out, "vmlinuz"), Initrd: filepath.Join(out, "initrd.img"),
		SSHKey: keyPath, HostKey: strings.TrimSpace(string(hostKey))}
	data, _ := json.MarshalIndent(d, "", "  ")
	if err := os.WriteFile(filepath.Join(tmp, "disk.json"), data, 0o644); err != nil {
		return VMDisk{}, err
	}
	// Older disks of this cache are replaced, not kept beside.
	old, _ := filepath.Glob(filepath.Join(dir, "disk-*"))
	for _, o := range old {
		if o != tmp {
			_ = os.RemoveAll(o)
		}
	}
	if err := os.Rename(tmp, out); err != nil {
		return VMDisk{}, err
	}
	b.Logger.V(0).Infof("built VM disk in %s", time.Since(b.started).Round(time.Second))
	return d, nil
}

// preloadImages imports vmImageRefs into the containerd content store of
// the VM root, with the node image's own containerd in a container (the
// root's /var/lib/containerd bind-mounted): importing in the guest would
// hash every layer under emulation (about 1.5 min per boot).
func (b *builder) preloadImages(ctx context.Context, root, tmp, cniImage string, extra []string) error {
	archive := filepath.Join(tmp, "images.tar")
	if _, err := docker(ctx, append([]string{"save", "-o", archive}, b.kube.vmImageRefs(cniImage)...)...); err != nil {
		return err
	}
	defer os.Remove(archive)
	mounts := []string{"-v", archive + ":/images/0.tar:ro"}
	for i, a := range extra {
		mounts = append(mounts, "-v", a+fmt.Sprintf(":/images/%d.tar:ro", i+1))
	}
	store := filepath.Join(root, "var", "lib", "containerd")
	if err := os.MkdirAll(store, 0o711); err != nil {
		return err
	}
	const script = `set -eu
containerd >/tmp/containerd.log 2>&1 &
pid=$!
for i in $(seq 1 100); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done
for a in /images/*.tar; do ctr --namespace=k8s.io images import --no-unpack --digests "$a" >/dev/null; done
kill $pid; wait $pid || true
rm -rf /var/lib/containerd/io.containerd.runtime.v2.task
`
	// Named, so that a cancelled build removes it: killing the docker
	// CLI does not stop the container writing into the store.
	name := fmt.Sprintf("nodeconform-vm-preload-%d", time.Now().UnixNano())
	defer func() { _, _ = docker(context.Background(), "rm", "-f", name) }()
	args := append([]string{"run", "--rm", "--name", name, "--privileged", "--label", "io.nodeconform.build=true", "--entrypoint", "bash",
		"-v", store + ":/var/lib/containerd"}, mounts...)
	_, err := docker(ctx, append(args, b.Image, "-c", script)...)
	return err
}

// vmKey hashes every input of the VM disk.
func (b *builder) vmKey(ctx context.Context, bins binaries, cniImage string, pub []byte, extra []string) (string, error) {
	h := sha256.New()
	// The node image's key covers the component images preloaded here.
	nodeKey, err := imageLabel(ctx, b.Image, keyLabel)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(h, "node=%s\n", nodeKey)
	for _, a := range extra {
		sum, err := digest.File(a)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "preload %s\n", sum)
	}
	fmt.Fprintf(h, "vm=%s recipe=%s k8s=%s containerd=%s runc=%s suite=%s pkgs=%s images=%s\n",
		vmRecipe, recipeVersion, b.KubernetesVersion, versions.Containerd, versions.Runc, versions.DebianSuite,
		strings.Join(vmPackages, ","), strings.Join(b.kube.vmImageRefs(cniImage), ","))
	h.Write(pub)
	names := make([]string, 0, len(bins))
	for n := range bins {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sum, err := digest.File(bins[n])
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "bin %s %s\n", n, sum)
	}
	for _, a := range []fs.FS{assets, vmAssets} {
		if err := hashAssets(h, a); err != nil {
			return "", err
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// vmRoot returns the cached debootstrapped VM root, making it when absent.
func (b *builder) vmRoot(ctx context.Context, dir string) (string, error) {
	sum := sha256.Sum256([]byte(vmRecipe + versions.DebianSuite + strings.Join(vmPackages, ",")))
	root := filepath.Join(dir, "root-"+versions.DebianSuite+"-"+hex.EncodeToString(sum[:])[:12])
	if _, err := os.Stat(filepath.Join(root, "etc", "os-release")); err == nil {
		b.Logger.V(0).Infof(" • VM root filesystem %s cached", root)
		return root, nil
	}
	done := b.sideStep("debootstrap " + versions.DebianSuite + " VM root filesystem (kernel, systemd, sshd)")
	tmp := root + ".tmp"
	if err := b.debootstrap(ctx, tmp, vmPackages); err != nil {
		return "", err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "root-*"))
	for _, o := range old {
		if o != tmp {
			if err := removeRoot(o); err != nil {
				b.Logger.Warnf("%v", err)
			}
		}
	}
	if err := os.Rename(tmp, root); err != nil {
		return "", err
	}
	done()
	return root, nil
}

// vmFiles adds the node's files and binaries to a copied VM root: the
// node image's units and configuration (not its container entrypoint),
// the VM's own files, root's authorized key, and enabled units.
func (b *builder) vmFiles(root string, bins binaries, pub []byte) error {
	write := func(name string, mode os.FileMode, data []byte) error {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		return os.WriteFile(p, data, mode)
	}
	for _, a := range []struct {
		fs     embed.FS
		prefix string
	}{{assets, "files"}, {vmAssets, "vmfiles"}} {
		err := fs.WalkDir(a.fs, a.prefix, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(p, "/entrypoint") {
				return err
			}
			data, err := a.fs.ReadFile(p)
			if err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if strings.Contains(p, "/bin/") || strings.Contains(p, "/sbin/") {
				mode = 0o755
			}
			return write(strings.TrimPrefix(p, a.prefix+"/"), mode, data)
		})
		if err != nil {
			return err
		}
	}
	cfg, err := renderTemplate("templates/containerd-config.toml", map[string]string{"Pause": registry + "pause:" + b.kube.pauseTag})
	if err != nil {
		return err
	}
	// A VM node has every capability: containerd may lower OOM scores.
	if err := write("etc/containerd/config.toml", 0o644, cfg); err != nil {
		return err
	}
	for dir, cmds := range nodeBinaries {
		for _, c := range cmds {
			if err := copyFile(bins[c], filepath.Join(root, dir, c)); err != nil {
				return err
			}
		}
	}
	if err := write("root/.ssh/authorized_keys", 0o600, pub); err != nil {
		return err
	}
	if err := os.Chmod(filepath.Join(root, "root", ".ssh"), 0o700); err != nil {
		return err
	}
	for _, d := range []string{"etc/kubernetes/manifests", "etc/cni/net.d", "var/lib/kubelet", "opt/cni"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			return err
		}
	}
	links := map[string]string{
		"opt/cni/bin": "/usr/lib/cni",
		"etc/systemd/system/multi-user.target.wants/containerd.service":          "/etc/systemd/system/containerd.service",
		"etc/systemd/system/multi-user.target.wants/kubelet.service":             "/etc/systemd/system/kubelet.service",
		"etc/systemd/system/multi-user.target.wants/nodeconform-sandbox.service": "/etc/systemd/system/nodeconform-sandbox.service",
		"etc/systemd/system/multi-user.target.wants/nodeconform-net.service":     "/etc/systemd/system/nodeconform-net.service",
		"etc/systemd/system/multi-user.target.wants/nodeconform-cgroup.service":  "/etc/systemd/system/nodeconform-cgroup.service",
		// Nothing in a test node needs these; under emulation they cost.
		"etc/systemd/system/apt-daily.timer":         "/dev/null",
		"etc/systemd/system/apt-daily-upgrade.timer": "/dev/null",
		"etc/systemd/system/e2scrub_all.timer":       "/dev/null",
		"etc/systemd/system/fstrim.timer":            "/dev/null",
		"etc/systemd/system/man-db.timer":            "/dev/null",
	}
	for name, target := range links {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		_ = os.Remove(p)
		if err := os.Symlink(target, p); err != nil {
			return err
		}
	}
	// The machine id is made at first boot, so each VM has its own.
	return os.WriteFile(filepath.Join(root, "etc", "machine-id"), nil, 0o444)
}

// bootFiles finds the kernel and initramfs debootstrap installed.
func bootFiles(root string) (string, string, error) {
	kernels, _ := filepath.Glob(filepath.Join(root, "boot", "vmlinuz-*"))
	initrds, _ := filepath.Glob(filepath.Join(root, "boot", "initrd.img-*"))
	if len(kernels) != 1 || len(initrds) != 1 {
		return "", "", fmt.Errorf("VM root: want one kernel and one initramfs in /boot, found %v and %v", kernels, initrds)
	}
	return kernels[0], initrds[0], nil
}

// ensureSSHKey returns the public key (authorized_keys line) of the VM
// key at path, generating the pair once.
func ensureSSHKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		_, priv, gerr := ed25519.GenerateKey(rand.Reader)
		if gerr != nil {
			return nil, gerr
		}
		block, merr := ssh.MarshalPrivateKey(priv, "nodeconform VM node")
		if merr != nil {
			return nil, merr
		}
		data = pem.EncodeToMemory(block)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("VM ssh key %s: %w", path, err)
	}
	return ssh.MarshalAuthorizedKey(signer.PublicKey()), nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, st.Mode().Perm()|0o200)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
