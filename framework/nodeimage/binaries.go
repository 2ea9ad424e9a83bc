package nodeimage

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/nodeconform/nodeconform/framework/digest"
	"github.com/nodeconform/nodeconform/framework/hostprep"
	"github.com/nodeconform/nodeconform/framework/versions"
)

// kubeCommands are built from k8s.io/kubernetes.
var kubeCommands = []string{"kubelet", "kubeadm", "kubectl", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kube-proxy"}

// containerdCommands are built from github.com/containerd/containerd/v2.
var containerdCommands = []string{"containerd", "containerd-shim-runc-v2", "ctr"}

// gvisorCommands are built from gvisor.dev/gvisor: runsc and its
// containerd shim.
var gvisorCommands = []string{"runsc", "containerd-shim-runsc-v1"}

// binaries maps a binary name to its path in the cache.
type binaries map[string]string

func (b *builder) binDir(name, version string) string {
	return filepath.Join(b.CacheDir, "bin", name+"-"+version)
}

// ensureBinaries builds what is missing from the cache. Kubernetes is
// one long compile whose linking uses one core; the other builds run
// beside it, one after the other, so their downloads and compiles fill the
// idle time. The first failure stops the rest.
func (b *builder) ensureBinaries(ctx context.Context) (binaries, error) {
	kdir := b.binDir("kubernetes", b.KubernetesVersion)
	ev := b.kube.etcdVersion()
	edir := b.binDir("etcd", ev)
	cdir := b.binDir("coredns", b.kube.dnsTag)
	rdir := b.binDir("containerd", versions.Containerd)
	udir := b.binDir("runc", versions.Runc)
	pdir := b.binDir("pause", b.kube.pauseTag)
	gdir := b.binDir("gvisor", versions.GVisor)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return b.cached(kdir, kubeCommands, "Kubernetes "+b.KubernetesVersion, func(w io.Writer) error { return b.buildKubernetes(gctx, kdir, w) })
	})
	g.Go(func() error {
		if err := b.cached(edir, []string{"etcd"}, "etcd "+ev, func(w io.Writer) error {
			return b.goBuildWrapper(gctx, edir, "etcd", "go.etcd.io/etcd/server/v3@"+ev, etcdMain, w)
		}); err != nil {
			return err
		}
		if err := b.cached(cdir, []string{"coredns"}, "CoreDNS "+b.kube.dnsTag, func(w io.Writer) error {
			return b.goBuildWrapper(gctx, cdir, "coredns", "github.com/coredns/coredns@"+b.kube.dnsTag, corednsMain, w)
		}); err != nil {
			return err
		}
		if err := b.cached(rdir, containerdCommands, "containerd "+versions.Containerd, func(w io.Writer) error { return b.buildContainerd(gctx, rdir, w) }); err != nil {
			return err
		}
		if err := b.cached(udir, []string{"runc"}, "runc "+versions.Runc, func(w io.Writer) error { return b.buildRunc(gctx, udir, w) }); err != nil {
			return err
		}
		if err := b.cached(pdir, []string{"pause"}, "pause "+b.kube.pauseTag, func(io.Writer) error { return b.buildPause(gctx, pdir) }); err != nil {
			return err
		}
		return b.cached(gdir, gvisorCommands, "gVisor "+versions.GVisor, func(w io.Writer) error { return b.buildGVisor(gctx, gdir, w) })
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := binaries{"etcd": filepath.Join(edir, "etcd"), "coredns": filepath.Join(cdir, "coredns"), "runc": filepath.Join(udir, "runc"), "pause": filepath.Join(pdir, "pause")}
	for _, c := range kubeCommands {
		out[c] = filepath.Join(kdir, c)
	}
	for _, c := range containerdCommands {
		out[c] = filepath.Join(rdir, c)
	}
	for _, c := range gvisorCommands {
		out[c] = filepath.Join(gdir, c)
	}
	return out, nil
}

// cached runs build unless every named file exists in dir; build gets the
// step's package counter for `go build -v`.
func (b *builder) cached(dir string, names []string, what string, build func(w io.Writer) error) error {
	missing := false
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			missing = true
		}
	}
	if !missing {
		b.Logger.V(1).Infof(" • %s binaries cached in %s", what, dir)
		return nil
	}
	s := b.begin("build "+what+" from source", "")
	// A directory missing a binary (an older build that named fewer) is
	// rebuilt whole.
	_ = os.RemoveAll(dir)
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	if err := build(s.p); err != nil {
		return err
	}
	s.done()
	return nil
}

