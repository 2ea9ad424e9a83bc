package nodeimage

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/template"
	"time"
)

// nodeSetup runs inside the build container: it imports the component
// images into containerd's k8s.io namespace (without unpacking: the node's
// /var is a fresh volume, unpacked on first use) and enables the units.
const nodeSetup = `set -eu
mkdir -p /etc/kubernetes/manifests /opt/cni /etc/cni/net.d /var/lib/kubelet
ln -sfn /usr/lib/cni /opt/cni/bin
update-alternatives --quiet --set iptables /usr/sbin/iptables-nft
update-alternatives --quiet --set ip6tables /usr/sbin/ip6tables-nft
systemctl enable kubelet.service containerd.service nodeconform-sandbox.service >/dev/null 2>&1
# Units that have no business in a node container.
systemctl mask systemd-binfmt.service getty.target console-getty.service systemd-udevd.service systemd-modules-load.service >/dev/null 2>&1
echo 'ReadKMsg=no' >> /etc/systemd/journald.conf
containerd >/tmp/containerd.log 2>&1 &
pid=$!
for i in $(seq 1 100); do ctr version >/dev/null 2>&1 && break; sleep 0.1; done
ctr --namespace=k8s.io images import --no-unpack --digests /kind/images.tar >/dev/null
ctr --namespace=k8s.io images ls -q | sort > /kind/images.txt
kill $pid; wait $pid || true
rm -rf /kind/images.tar /tmp/containerd.log /var/lib/containerd/io.containerd.runtime.v2.task /run/containerd
`

// assemble copies everything into a container of the base image, imports
// the images, and commits the node image.
func (b *builder) assemble(ctx context.Context, base string, bins binaries, images, cniImage, key string) error {
	done := b.step("assemble node image")
	name := fmt.Sprintf("nodeconform-build-%d", time.Now().UnixNano())
	if _, err := docker(ctx, "run", "-d", "--privileged", "--name", name, "--label", "io.nodeconform.build=true",
		"--entrypoint", "sleep", base, "infinity"); err != nil {
		return err
	}
	defer func() {
		// Remove even when ctx was cancelled (Ctrl-C).
		_, _ = docker(context.Background(), "rm", "-f", name)
	}()
	layer, err := b.nodeFiles(bins, images, cniImage)
	if err != nil {
		return err
	}
	if _, err := run(ctx, "docker", []string{"cp", "-", name + ":/"}, withStdin(layer)); err != nil {
		return err
	}
	if _, err := docker(ctx, "exec", name, "bash", "-c", nodeSetup); err != nil {
		return err
	}
	committed := b.Image + "-commit"
	if _, err := docker(ctx, "commit",
		"-c", `ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]`,
		"-c", "CMD []",
		"-c", "ENV container=docker",
		name, committed); err != nil {
		return err
	}
	// docker commit cannot set STOPSIGNAL; a one-line build can, adding no layer.
	df := fmt.Sprintf("FROM %s\nSTOPSIGNAL SIGRTMIN+3\nLABEL %s=%s io.nodeconform.kubernetes=%s\n", committed, keyLabel, key, b.KubernetesVersion)
	if _, err := run(ctx, "docker", []string{"build", "-q", "-t", b.Image, "-"}, withStdin(strings.NewReader(df)), withEnv("DOCKER_BUILDKIT=0")); err != nil {
		return err
	}
	_, _ = docker(ctx, "rmi", committed)
	done()
	return nil
}

// nodeBinaries are the built binaries installed in the node, by directory.
var nodeBinaries = map[string][]string{
	"usr/bin":        {"kubelet", "kubeadm", "kubectl"},
	"usr/local/bin":  append(append([]string{}, containerdCommands...), gvisorCommands...),
	"usr/local/sbin": {"runc"},
}

// nodeFiles returns a tar stream of every file added to the base root.
func (b *builder) nodeFiles(bins binaries, images, cniImage string) (io.Reader, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	err := fs.WalkDir(assets, "files", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := assets.ReadFile(p)
		if err != nil {
			return err
		}
		mode := int64(0o644)
		if strings.Contains(p, "/bin/") {
			mode = 0o755
		}
		return add(strings.TrimPrefix(p, "files/"), mode, data)
	})
	if err != nil {
		return nil, err
	}
	for _, m := range []string{"default-cni.yaml", "default-storage.yaml"} {
		data, err := renderTemplate("templates/"+m, map[string]string{"Image": cniImage})
		if err != nil {
			return nil, err
		}
		if err := add("kind/manifests/"+m, 0o644, data); err != nil {
			return nil, err
		}
	}
	// containerd reads its sandbox (pause) image from its own config:
	// current kubelets no longer pass one.
	data, err := renderTemplate("templates/containerd-config.toml", map[string]string{"Pause": registry + "pause:" + b.kube.pauseTag})
	if err != nil {
		return nil, err
	}
	if err := add("etc/containerd/config.toml", 0o644, data); err != nil {
		return nil, err
	}
	if err := add("kind/version", 0o644, []byte(b.KubernetesVersion+"\n")); err != nil {
		return nil, err
	}
	for dir, cmds := range nodeBinaries {
		for _, c := range cmds {
			if err := addFile(tw, dir+"/"+c, bins[c], 0o755); err != nil {
				return nil, err
			}
		}
	}
	if err := addFile(tw, "kind/images.tar", images, 0o644); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

func addFile(tw *tar.Writer, name, src string, mode int64) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: st.Size(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

func renderTemplate(name string, data any) ([]byte, error) {
	text, err := assets.ReadFile(name)
	if err != nil {
		return nil, err
	}
	t, err := template.New(name).Option("missingkey=error").Parse(string(text))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := t.Execute(&out, data); err != nil {
		return nil, fmt.Errorf("render %s: %w", name, err)
	}
	return out.Bytes(), nil
}
