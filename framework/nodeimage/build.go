// Package nodeimage builds nodeconform's air-gapped kind node image from
// Debian packages and the Go module proxy only: a debootstrapped root
// filesystem with systemd; containerd, runc, kubelet, kubeadm and kubectl
// built from source; and the control-plane, DNS, pause and CNI images built
// here and preloaded into the node's containerd. Each stage is cached, and
// the final image carries a content key so an unchanged recipe is never
// rebuilt.
package nodeimage

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"sigs.k8s.io/kind/pkg/log"

	"github.com/nodeconform/nodeconform/framework/progress"
	"github.com/nodeconform/nodeconform/framework/versions"
)

//go:embed all:files templates
var assets embed.FS

// recipeVersion changes whenever the build steps change in a way the hashed
// inputs do not show.
const recipeVersion = "4"

// basePackages are installed into the node root filesystem.
var basePackages = []string{
	"systemd", "systemd-sysv", "dbus", "iptables", "nftables",
	"containernetworking-plugins", "iproute2", "procps", "kmod", "conntrack",
	"ethtool", "socat", "util-linux", "mount",
}

// Options configures Build.
type Options struct {
	Logger log.Logger
	// KubernetesVersion is the release built (e.g. v1.34.4).
	KubernetesVersion string
	// Image is the tag of the result; default nodeconform/node:<version>.
	Image string
	// CacheDir holds the root filesystem, Go build outputs and image tarballs.
	CacheDir string
	// Mirror is the Debian archive; default: the one this host's apt uses.
	Mirror string
	// SourceDir is the nodeconform module root, for our own in-cluster binaries.
	SourceDir string
	// Force rebuilds even when a node image with the same key exists.
	Force bool
	// VMRoot also debootstraps the cgroup v2 VM node's root filesystem
	// while the binaries compile, so a later VM disk build finds it cached.
	VMRoot bool
}

// DefaultOptions fills in the defaults.
func DefaultOptions(logger log.Logger) Options {
	cache := os.Getenv("NODECONFORM_CACHE")
	if cache == "" {
		if d, err := os.UserCacheDir(); err == nil {
			cache = filepath.Join(d, "nodeconform")
		} else {
			cache = filepath.Join(os.TempDir(), "nodeconform-cache")
		}
	}
	return Options{
		Logger:            logger,
		KubernetesVersion: versions.Kubernetes,
		CacheDir:          cache,
		SourceDir:         ".",
	}
}

// DefaultImage returns the node image tag for a Kubernetes version.
func DefaultImage(k8sVersion string) string {
	return versions.NodeImageRepository + ":" + k8sVersion
}

// keyLabel is the image label holding the content key of a build.
const keyLabel = "io.nodeconform.key"

type builder struct {
	Options
	kube    kubeImages
	started time.Time
	mu      sync.Mutex
	// running are the steps' progress lines, stopped at the end of Build
	// whatever path it took.
	running []*progress.Step
}

// Build produces the node image and returns its tag.
func Build(ctx context.Context, o Options) (string, error) {
	if o.Image == "" {
		o.Image = DefaultImage(o.KubernetesVersion)
	}
	if !strings.HasPrefix(o.KubernetesVersion, "v1.") {
		return "", fmt.Errorf("kubernetes version %q: want a release such as v1.34.4", o.KubernetesVersion)
	}
	var err error
	if o.CacheDir, err = filepath.Abs(o.CacheDir); err != nil {
		return "", err
	}
	if o.SourceDir, err = filepath.Abs(o.SourceDir); err != nil {
		return "", err
	}
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return "", err
	}
	b := &builder{Options: o, started: time.Now()}
	defer b.stopAll()
	return b.build(ctx)
}

func (b *builder) build(ctx context.Context) (string, error) {
	cni, err := b.buildCNI(ctx)
	if err != nil {
		return "", err
	}
	key, err := b.key(cni)
	if err != nil {
		return "", err
	}
	if !b.Force {
		if have, _ := imageLabel(ctx, b.Image, keyLabel); have == key {
			b.Logger.V(0).Infof("node image %s is up to date (key %s), not rebuilding", b.Image, key[:12])
			return b.Image, nil
		}
	}
	b.Logger.V(0).Infof("building node image %s (Kubernetes %s, containerd %s, runc %s)", b.Image, b.KubernetesVersion, versions.Containerd, versions.Runc)
	if b.kube, err = b.kubeImagesFor(ctx); err != nil {
		return "", err
	}
	// The root filesystems are downloads and unpacking, the binaries are
	// compilation: side by side, the first hide in the second. The first
	// failure stops the others and is the error told.
	g, gctx := errgroup.WithContext(ctx)
	var base string
	var bins binaries
	g.Go(func() (err error) { base, err = b.ensureBase(gctx); return err })
	g.Go(func() (err error) { bins, err = b.ensureBinaries(gctx); return err })
	if b.VMRoot {
		g.Go(func() error {
			if _, err := b.vmRoot(gctx, filepath.Join(b.CacheDir, "vm")); err != nil {
				b.Logger.Warnf("VM root filesystem not prepared (vm up makes it): %v", err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return "", err
	}
	cniImage := "nodeconform.local/cni:" + cni[:12]
	images, err := b.ensureImages(ctx, base, bins, cni, cniImage, key)
	if err != nil {
		return "", err
	}
	if err := b.assemble(ctx, base, bins, images, cniImage, key); err != nil {
		return "", err
	}
	b.Logger.V(0).Infof("built node image %s in %s", b.Image, time.Since(b.started).Round(time.Second))
	return b.Image, nil
}

// key hashes every input of the node image.
func (b *builder) key(cniSum string) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "recipe=%s k8s=%s containerd=%s runc=%s gvisor=%s suite=%s pkgs=%s cni=%s\n",
		recipeVersion, b.KubernetesVersion, versions.Containerd, versions.Runc, versions.GVisor, versions.DebianSuite,
		strings.Join(basePackages, ","), cniSum)
	if err := hashAssets(h, assets); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashAssets writes every file of fsys, in path order, into h.
func hashAssets(h io.Writer, fsys fs.FS) error {
	var paths []string
	if err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			paths = append(paths, p)
		}
		return err
	}); err != nil {
		return err
	}
	sort.Strings(paths)
	for _, p := range paths {
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %d\n", p, len(data))
		h.Write(data)
	}
	return nil
}

// stepRun is a running step: its progress lines count what `go build -v`
// writes to p.
type stepRun struct {
	b     *builder
	name  string
	start time.Time
	p     *progress.Step
}

// begin starts a step; several may run at once, each with its own lines.
func (b *builder) begin(name, note string) *stepRun {
	b.Logger.V(0).Infof(" • %s%s ...", name, note)
	s := &stepRun{b: b, name: name, start: time.Now(), p: progress.Start(b.Logger, name, "Go packages compiled")}
	b.mu.Lock()
	b.running = append(b.running, s.p)
	b.mu.Unlock()
	return s
}

func (s *stepRun) done() {
	s.p.Stop()
	s.b.Logger.V(0).Infof(" ✓ %s (%s)", s.name, time.Since(s.start).Round(100*time.Millisecond))
}

func (b *builder) stopAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range b.running {
		p.Stop()
	}
}

func (b *builder) step(name string) func() { return b.begin(name, "").done }

// sideStep is a step that runs beside the compiling ones.
func (b *builder) sideStep(name string) func() { return b.begin(name, " (beside the builds)").done }
