package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodeconform/nodeconform/framework/nodeimage"
)

// wrapperTest is the e2e.test main of the wrapper module: upstream's
// TestMain and RunE2ETests (test/e2e/e2e_test.go, e2e.go), trimmed to the
// node areas, so that the build compiles test/e2e/common/node and
// test/e2e/node and not every SIG's specs and cloud provider.
const wrapperTest = `package upstream

import (
	"flag"
	"os"
	"testing"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	"k8s.io/component-base/logs"
	"k8s.io/kubernetes/test/e2e/framework"
	"k8s.io/kubernetes/test/e2e/framework/config"
	"k8s.io/kubernetes/test/e2e/framework/testfiles"
	e2etestingmanifests "k8s.io/kubernetes/test/e2e/testing-manifests"

	_ "k8s.io/kubernetes/test/e2e/common/node"
	_ "k8s.io/kubernetes/test/e2e/framework/node/init"
	_ "k8s.io/kubernetes/test/e2e/node"
)

func TestMain(m *testing.M) {
	config.CopyFlags(config.Flags, flag.CommandLine)
	framework.RegisterCommonFlags(flag.CommandLine)
	framework.RegisterClusterFlags(flag.CommandLine)
	flag.Parse()
	testfiles.AddFileSource(e2etestingmanifests.GetE2ETestingManifestsFS())
	framework.AfterReadingAllFlags(&framework.TestContext)
	os.Exit(m.Run())
}

func TestE2E(t *testing.T) {
	logs.InitLogs()
	defer logs.FlushLogs()
	gomega.RegisterFailHandler(framework.Fail)
	suiteConfig, reporterConfig := framework.CreateGinkgoConfig()
	ginkgo.RunSpecs(t, "Kubernetes e2e suite (node areas)", suiteConfig, reporterConfig)
}
`

// agnhostMain keeps agnhost's package in the wrapper's build list.
const agnhostTools = `//go:build tools

package upstream

import _ "k8s.io/kubernetes/test/images/agnhost"
`

// built is what buildUpstream leaves: upstream's e2e.test and agnhost
// (for the stand-in image), and the module directory they came from.
type built struct {
	E2E, Agnhost, ModuleDir string
	// KubeDir is k8s.io/kubernetes' source in the module cache.
	KubeDir string
}

// buildUpstream builds e2e.test and agnhost at k8s.io/kubernetes version
// ver in a wrapper module under work, offline apart from the module
// proxy: the staging modules are pinned to their published v0 versions,
// as the node image's Kubernetes build does. Kept by content: a second
// call with the same inputs is a no-op.
func buildUpstream(ctx context.Context, work, ver string) (built, error) {
	dir := filepath.Join(work, "e2e-"+ver)
	b := built{E2E: filepath.Join(dir, "e2e.test"), Agnhost: filepath.Join(dir, "agnhost"), ModuleDir: dir}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return b, err
	}
	stampFile := filepath.Join(dir, "stamp")
	sum := sha256.Sum256([]byte(ver + wrapperTest + agnhostTools))
	stamp := hex.EncodeToString(sum[:])
	env := append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod -buildvcs=false -trimpath")
	// The download (a no-op when cached) also names the source directory
	// the stand-in images' references are read from.
	scratch := filepath.Join(work, "e2e-download")
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		return b, err
	}
	if err := os.WriteFile(filepath.Join(scratch, "go.mod"), []byte("module nodeconform.local/download\n\ngo 1.24\n"), 0o644); err != nil {
		return b, err
	}
	out, err := goCmd(ctx, scratch, env, "mod", "download", "-json", "k8s.io/kubernetes@"+ver)
	if err != nil {
		return b, err
	}
	var info struct{ GoMod, Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil || info.Error != "" {
		return b, fmt.Errorf("go mod download k8s.io/kubernetes@%s: %v%s", ver, err, info.Error)
	}
	b.KubeDir = info.Dir
	if old, err := os.ReadFile(stampFile); err == nil && string(old) == stamp && exists(b.E2E) && exists(b.Agnhost) {
		progress("e2e.test %s: built before (%s)", ver, b.E2E)
		return b, nil
	}
	kmod, err := os.ReadFile(info.GoMod)
	if err != nil {
		return b, err
	}
	replaces := nodeimage.StagingReplaces(string(kmod), ver)
	if len(replaces) == 0 {
		return b, fmt.Errorf("k8s.io/kubernetes@%s: no staging replace lines in its go.mod", ver)
	}
	gomod := "module nodeconform.local/upstream\n\ngo 1.24\n\nrequire k8s.io/kubernetes " + ver + "\n\n" + strings.Join(replaces, "\n") + "\n"
	for name, data := range map[string]string{"go.mod": gomod, "e2e_test.go": wrapperTest, "tools.go": agnhostTools} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return b, err
		}
	}
	_ = os.Remove(filepath.Join(dir, "go.sum"))
	steps := []struct {
		what string
		args []string
	}{
		{"go mod tidy (wrapper module)", []string{"mod", "tidy"}},
		{"agnhost (static)", []string{"build", "-ldflags", "-s -w", "-o", b.Agnhost, "k8s.io/kubernetes/test/images/agnhost"}},
		{"e2e.test (test/e2e/common/node, test/e2e/node; about 8 min and 2 GB on 2 cores)", []string{"test", "-c", "-ldflags", "-s -w", "-o", b.E2E, "."}},
	}
	for _, s := range steps {
		if _, err := goCmd(ctx, dir, env, s.args...); err != nil {
			return b, fmt.Errorf("%s: %w", s.what, err)
		}
	}
	return b, os.WriteFile(stampFile, []byte(stamp), 0o644)
}

// goCmd runs go with a progress line every 30 s, and returns stdout; its
// error carries the command's output.
func goCmd(ctx context.Context, dir string, env []string, args ...string) ([]byte, error) {
	what := "go " + strings.Join(args, " ")
	if len(what) > 90 {
		what = what[:90] + "…"
	}
	progress("%s", what)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir, cmd.Env = dir, env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(30 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				progress("  … %s still running, %s elapsed", args[0], time.Since(start).Round(time.Second))
			}
		}
	}()
	out, err := cmd.Output()
	close(done)
	if err != nil {
		return out, fmt.Errorf("%s: %w\n%s", what, err, tail(stderr.String(), 4000))
	}
	progress("  done in %s", time.Since(start).Round(time.Second))
	return out, nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

var benchStart = time.Now()

// progress writes one line to stderr with the time since the start.
func progress(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(benchStart).Seconds(), fmt.Sprintf(format, a...))
}
