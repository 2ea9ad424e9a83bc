// Package probe builds nodeconform's probe image (FROM scratch, one static
// binary) and makes it available to the cluster under test.
package probe

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/nodeconform/nodeconform/framework/digest"
	"github.com/nodeconform/nodeconform/framework/scratchimage"
	"github.com/nodeconform/nodeconform/framework/versions"
)

// BuildOptions configures BuildImage.
type BuildOptions struct {
	// SourceDir is the nodeconform module root.
	SourceDir string
	// CacheDir receives the binary and the image archive.
	CacheDir string
}

// Image is a built probe image.
type Image struct {
	// Ref is the image reference, tagged by content.
	Ref string
	// Archive is a docker-save archive of the image.
	Archive string
}

// BuildImage builds the probe binary and, when its content changed, the
// image and its archive. The tag is the binary's hash, so pods always run
// the binary that was just built.
func BuildImage(ctx context.Context, o BuildOptions) (Image, error) {
	bin := filepath.Join(o.CacheDir, "bin", "nodeconform-probe")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return Image{}, err
	}
	if out, err := command(ctx, o.SourceDir, nil, "go", "build", "-trimpath", "-buildvcs=false", "-ldflags", "-s -w", "-o", bin, "./cmd/nodeconform-probe"); err != nil {
		return Image{}, fmt.Errorf("build nodeconform-probe: %w\n%s", err, out)
	}
	sum, err := digest.File(bin)
	if err != nil {
		return Image{}, err
	}
	img := Image{
		Ref:     versions.ProbeImageRepository + ":" + sum[:12],
		Archive: filepath.Join(o.CacheDir, "probe-"+sum[:12]+".tar"),
	}
	df := "FROM scratch\nCOPY nodeconform-probe /nodeconform-probe\nENTRYPOINT [\"/nodeconform-probe\"]\nCMD [\"sleep\"]\n"
	err = scratchimage.Build(ctx, scratchimage.Spec{Ref: img.Ref, Archive: img.Archive, Dockerfile: df,
		Files: map[string]string{"nodeconform-probe": bin}, TempDir: o.CacheDir})
	return img, err
}

func command(ctx context.Context, dir string, env []string, name string, args ...string) (string, error) {
	c := exec.CommandContext(ctx, name, args...)
	c.Dir = dir
	c.Env = append(os.Environ(), append([]string{"CGO_ENABLED=0"}, env...)...)
	out, err := c.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
