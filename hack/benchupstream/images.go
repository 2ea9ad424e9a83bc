package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/nodeconform/nodeconform/framework/cluster"
)

// standIn is an image upstream's specs run, built here instead of pulled:
// the e2e-test-images cannot be pulled on an air-gapped machine.
type standIn struct {
	// Ref is the reference upstream's manifest names, so that its pods
	// find the image already on the node.
	Ref    string
	Change []string // docker import --change lines
	agn    bool     // carries /agnhost
}

var manifestRe = regexp.MustCompile(`configs\[(BusyBox|Agnhost)\]\s*=\s*Config\{list\.PromoterE2eRegistry,\s*"([a-z]+)",\s*"([^"]+)"\}`)

// standIns reads the busybox and agnhost references from upstream's
// image manifest (test/utils/image/manifest.go) at the built version.
func standIns(kubeDir string) ([]standIn, error) {
	data, err := os.ReadFile(filepath.Join(kubeDir, "test", "utils", "image", "manifest.go"))
	if err != nil {
		return nil, err
	}
	var out []standIn
	for _, m := range manifestRe.FindAllStringSubmatch(string(data), -1) {
		ref := "registry.k8s.io/e2e-test-images/" + m[2] + ":" + m[3]
		if m[1] == "BusyBox" {
			out = append(out, standIn{Ref: ref, Change: []string{`CMD ["sh"]`}})
		} else {
			out = append(out, standIn{Ref: ref, Change: []string{`ENTRYPOINT ["/agnhost"]`}, agn: true})
		}
	}
	if len(out) != 2 {
		return nil, fmt.Errorf("%s: want the BusyBox and Agnhost references, found %d", filepath.Join(kubeDir, "test/utils/image/manifest.go"), len(out))
	}
	return out, nil
}

// loadStandIns builds each stand-in (Debian's busybox-static with its
// applet links, plus agnhost where upstream's image has it) with docker
// import and loads it into every node of the kind cluster.
func loadStandIns(ctx context.Context, clusterName, work string, b built, ims []standIn) error {
	busybox, err := busyboxStatic(ctx, work)
	if err != nil {
		return err
	}
	applets, err := exec.CommandContext(ctx, busybox, "--list-full").Output()
	if err != nil {
		return fmt.Errorf("%s --list-full: %w", busybox, err)
	}
	kind := cluster.NewKind(clusterName)
	for _, im := range ims {
		var root bytes.Buffer
		if err := rootfs(&root, busybox, strings.Fields(string(applets)), im.agn, b.Agnhost); err != nil {
			return err
		}
		args := []string{"import"}
		for _, c := range im.Change {
			args = append(args, "--change", c)
		}
		args = append(args, "-", im.Ref)
		cmd := exec.CommandContext(ctx, "docker", args...)
		cmd.Stdin = &root
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("docker import %s: %w: %s", im.Ref, err, out)
		}
		archive := filepath.Join(work, "standin-"+strings.NewReplacer("/", "_", ":", "_").Replace(im.Ref)+".tar")
		if out, err := exec.CommandContext(ctx, "docker", "save", "-o", archive, im.Ref).CombinedOutput(); err != nil {
			return fmt.Errorf("docker save %s: %w: %s", im.Ref, err, out)
		}
		if err := kind.LoadImageArchive(ctx, archive); err != nil {
			return err
		}
		progress("stand-in %s loaded into every node", im.Ref)
	}
	return nil
}

// busyboxStatic fetches Debian's busybox-static package (apt-get
// download: no install) and returns the binary's path.
func busyboxStatic(ctx context.Context, work string) (string, error) {
	dir := filepath.Join(work, "busybox-static")
	bin := filepath.Join(dir, "root", "bin", "busybox")
	if exists(bin) {
		return bin, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", "apt-get download busybox-static && dpkg-deb -x busybox-static_*.deb root")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("busybox-static from the package archive: %w: %s", err, out)
	}
	return bin, nil
}

// rootfs writes a tar of a minimal root: /bin/busybox, a link per applet,
// the directories a container expects, and /agnhost when agn.
func rootfs(w io.Writer, busybox string, applets []string, agn bool, agnhost string) error {
	tw := tar.NewWriter(w)
	for _, d := range []string{"bin/", "sbin/", "usr/", "usr/bin/", "usr/sbin/", "etc/", "tmp/", "proc/", "sys/", "dev/", "mnt/", "root/", "var/"} {
		mode := int64(0o755)
		if d == "tmp/" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: mode}); err != nil {
			return err
		}
	}
	add := func(name, src string) error {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(data))}); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	}
	if err := add("bin/busybox", busybox); err != nil {
		return err
	}
	// Each applet at Debian's path and in /bin, where upstream's busybox
	// image has them all (its specs run /bin/sysctl, /bin/sh …).
	seen := map[string]bool{"bin/busybox": true}
	for _, a := range applets {
		a = strings.TrimPrefix(a, "/")
		for _, p := range []string{a, "bin/" + filepath.Base(a)} {
			if a == "" || seen[p] {
				continue
			}
			seen[p] = true
			if err := tw.WriteHeader(&tar.Header{Name: p, Typeflag: tar.TypeSymlink, Linkname: "/bin/busybox", Mode: 0o777}); err != nil {
				return err
			}
		}
	}
	if agn {
		if err := add("agnhost", agnhost); err != nil {
			return err
		}
	}
	return tw.Close()
}
