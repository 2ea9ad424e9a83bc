package nodeimage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// kubeImages are the image references kubeadm of one Kubernetes release
// expects. The etcd, CoreDNS and pause tags are read from that release's
// kubeadm constants, so any release builds the components its kubeadm asks
// for, and the etcd and CoreDNS sources built are the versions those tags
// name.
type kubeImages struct {
	version  string
	etcdTag  string
	dnsTag   string
	pauseTag string
}

// etcdVersion is the etcd module version behind the image tag (3.7.0-0 ->
// v3.7.0).
func (k kubeImages) etcdVersion() string {
	v := k.etcdTag
	if i := strings.LastIndex(v, "-"); i > 0 {
		v = v[:i]
	}
	return "v" + v
}

var kubeadmConstRe = regexp.MustCompile(`(?m)^\s*(DefaultEtcdVersion|CoreDNSVersion|PauseVersion)\s*=\s*"([^"]+)"`)

// KubeadmImageTags reads the etcd, CoreDNS and pause tags from the source
// of kubeadm's constants.go (cmd/kubeadm/app/constants) of one release.
func KubeadmImageTags(constantsGo string) (etcd, coreDNS, pause string, err error) {
	found := map[string]string{}
	for _, m := range kubeadmConstRe.FindAllStringSubmatch(constantsGo, -1) {
		if _, dup := found[m[1]]; !dup {
			found[m[1]] = m[2]
		}
	}
	for _, name := range []string{"DefaultEtcdVersion", "CoreDNSVersion", "PauseVersion"} {
		if found[name] == "" {
			return "", "", "", fmt.Errorf("kubeadm constants: %s not found", name)
		}
	}
	return found["DefaultEtcdVersion"], found["CoreDNSVersion"], found["PauseVersion"], nil
}

// kubeImagesFor reads the tags from the release's module source (the same
// download the Kubernetes build uses).
func (b *builder) kubeImagesFor(ctx context.Context) (kubeImages, error) {
	work := filepath.Join(b.CacheDir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return kubeImages{}, err
	}
	mod := "k8s.io/kubernetes@" + b.KubernetesVersion
	_, dir, err := moduleGoMod(ctx, work, mod)
	if err != nil {
		return kubeImages{}, err
	}
	data, err := os.ReadFile(filepath.Join(dir, "cmd", "kubeadm", "app", "constants", "constants.go"))
	if err != nil {
		return kubeImages{}, fmt.Errorf("%s: %w", mod, err)
	}
	etcd, dns, pause, err := KubeadmImageTags(string(data))
	if err != nil {
		return kubeImages{}, fmt.Errorf("%s: %w", mod, err)
	}
	return kubeImages{
		version:  strings.ReplaceAll(b.KubernetesVersion, "+", "_"),
		etcdTag:  etcd,
		dnsTag:   dns,
		pauseTag: pause,
	}, nil
}

const registry = "registry.k8s.io/"

// imageSpec is one image built FROM scratch (or from a collected root).
type imageSpec struct {
	ref        string
	dockerfile string
	files      map[string]string // context name -> source path
}