// goEnv is the environment of every Go build: static, reproducible binaries.
func goEnv() []string {
	return []string{"CGO_ENABLED=0", "GOFLAGS=-mod=mod -buildvcs=false"}
}

// moduleGoMod downloads a module and returns the text of its go.mod.
func moduleGoMod(ctx context.Context, dir, mod string) (string, string, error) {
	out, err := run(ctx, "go", []string{"mod", "download", "-json", mod}, withDir(dir), withEnv(goEnv()...))
	if err != nil {
		return "", "", err
	}
	var info struct{ GoMod, Dir, Error string }
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		return "", "", fmt.Errorf("go mod download %s: %w", mod, err)
	}
	if info.Error != "" {
		return "", "", fmt.Errorf("go mod download %s: %s", mod, info.Error)
	}
	data, err := os.ReadFile(info.GoMod)
	return string(data), info.Dir, err
}

var stagingRe = regexp.MustCompile(`^\s*(k8s\.io/[A-Za-z0-9._-]+)\s+=>\s+\./staging/`)

// StagingReplaces turns k8s.io/kubernetes' replace lines that point into
// ./staging into replaces pinned to the published staging modules
// (v1.X.Y -> v0.X.Y), which is how the main module builds outside its repo.
func StagingReplaces(goMod, k8sVersion string) []string {
	staging := "v0" + strings.TrimPrefix(k8sVersion, "v1")
	var out []string
	sc := bufio.NewScanner(strings.NewReader(goMod))
	for sc.Scan() {
		if m := stagingRe.FindStringSubmatch(sc.Text()); m != nil {
			out = append(out, fmt.Sprintf("replace %s => %s %s", m[1], m[1], staging))
		}
	}
	return out
}

// VersionLDFlags stamps a Kubernetes version into component-base and
// client-go, as the release build does; kubeadm derives image tags from it.
func VersionLDFlags(k8sVersion string) string {
	v := strings.TrimPrefix(k8sVersion, "v")
	parts := strings.SplitN(v, ".", 3)
	major, minor := parts[0], ""
	if len(parts) > 1 {
		minor = parts[1]
	}
	flags := []string{"-s", "-w"}
	for _, pkg := range []string{"k8s.io/component-base/version", "k8s.io/client-go/pkg/version"} {
		flags = append(flags,
			"-X", pkg+".gitVersion="+k8sVersion,
			"-X", pkg+".gitMajor="+major,
			"-X", pkg+".gitMinor="+minor,
			"-X", pkg+".gitTreeState=clean",
			"-X", pkg+".buildDate=1970-01-01T00:00:00Z")
	}
	return strings.Join(flags, " ")
}

func (b *builder) buildKubernetes(ctx context.Context, dir string, w io.Writer) error {
	work := filepath.Join(b.CacheDir, "work", "kubernetes-"+b.KubernetesVersion)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte("module nodeconform.local/kubernetes\n\ngo 1.24\n"), 0o644); err != nil {
		return err
	}
	mod := "k8s.io/kubernetes@" + b.KubernetesVersion
	kgomod, _, err := moduleGoMod(ctx, work, mod)
	if err != nil {
		return err
	}
	replaces := StagingReplaces(kgomod, b.KubernetesVersion)
	if len(replaces) == 0 {
		return fmt.Errorf("%s: no staging replace lines found in its go.mod", mod)
	}
	gomod := "module nodeconform.local/kubernetes\n\ngo 1.24\n\nrequire k8s.io/kubernetes " + b.KubernetesVersion + "\n\n" + strings.Join(replaces, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte(gomod), 0o644); err != nil {
		return err
	}
	args := []string{"build", "-v", "-trimpath", "-ldflags", VersionLDFlags(b.KubernetesVersion), "-o", dir + ".tmp/"}
	for _, c := range kubeCommands {
		args = append(args, "k8s.io/kubernetes/cmd/"+c)
	}
	if _, err := run(ctx, "go", args, withDir(work), withEnv(goEnv()...), withProgress(w)); err != nil {
		return err
	}
	return os.Rename(dir+".tmp", dir)
}

const etcdMain = `package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
`

