// Package nfd builds Node Feature Discovery (NFD) from its Go module, deploys
// it on the cluster under test, and evaluates the seed's kata eligibility
// rule from ground truth read on each node.
package nfd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"

	"github.com/nodeconform/nodeconform/framework/digest"
	"github.com/nodeconform/nodeconform/framework/scratchimage"
)

// Commands are the NFD programs the image carries. nfd-gc is not among
// them: it only deletes NodeFeature objects of nodes that left the cluster,
// and a deployment made by Deploy is removed with its namespace.
var Commands = []string{"nfd-master", "nfd-worker"}

// HostMountPrefix is where nfd-worker looks for the host's /sys, /boot,
// /lib and /usr. It is stamped into the binaries at link time, as the
// upstream image does; the worker DaemonSet mounts the host paths there.
const HostMountPrefix = "/host-"

// BuildOptions configures BuildImage.
type BuildOptions struct {
	// SourceDir is the nodeconform module root. NFD is built from the Go
	// module proxy, not from this tree; the field keeps the image
	// builders' options alike.
	SourceDir string
	// CacheDir receives the binaries, the wrapper module and the archive.
	CacheDir string
}

// Image is a built NFD image.
type Image struct {
	// Ref is the image reference, tagged by content.
	Ref string
	// Archive is a docker-save archive of the image.
	Archive string
}

// dockerfile puts the binaries where the upstream manifests expect them
// (commands nfd-master and nfd-worker on PATH) and runs them as nobody, as
// the upstream image does.
const dockerfile = `FROM scratch
COPY nfd-master nfd-worker /usr/bin/
ENV PATH=/usr/bin
USER 65534:65534
`

// BuildImage builds nfd-master and nfd-worker at version NFD as static
// binaries (once per version, kept in CacheDir) and, when missing, a
// FROM scratch image of them and its archive. The tag is a hash of the
// binaries and the Dockerfile.
func BuildImage(ctx context.Context, o BuildOptions) (Image, error) {
	if o.CacheDir == "" {
		return Image{}, fmt.Errorf("nfd: BuildOptions.CacheDir is empty")
	}
	binDir := filepath.Join(o.CacheDir, "bin", "nfd-"+NFD)
	if !allExist(binDir, Commands) {
		if err := buildBinaries(ctx, o.CacheDir, binDir); err != nil {
			return Image{}, err
		}
	}
	h := sha256.New()
	h.Write([]byte(dockerfile))
	for _, c := range Commands {
		sum, err := digest.File(filepath.Join(binDir, c))
		if err != nil {
			return Image{}, err
		}
		fmt.Fprintf(h, "%s %s\n", c, sum)
	}
	sum := hex.EncodeToString(h.Sum(nil))[:12]
	img := Image{
		Ref:     ImageRepository + ":" + sum,
		Archive: filepath.Join(o.CacheDir, "nfd-"+sum+".tar"),
	}
	files := map[string]string{}
	for _, c := range Commands {
		files[c] = filepath.Join(binDir, c)
	}
	err := scratchimage.Build(ctx, scratchimage.Spec{Ref: img.Ref, Archive: img.Archive, Dockerfile: dockerfile, Files: files, TempDir: o.CacheDir})
	return img, err
}

// LDFlags are the linker flags of the NFD build: stripped, version and
// host mount prefix stamped as NFD's Makefile does.
func LDFlags() string {
	return "-s -w" +
		" -X " + Module + "/pkg/version.version=" + NFD +
		" -X " + Module + "/pkg/utils/hostpath.pathPrefix=" + HostMountPrefix
}

