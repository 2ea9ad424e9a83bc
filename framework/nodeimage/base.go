package nodeimage

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/nodeconform/nodeconform/framework/hostprep"
	"github.com/nodeconform/nodeconform/framework/versions"
)

// ensureBase returns a docker image holding the debootstrapped root
// filesystem, building it when absent.
func (b *builder) ensureBase(ctx context.Context) (string, error) {
	sum := sha256.Sum256([]byte(recipeVersion + versions.DebianSuite + strings.Join(basePackages, ",")))
	tag := versions.NodeImageRepository + "-base:" + versions.DebianSuite + "-" + hex.EncodeToString(sum[:])[:12]
	if _, err := docker(ctx, "image", "inspect", tag); err == nil {
		b.Logger.V(0).Infof(" • base root filesystem %s cached", tag)
		return tag, nil
	}
	done := b.sideStep("debootstrap " + versions.DebianSuite + " root filesystem")
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("debootstrap needs root")
	}
	rootfs := filepath.Join(b.CacheDir, "rootfs")
	defer func() {
		if err := removeRoot(rootfs); err != nil {
			b.Logger.Warnf("%v", err)
		}
	}()
	// The node root also drops the build's logs.
	if err := b.debootstrap(ctx, rootfs, basePackages, "var/log"); err != nil {
		return "", err
	}
	tar := exec.CommandContext(ctx, "tar", "-C", rootfs, "-c", ".")
	pipe, err := tar.StdoutPipe()
	if err != nil {
		return "", err
	}
	if err := tar.Start(); err != nil {
		return "", err
	}
	if _, err := run(ctx, "docker", []string{"import", "-c", "ENV container=docker", "-", tag}, withStdin(pipe)); err != nil {
		_ = tar.Wait()
		return "", err
	}
	if err := tar.Wait(); err != nil {
		return "", fmt.Errorf("tar root filesystem: %w", err)
	}
	done()
	return tag, nil
}

// debootstrap makes a minbase Debian root with packages in dir (replacing
// what is there), installing debootstrap and finding the host's mirror as
// needed. Documentation, locales, apt caches and the extra paths are
// emptied: dead weight in a node. A failed run's root is removed without
// walking into mounts debootstrap left inside it.
func (b *builder) debootstrap(ctx context.Context, dir string, packages []string, trim ...string) error {
	if _, err := exec.LookPath("debootstrap"); err != nil {
		b.Logger.V(0).Info("installing debootstrap with apt-get")
		if err := hostprep.AptInstall(ctx, b.Logger, "debootstrap"); err != nil {
			return err
		}
	}
	mirror := b.Mirror
	if mirror == "" {
		var err error
		if mirror, err = HostDebianMirror(versions.DebianSuite); err != nil {
			return err
		}
	}
	if err := removeRoot(dir); err != nil {
		return err
	}
	if _, err := run(ctx, "debootstrap", []string{
		"--variant=minbase", "--include=" + strings.Join(packages, ","),
		versions.DebianSuite, dir, mirror}); err != nil {
		if rerr := removeRoot(dir); rerr != nil {
			b.Logger.Warnf("%v", rerr)
		}
		return fmt.Errorf("debootstrap from %s: %w", mirror, err)
	}
	for _, p := range append([]string{"usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "var/cache/apt", "var/lib/apt/lists"}, trim...) {
		if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
			return err
		}
		_ = os.MkdirAll(filepath.Join(dir, p), 0o755)
	}
	return nil
}