// corednsMain links only the plugins kubeadm's Corefile uses, which keeps
// the build and the binary small.
const corednsMain = `package main

import (
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/loop"
	_ "github.com/coredns/coredns/plugin/metrics"
	_ "github.com/coredns/coredns/plugin/ready"
	_ "github.com/coredns/coredns/plugin/reload"
	_ "github.com/coredns/coredns/plugin/whoami"

	"github.com/coredns/coredns/coremain"
)

func main() { coremain.Run() }
`

// goBuildWrapper builds a main package that imports mod, in a throwaway
// module, into dir/name.
func (b *builder) goBuildWrapper(ctx context.Context, dir, name, mod, mainSrc string, w io.Writer) error {
	work := filepath.Join(b.CacheDir, "work", name)
	_ = os.RemoveAll(work)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte("module nodeconform.local/"+name+"\n\ngo 1.24\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "main.go"), []byte(mainSrc), 0o644); err != nil {
		return err
	}
	if _, err := run(ctx, "go", []string{"get", mod}, withDir(work), withEnv(goEnv()...)); err != nil {
		return err
	}
	if _, err := run(ctx, "go", []string{"build", "-v", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(dir+".tmp", name), "."}, withDir(work), withEnv(goEnv()...), withProgress(w)); err != nil {
		return err
	}
	return os.Rename(dir+".tmp", dir)
}

// buildContainerd builds containerd, its runc shim and ctr with cgo off
// (static; the btrfs snapshotter, which needs cgo, is left out) and the
// version stamped as containerd's release build does.
func (b *builder) buildContainerd(ctx context.Context, dir string, w io.Writer) error {
	const mod = "github.com/containerd/containerd/v2"
	ldflags := "-s -w -X " + mod + "/version.Version=" + versions.Containerd + " -X " + mod + "/version.Revision=nodeconform"
	args := []string{"install", "-v", "-trimpath", "-tags", "urfave_cli_no_docs no_btrfs", "-ldflags", ldflags}
	for _, c := range containerdCommands {
		args = append(args, mod+"/cmd/"+c+"@"+versions.Containerd)
	}
	work := filepath.Join(b.CacheDir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	env := []string{"CGO_ENABLED=0", "GOFLAGS=-buildvcs=false", "GOBIN=" + dir + ".tmp"}
	if _, err := run(ctx, "go", args, withDir(work), withEnv(env...), withProgress(w)); err != nil {
		return err
	}
	return os.Rename(dir+".tmp", dir)
}

// shimOOMScore is the statement in gVisor's shim that makes the shim's
// start fail where the node lacks CAP_SYS_RESOURCE (kind nodes on these
// hosts): it lowers the shim's oom_score_adj to -999, which only that
// capability allows. shimOOMScoreKept keeps the inherited score instead,
// as containerd's own runc shim and restrict_oom_score_adj do.
const (
	shimOOMScore = `	if err := sys.SetOOMScore(cmd.Process.Pid, oomScoreMax); err != nil {
		return shim.BootstrapParams{}, fmt.Errorf("failed to set OOM Score on shim: %w", err)
	}`
	shimOOMScoreKept = `	// nodeconform: without CAP_SYS_RESOURCE the shim keeps its inherited score.
	_ = sys.SetOOMScore(cmd.Process.Pid, oomScoreMax)`
)

// buildGVisor builds runsc and gVisor's containerd shim, static and
// without cgo. runsc is the module as published, with the pseudo-version
// stamped (it otherwise reports VERSION_MISSING). The shim is built from a
// copy of the module with one statement changed (shimOOMScore); the build
// fails, naming it, if that statement is not found verbatim.
func (b *builder) buildGVisor(ctx context.Context, dir string, w io.Writer) error {
	work := filepath.Join(b.CacheDir, "work", "gvisor")
	_ = os.RemoveAll(work)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	env := []string{"CGO_ENABLED=0", "GOFLAGS=-mod=mod -buildvcs=false"}
	if _, err := run(ctx, "go", []string{"install", "-v", "-trimpath", "-ldflags", "-s -w -X gvisor.dev/gvisor/runsc/version.version=" + versions.GVisor,
		"gvisor.dev/gvisor/runsc@" + versions.GVisor}, withDir(work), withEnv("CGO_ENABLED=0", "GOFLAGS=-buildvcs=false", "GOBIN="+dir+".tmp"), withProgress(w)); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte("module nodeconform.local/gvisor\n\ngo 1.24\n"), 0o644); err != nil {
		return err
	}
	_, src, err := moduleGoMod(ctx, work, "gvisor.dev/gvisor@"+versions.GVisor)
	if err != nil {
		return err
	}
	patched := filepath.Join(work, "src")
	if _, err := run(ctx, "cp", []string{"-r", src, patched}); err != nil {
		return err
	}
	if _, err := run(ctx, "chmod", []string{"-R", "u+w", patched}); err != nil {
		return err
	}
	manager := filepath.Join(patched, "pkg", "shim", "v1", "manager.go")
	text, err := os.ReadFile(manager)
	if err != nil {
		return err
	}
	if !strings.Contains(string(text), shimOOMScore) {
		return fmt.Errorf("gVisor %s: %s no longer holds the OOM score statement nodeconform changes; review it for this version", versions.GVisor, manager)
	}
	if err := os.WriteFile(manager, []byte(strings.Replace(string(text), shimOOMScore, shimOOMScoreKept, 1)), 0o644); err != nil {
		return err
	}
	gomod := "module nodeconform.local/gvisor\n\ngo 1.24\n\nrequire gvisor.dev/gvisor " + versions.GVisor + "\n\nreplace gvisor.dev/gvisor => ./src\n"
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte(gomod), 0o644); err != nil {
		return err
	}
	if _, err := run(ctx, "go", []string{"build", "-v", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(dir+".tmp", "containerd-shim-runsc-v1"), "gvisor.dev/gvisor/shim"},
		withDir(work), withEnv(env...), withProgress(w)); err != nil {
		return err
	}
	return os.Rename(dir+".tmp", dir)
}

