// Package scratchimage packages static binaries into a FROM scratch image
// and a docker-save archive, the form kind loads into its nodes. The probe
// and NFD images are built this way.
package scratchimage

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Spec describes one image.
type Spec struct {
	// Ref is the image reference; callers tag by content hash, so an
	// existing Archive is that image.
	Ref string
	// Archive is where the docker-save archive goes.
	Archive string
	// Dockerfile is the build recipe; it COPYs Files by name.
	Dockerfile string
	// Files maps a name in the build context to the file copied there
	// (mode 0755).
	Files map[string]string
	// TempDir holds the build context while it is built.
	TempDir string
}

// Build creates the image and its archive, unless the archive exists.
func Build(ctx context.Context, s Spec) error {
	if _, err := os.Stat(s.Archive); err == nil {
		return nil
	}
	dir, err := os.MkdirTemp(s.TempDir, "image-ctx-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	for name, src := range s.Files {
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "Dockerfile"), []byte(s.Dockerfile), 0o644); err != nil {
		return err
	}
	if out, err := docker(ctx, dir, "build", "-q", "-t", s.Ref, "."); err != nil {
		return fmt.Errorf("docker build %s: %w\n%s", s.Ref, err, out)
	}
	// A temporary name of this call's own: suites started side by side
	// (go test ./suites/...) may build the same image at once.
	tmp := filepath.Join(dir, "image.tar")
	if out, err := docker(ctx, dir, "save", "-o", tmp, s.Ref); err != nil {
		return fmt.Errorf("docker save %s: %w\n%s", s.Ref, err, out)
	}
	return os.Rename(tmp, s.Archive)
}

// docker runs the classic builder: BuildKit is not installed with
// Debian's docker.io.
func docker(ctx context.Context, dir string, args ...string) (string, error) {
	c := exec.CommandContext(ctx, "docker", args...)
	c.Dir = dir
	c.Env = append(os.Environ(), "DOCKER_BUILDKIT=0")
	out, err := c.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