// buildBinaries builds Commands in a throwaway module that requires NFD and
// repeats its replace directives (a module's replaces only apply when it is
// the main module).
func buildBinaries(ctx context.Context, cacheDir, binDir string) error {
	work := filepath.Join(cacheDir, "work", "nfd-"+NFD)
	_ = os.RemoveAll(work)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	header := "module nodeconform.local/nfd\n\ngo 1.23\n"
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte(header), 0o644); err != nil {
		return err
	}
	out, err := command(ctx, work, goEnv(), "go", "mod", "download", "-json", Module+"@"+NFD)
	if err != nil {
		return fmt.Errorf("go mod download %s@%s: %w\n%s", Module, NFD, err, out)
	}
	var info struct{ GoMod, Error string }
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		return fmt.Errorf("go mod download %s@%s: %w", Module, NFD, err)
	}
	if info.Error != "" {
		return fmt.Errorf("go mod download %s@%s: %s", Module, NFD, info.Error)
	}
	nfdGoMod, err := os.ReadFile(info.GoMod)
	if err != nil {
		return err
	}
	replaces, err := WrapperReplaces(string(nfdGoMod), Module, NFD)
	if err != nil {
		return err
	}
	gomod := header + "\nrequire " + Module + " " + NFD + "\n\n" + strings.Join(replaces, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte(gomod), 0o644); err != nil {
		return err
	}
	tmp := binDir + ".tmp"
	_ = os.RemoveAll(tmp)
	args := []string{"build", "-trimpath", "-tags", "osusergo,netgo", "-ldflags", LDFlags(), "-o", tmp + "/"}
	for _, c := range Commands {
		args = append(args, Module+"/cmd/"+c)
	}
	if out, err := command(ctx, work, goEnv(), "go", args...); err != nil {
		return fmt.Errorf("build NFD %s: %w\n%s", NFD, err, out)
	}
	_ = os.RemoveAll(binDir)
	return os.Rename(tmp, binDir)
}

// WrapperReplaces returns the replace directives of a module's go.mod as
// lines for a wrapper module that requires it. Replaces pointing into the
// module's own tree (./api/nfd) become replaces by the nested module
// published at the same version; any other local path is an error.
func WrapperReplaces(goMod, module, version string) ([]string, error) {
	var out []string
	inBlock := false
	sc := bufio.NewScanner(strings.NewReader(goMod))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "//"); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		switch {
		case inBlock && line == ")":
			inBlock = false
			continue
		case !inBlock && (line == "replace (" || line == "replace("):
			inBlock = true
			continue
		case !inBlock && strings.HasPrefix(line, "replace "):
			line = strings.TrimSpace(strings.TrimPrefix(line, "replace"))
		case !inBlock:
			continue
		}
		if line == "" {
			continue
		}
		old, target, ok := strings.Cut(line, "=>")
		if !ok {
			return nil, fmt.Errorf("%s go.mod: bad replace line %q", module, line)
		}
		oldF, newF := strings.Fields(old), strings.Fields(target)
		if len(oldF) == 0 || len(newF) == 0 {
			return nil, fmt.Errorf("%s go.mod: bad replace line %q", module, line)
		}
		if len(newF) == 1 && (strings.HasPrefix(newF[0], "./") || strings.HasPrefix(newF[0], "../")) {
			nested := path.Join(module, newF[0])
			if oldF[0] != nested {
				return nil, fmt.Errorf("%s go.mod: replace %s => %s points outside the module's own nested modules", module, oldF[0], newF[0])
			}
			out = append(out, fmt.Sprintf("replace %s => %s %s", oldF[0], nested, version))
			continue
		}
		out = append(out, "replace "+strings.Join(oldF, " ")+" => "+strings.Join(newF, " "))
	}
	return out, sc.Err()
}

// goEnv is the environment of the NFD build: static binaries, module
// requirements completed as needed, no VCS stamping.
func goEnv() []string {
	return []string{"CGO_ENABLED=0", "GOFLAGS=-mod=mod -buildvcs=false"}
}

func allExist(dir string, names []string) bool {
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			return false
		}
	}
	return true
}

// command runs a program and returns its standard output; on failure the
// output is its standard output and error together.
func command(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	c := exec.CommandContext(ctx, name, args...)
	c.Dir = dir
	c.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	if err := c.Run(); err != nil {
		return strings.TrimSpace(stdout.String() + "\n" + stderr.String()), err
	}
	return strings.TrimSpace(stdout.String()), nil
}