// seccompArchive is the static libseccomp runc links against.
const seccompArchive = "/usr/lib/x86_64-linux-gnu/libseccomp.a"

// buildRunc builds runc with seccomp (pods' RuntimeDefault profile needs
// it), linked statically so the same binary runs in the node image and on
// a VM node whatever their libseccomp.
func (b *builder) buildRunc(ctx context.Context, dir string, w io.Writer) error {
	if _, err := os.Stat(seccompArchive); err != nil {
		b.Logger.V(0).Info("installing libseccomp-dev with apt-get (runc links libseccomp statically)")
		if err := hostprep.AptInstall(ctx, b.Logger, "libseccomp-dev", "pkg-config"); err != nil {
			return err
		}
	}
	work := filepath.Join(b.CacheDir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	v := strings.TrimPrefix(versions.Runc, "v")
	args := []string{"install", "-v", "-trimpath", "-tags", "seccomp urfave_cli_no_docs netgo osusergo",
		"-ldflags", "-s -w -X main.version=" + v + " -X main.gitCommit=nodeconform -extldflags -static",
		"github.com/opencontainers/runc@" + versions.Runc}
	env := []string{"CGO_ENABLED=1", "GOFLAGS=-buildvcs=false", "GOBIN=" + dir + ".tmp"}
	if _, err := run(ctx, "go", args, withDir(work), withEnv(env...), withProgress(w)); err != nil {
		return fmt.Errorf("build runc (needs gcc and Debian's libseccomp-dev): %w", err)
	}
	return os.Rename(dir+".tmp", dir)
}

// buildPause compiles Kubernetes' own pause.c statically.
func (b *builder) buildPause(ctx context.Context, dir string) error {
	work := filepath.Join(b.CacheDir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	_, kdir, err := moduleGoMod(ctx, work, "k8s.io/kubernetes@"+b.KubernetesVersion)
	if err != nil {
		return err
	}
	src := filepath.Join(kdir, "build", "pause", "linux", "pause.c")
	if _, err := run(ctx, "cc", []string{"-Os", "-static", "-Wall", "-DVERSION=v" + b.kube.pauseTag, "-o", filepath.Join(dir+".tmp", "pause"), src}); err != nil {
		return fmt.Errorf("compile pause (needs a C compiler with static libc, e.g. Debian's gcc and libc6-dev): %w", err)
	}
	return os.Rename(dir+".tmp", dir)
}

// buildCNI builds our pod network daemon and returns its content hash.
func (b *builder) buildCNI(ctx context.Context) (string, error) {
	out := filepath.Join(b.CacheDir, "bin", "nodeconform-cni")
	if _, err := run(ctx, "go", []string{"build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", out, "./cmd/nodeconform-cni"}, withDir(b.SourceDir), withEnv("CGO_ENABLED=0")); err != nil {
		return "", fmt.Errorf("build nodeconform-cni (run from the nodeconform source tree or pass --source-dir): %w", err)
	}
	return digest.File(out)
}
