// Package registry runs a container registry on this machine for targets
// that must be reached the way users reach theirs: the nodes pull the
// probe image from it instead of having it side-loaded. The registry is
// CNCF Distribution built from the Go module proxy (only its filesystem
// and in-memory drivers), packaged FROM scratch, run on the kind Docker
// network; images are pushed to it with go-containerregistry.
package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/nodeconform/nodeconform/framework/digest"
	"github.com/nodeconform/nodeconform/framework/scratchimage"
	"github.com/nodeconform/nodeconform/framework/versions"
)

// Module is distribution's Go module.
const Module = "github.com/distribution/distribution/v3"

// main imports only what a local test registry needs: no cloud storage
// drivers, so the build stays small and offline-friendly; htpasswd for a
// registry that asks for credentials (WithHtpasswd).
const mainSrc = `package main

import (
	"github.com/distribution/distribution/v3/registry"
	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

func main() { _ = registry.RootCmd.Execute() }
`

// config keeps blobs in memory: the registry lives as long as a test run.
const config = `version: 0.1
log:
  level: warn
storage:
  inmemory: {}
  delete:
    enabled: true
http:
  addr: :5000
`

// Defaults of the registry container.
const (
	// ContainerName is also its host name on the kind network: nodes
	// pull from ContainerName:5000.
	ContainerName = "nodeconform-registry"
	// Network is kind's Docker network.
	Network = "kind"
	// HostPort is where this machine pushes to (loopback only).
	HostPort = "127.0.0.1:5001"
	// Label marks the container for `make clean`.
	Label = "io.nodeconform.registry"
)

// authLabel records whether the registry container asks for credentials.
const authLabel = Label + ".auth"

// NodeHost is the registry as the nodes reach it.
const NodeHost = ContainerName + ":5000"

// HostsTOMLPath is where a node's containerd (config_path
// /etc/containerd/certs.d) looks for how to reach NodeHost.
const HostsTOMLPath = "/etc/containerd/certs.d/" + NodeHost + "/hosts.toml"

// HostsTOML tells containerd to pull from NodeHost over plain HTTP.
const HostsTOML = `server = "http://` + NodeHost + `"

[host."http://` + NodeHost + `"]
  capabilities = ["pull", "resolve"]
`

// BuildOptions configure Build.
type BuildOptions struct {
	CacheDir string
}

// Build builds the registry binary and image (cached by content) and
// returns the image reference.
func Build(ctx context.Context, o BuildOptions) (string, error) {
	// Keyed by main's source too: a registry built from an earlier one
	// lacks what it imports now.
	src := sha256.Sum256([]byte(mainSrc))
	work := filepath.Join(o.CacheDir, "registry-"+versions.Registry+"-"+hex.EncodeToString(src[:])[:8])
	bin := filepath.Join(work, "registry")
	if _, err := os.Stat(bin); err != nil {
		if err := os.MkdirAll(work, 0o755); err != nil {
			return "", err
		}
		gomod := "module nodeconform.local/registry\n\ngo 1.24\n\nrequire " + Module + " " + versions.Registry + "\n"
		if err := os.WriteFile(filepath.Join(work, "go.mod"), []byte(gomod), 0o644); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(work, "main.go"), []byte(mainSrc), 0o644); err != nil {
			return "", err
		}
		for _, args := range [][]string{{"mod", "tidy"}, {"build", "-trimpath", "-ldflags", "-s -w", "-o", bin + ".tmp", "."}} {
			c := exec.CommandContext(ctx, "go", args...)
			c.Dir = work
			c.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
			if out, err := c.CombinedOutput(); err != nil {
				return "", fmt.Errorf("build registry %s (go %s): %w\n%s", versions.Registry, strings.Join(args, " "), err, out)
			}
		}
		if err := os.Rename(bin+".tmp", bin); err != nil {
			return "", err
		}
	}
	cfg := filepath.Join(work, "config.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		return "", err
	}
	sum, err := digest.File(bin)
	if err != nil {
		return "", err
	}
	ref := versions.RegistryImageRepository + ":" + sum[:12]
	df := "FROM scratch\nCOPY registry /registry\nCOPY config.yml /etc/registry/config.yml\nENTRYPOINT [\"/registry\"]\nCMD [\"serve\", \"/etc/registry/config.yml\"]\n"
	err = scratchimage.Build(ctx, scratchimage.Spec{Ref: ref, Archive: filepath.Join(o.CacheDir, "registry-"+sum[:12]+".tar"), Dockerfile: df,
		Files: map[string]string{"registry": bin, "config.yml": cfg}, TempDir: o.CacheDir})
	return ref, err
}

// StartOption configures Start.
type StartOption func(*startOptions)

type startOptions struct{ htpasswd string }

// WithHtpasswd makes the registry ask for credentials, those of an
// htpasswd file (bcrypt), as a private registry does: a node pulls from
// it only with an image pull secret. A running registry is replaced.
func WithHtpasswd(file string) StartOption {
	return func(o *startOptions) { o.htpasswd = file }
}