func (k kubeImages) specs(bins binaries, base, cniImage string) []imageSpec {
	control := func(name string) imageSpec {
		return imageSpec{
			ref:        registry + name + ":" + k.version,
			dockerfile: fmt.Sprintf("FROM scratch\nCOPY %[1]s /usr/local/bin/%[1]s\nENV PATH=/usr/local/bin\nENTRYPOINT [\"/usr/local/bin/%[1]s\"]\n", name),
			files:      map[string]string{name: bins[name]},
		}
	}
	return []imageSpec{
		control("kube-apiserver"),
		control("kube-controller-manager"),
		control("kube-scheduler"),
		{
			// kube-proxy programs iptables or, in its nftables mode,
			// runs the nft command: carry the node's Debian iptables (nft
			// and legacy backends) and nft, with their libraries.
			ref: registry + "kube-proxy:" + k.version,
			dockerfile: "FROM " + base + " AS collect\n" +
				"RUN set -e; mkdir -p /out/usr/sbin /out/etc; " +
				"for b in xtables-nft-multi xtables-legacy-multi nft; do cp /usr/sbin/$b /out/usr/sbin/; done; " +
				"for t in iptables ip6tables; do for s in '' -save -restore; do ln -s xtables-nft-multi /out/usr/sbin/$t$s; ln -s xtables-nft-multi /out/usr/sbin/$t-nft$s; ln -s xtables-legacy-multi /out/usr/sbin/$t-legacy$s; done; done; " +
				"cp -a --parents /usr/lib/x86_64-linux-gnu/xtables /out/; " +
				"for f in /usr/sbin/xtables-nft-multi /usr/sbin/xtables-legacy-multi /usr/sbin/nft /usr/lib/x86_64-linux-gnu/xtables/*.so; do " +
				"ldd $f | awk '/=>/{print $3} !/=>/{print $1}' | grep ^/ ; done | sort -u | xargs -I{} cp -L --parents {} /out/; " +
				"cp /etc/protocols /etc/services /etc/ethertypes /out/etc/ 2>/dev/null || cp /etc/protocols /etc/services /out/etc/\n" +
				"FROM scratch\nCOPY --from=collect /out/ /\nCOPY kube-proxy /usr/local/bin/kube-proxy\nENV PATH=/usr/local/bin:/usr/sbin\nENTRYPOINT [\"/usr/local/bin/kube-proxy\"]\n",
			files: map[string]string{"kube-proxy": bins["kube-proxy"]},
		},
		{
			ref:        registry + "etcd:" + k.etcdTag,
			dockerfile: "FROM scratch\nCOPY etcd /usr/local/bin/etcd\nENV PATH=/usr/local/bin\nENTRYPOINT [\"/usr/local/bin/etcd\"]\n",
			files:      map[string]string{"etcd": bins["etcd"]},
		},
		{
			ref:        registry + "coredns/coredns:" + k.dnsTag,
			dockerfile: "FROM scratch\nCOPY coredns /coredns\nEXPOSE 53 53/udp\nENTRYPOINT [\"/coredns\"]\n",
			files:      map[string]string{"coredns": bins["coredns"]},
		},
		{
			ref:        registry + "pause:" + k.pauseTag,
			dockerfile: "FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT [\"/pause\"]\n",
			files:      map[string]string{"pause": bins["pause"]},
		},
		{
			ref:        cniImage,
			dockerfile: "FROM scratch\nCOPY nodeconform-cni /nodeconform-cni\nENTRYPOINT [\"/nodeconform-cni\"]\n",
			files:      map[string]string{"nodeconform-cni": bins["nodeconform-cni"]},
		},
	}
}

// ensureImages builds the component images (cached by key label) and saves
// them into one archive for import into the node's containerd.
func (b *builder) ensureImages(ctx context.Context, base string, bins binaries, cniSum, cniImage, key string) (string, error) {
	bins["nodeconform-cni"] = filepath.Join(b.CacheDir, "bin", "nodeconform-cni")
	specs := b.kube.specs(bins, base, cniImage)
	var refs []string
	done := b.step(fmt.Sprintf("build %d component images", len(specs)))
	for _, s := range specs {
		refs = append(refs, s.ref)
		if have, _ := imageLabel(ctx, s.ref, keyLabel); have == key {
			continue
		}
		if err := b.dockerBuild(ctx, s, key); err != nil {
			return "", err
		}
	}
	done()
	archive := filepath.Join(b.CacheDir, "images-"+key[:12]+".tar")
	if _, err := os.Stat(archive); err == nil {
		return archive, nil
	}
	done = b.step("save component images")
	if _, err := docker(ctx, append([]string{"save", "-o", archive + ".tmp"}, refs...)...); err != nil {
		return "", err
	}
	if err := os.Rename(archive+".tmp", archive); err != nil {
		return "", err
	}
	done()
	return archive, nil
}

func (b *builder) dockerBuild(ctx context.Context, s imageSpec, key string) error {
	dir, err := os.MkdirTemp(b.CacheDir, "ctx-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for name, src := range s.files {
		// Hard links keep large binaries from being copied; fall back to a copy.
		if err := os.Link(src, filepath.Join(dir, name)); err != nil {
			data, rerr := os.ReadFile(src)
			if rerr != nil {
				return rerr
			}
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
				return err
			}
		}
	}
	df := s.dockerfile + fmt.Sprintf("LABEL %s=%s\n", keyLabel, key)
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(df), 0o644); err != nil {
		return err
	}
	b.Logger.V(1).Infof("   docker build %s", s.ref)
	_, err = run(ctx, "docker", []string{"build", "-q", "-t", s.ref, dir}, withEnv("DOCKER_BUILDKIT=0"))
	return err
}