// Start runs the registry container on the kind network (replacing a
// stopped one) and waits until it answers on HostPort.
func Start(ctx context.Context, image string, opts ...StartOption) error {
	var o startOptions
	for _, f := range opts {
		f(&o)
	}
	// A running registry is kept only when it is one without credentials
	// and none are asked for: one a killed test left asking for them
	// would refuse the production-like target's pulls.
	if out, err := exec.CommandContext(ctx, "docker", "inspect", "-f", `{{.State.Running}} {{index .Config.Labels "`+authLabel+`"}}`, ContainerName).Output(); err == nil && strings.TrimSpace(string(out)) == "true none" && o.htpasswd == "" {
		return wait(ctx, 30*time.Second)
	}
	_ = exec.CommandContext(ctx, "docker", "rm", "-f", ContainerName).Run()
	auth := "none"
	if o.htpasswd != "" {
		auth = "htpasswd"
	}
	args := []string{"run", "-d", "--name", ContainerName, "--network", Network, "--label", Label + "=true", "--label", authLabel + "=" + auth, "-p", HostPort + ":5000"}
	if o.htpasswd != "" {
		abs, err := filepath.Abs(o.htpasswd)
		if err != nil {
			return err
		}
		// Distribution reads its configuration's auth section from the
		// environment too.
		args = append(args, "-v", abs+":/auth/htpasswd:ro", "-e", "REGISTRY_AUTH=htpasswd",
			"-e", "REGISTRY_AUTH_HTPASSWD_REALM=nodeconform", "-e", "REGISTRY_AUTH_HTPASSWD_PATH=/auth/htpasswd")
	}
	out, err := exec.CommandContext(ctx, "docker", append(args, image)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("start registry container: %w: %s", err, out)
	}
	return wait(ctx, 30*time.Second)
}

// Stop removes the registry container.
func Stop(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "docker", "rm", "-f", ContainerName).CombinedOutput()
	if err != nil && !strings.Contains(string(out), "No such container") {
		return fmt.Errorf("remove registry container: %w: %s", err, out)
	}
	return nil
}

func wait(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if last = Ping(ctx, HostPort); last == nil {
			return nil
		}
		time.Sleep(300 * time.Millisecond)
	}
	return fmt.Errorf("registry at %s not answering within %s: %w", HostPort, timeout, last)
}

// Ping checks that a registry answers the v2 API at host.
func Ping(ctx context.Context, host string) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("GET http://%s/v2/: %s", host, resp.Status)
	}
	return nil
}

// ErrUnreachable marks a push whose registry did not answer.
var ErrUnreachable = errors.New("registry unreachable")

// ParseRef validates a push reference (host/repo:tag).
func ParseRef(ref string) (name.Tag, error) {
	opts := []name.Option{name.StrictValidation}
	if insecureHost(ref) {
		opts = append(opts, name.Insecure)
	}
	tag, err := name.NewTag(ref, opts...)
	if err != nil {
		return tag, fmt.Errorf("--push %q: %w", ref, err)
	}
	return tag, nil
}

// PushOption configures Push.
type PushOption func(*[]remote.Option)

// WithBasicAuth pushes with a user name and password (WithHtpasswd).
func WithBasicAuth(user, password string) PushOption {
	return func(o *[]remote.Option) {
		*o = append(*o, remote.WithAuth(&authn.Basic{Username: user, Password: password}))
	}
}

// Push pushes a docker-save archive (one image) to ref (host/repo:tag).
// A plain-HTTP registry is allowed only on loopback and the project's own
// network names.
func Push(ctx context.Context, archive, ref string, opts ...PushOption) error {
	tag, err := ParseRef(ref)
	if err != nil {
		return err
	}
	if err := Ping(ctx, tag.RegistryStr()); err != nil && insecureHost(ref) {
		return fmt.Errorf("%w: %s: %v", ErrUnreachable, tag.RegistryStr(), err)
	}
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		return fmt.Errorf("read image archive %s: %w", archive, err)
	}
	return PushImage(ctx, img, ref, opts...)
}

// PushImage pushes an image to ref (host/repo:tag), as Push does.
func PushImage(ctx context.Context, img v1.Image, ref string, opts ...PushOption) error {
	tag, err := ParseRef(ref)
	if err != nil {
		return err
	}
	ropts := []remote.Option{remote.WithContext(ctx)}
	for _, f := range opts {
		f(&ropts)
	}
	if err := remote.Write(tag, img, ropts...); err != nil {
		var op *net.OpError
		if errors.As(err, &op) {
			return fmt.Errorf("%w: push %s: %v", ErrUnreachable, ref, err)
		}
		return fmt.Errorf("push %s: %w", ref, err)
	}
	return nil
}

func insecureHost(ref string) bool {
	host := strings.SplitN(ref, "/", 2)[0]
	h := strings.Split(host, ":")[0]
	return h == "127.0.0.1" || h == "localhost" || h == ContainerName
}
