// Package hostprep makes the machine able to run kind clusters: it finds a
// Docker engine, installs and starts one on Debian hosts when none answers,
// and works around capability bounding sets that break privileged containers.
package hostprep

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"sigs.k8s.io/kind/pkg/log"

	"github.com/nodeconform/nodeconform/framework/capfix"
)

// Options configures EnsureDocker.
type Options struct {
	// Logger receives progress messages.
	Logger log.Logger
	// Install allows installing docker.io with apt-get and starting dockerd.
	Install bool
	// WrapperDir is where the runc wrapper is installed when needed.
	WrapperDir string
	// DaemonConfig is dockerd's configuration file.
	DaemonConfig string
	// DockerdLog receives the output of a dockerd started by us.
	DockerdLog string
	// StartTimeout bounds the wait for a started dockerd to answer.
	StartTimeout time.Duration
}

// quirkReported is set in the environment once a host quirk was printed.
const quirkReported = "NODECONFORM_HOST_QUIRKS_REPORTED"

// DefaultOptions returns the paths used on Debian hosts.
func DefaultOptions(logger log.Logger) Options {
	return Options{
		Logger:       logger,
		Install:      true,
		WrapperDir:   "/usr/local/libexec/nodeconform",
		DaemonConfig: "/etc/docker/daemon.json",
		DockerdLog:   "/var/log/nodeconform-dockerd.log",
		StartTimeout: 90 * time.Second,
	}
}

const wrapperRuntime = "nodeconform-runc"

// DockerAnswers reports whether a Docker engine answers within a short timeout.
func DockerAnswers(ctx context.Context) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "docker", "info", "--format", "{{.ServerVersion}} {{.DefaultRuntime}}").Output()
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(out)), true
}

// EnsureDocker returns nil once a Docker engine answers that can start
// privileged containers on this host.
func EnsureDocker(ctx context.Context, o Options) error {
	missing, err := capfix.HostMissing()
	if err != nil {
		return fmt.Errorf("read this host's capability bounding set: %w", err)
	}
	if len(missing) > 0 {
		// Said once per command: the runner reports it, and the suites
		// it starts inherit the note that it was reported.
		if os.Getenv(quirkReported) == "" {
			o.Logger.V(0).Infof("host capability bounding set lacks %s: privileged containers need the %s runc wrapper", strings.Join(missing, ","), wrapperRuntime)
			_ = os.Setenv(quirkReported, "1")
		}
	}
	if info, ok := DockerAnswers(ctx); ok {
		fields := strings.Fields(info)
		o.Logger.V(1).Infof("docker engine %s answers", info)
		if len(missing) > 0 && (len(fields) < 2 || fields[1] != wrapperRuntime) {
			return fmt.Errorf("the running docker engine (%s) uses default runtime %q, but this host lacks %s, so privileged kind nodes will fail; "+
				"stop dockerd and rerun `nodeconform setup` to start it with the %s wrapper, or configure it yourself", info, lastField(fields), strings.Join(missing, ","), wrapperRuntime)
		}
		return nil
	}
	if !o.Install {
		return errors.New("no docker engine answers (`docker info` failed); start one, or run `nodeconform setup` as root on Debian to install docker.io")
	}
	if os.Geteuid() != 0 {
		return errors.New("no docker engine answers and nodeconform is not root: start Docker yourself or rerun as root to have docker.io installed")
	}
	if _, err := os.Stat("/etc/debian_version"); err != nil {
		return errors.New("no docker engine answers and this is not a Debian host: install and start a Docker engine yourself")
	}
	if _, err := exec.LookPath("dockerd"); err != nil {
		o.Logger.V(0).Info("installing docker.io with apt-get (no Docker engine found)")
		if err := aptInstall(ctx, o.Logger, "docker.io"); err != nil {
			return err
		}
	}
	if len(missing) > 0 {
		if err := installWrapper(o); err != nil {
			return err
		}
	}
	return startDockerd(ctx, o)
}

func lastField(f []string) string {
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}

// AptInstall installs Debian packages non-interactively.
func AptInstall(ctx context.Context, logger log.Logger, pkgs ...string) error {
	return aptInstall(ctx, logger, pkgs...)
}

// aptMu serialises this process's apt-get runs (image build stages run
// side by side); the lock timeout covers other processes' runs.
var aptMu sync.Mutex

func aptInstall(ctx context.Context, logger log.Logger, pkgs ...string) error {
	aptMu.Lock()
	defer aptMu.Unlock()
	env := append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	lock := []string{"-o", "DPkg::Lock::Timeout=300"}
	for _, args := range [][]string{append([]string{"update", "-qq"}, lock...), append(append([]string{"install", "-y", "-qq", "--no-install-recommends"}, lock...), pkgs...)} {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, tail(out, 2000))
		}
	}
	logger.V(1).Infof("installed %s", strings.Join(pkgs, " "))
	return nil
}

func installWrapper(o Options) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.WrapperDir, 0o755); err != nil {
		return err
	}
	dst := filepath.Join(o.WrapperDir, capfix.WrapperName)
	if err := copyFile(self, dst, 0o755); err != nil {
		return fmt.Errorf("install runc wrapper: %w", err)
	}
	cfg := map[string]any{}
	if data, err := os.ReadFile(o.DaemonConfig); err == nil {
		if err := json.Unmarshal(data, &cfg); err != nil {
			return fmt.Errorf("%s is not valid JSON: %w", o.DaemonConfig, err)
		}
	}
	MergeDaemonConfig(cfg, dst)
	data, _ := json.MarshalIndent(cfg, "", "  ")
	if err := os.MkdirAll(filepath.Dir(o.DaemonConfig), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(o.DaemonConfig, data, 0o644); err != nil {
		return err
	}
	o.Logger.V(0).Infof("installed runc wrapper %s as dockerd's default runtime (%s)", dst, o.DaemonConfig)
	return nil
}

// MergeDaemonConfig adds the wrapper runtime to a dockerd configuration and
// makes it the default, keeping every other setting.
func MergeDaemonConfig(cfg map[string]any, wrapperPath string) {
	runtimes, _ := cfg["runtimes"].(map[string]any)
	if runtimes == nil {
		runtimes = map[string]any{}
	}
	runtimes[wrapperRuntime] = map[string]any{"path": wrapperPath}
	cfg["runtimes"] = runtimes
	cfg["default-runtime"] = wrapperRuntime
}

func copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

func startDockerd(ctx context.Context, o Options) error {
	if isSystemd() {
		o.Logger.V(0).Info("starting docker.service")
		if out, err := exec.CommandContext(ctx, "systemctl", "restart", "docker").CombinedOutput(); err != nil {
			return fmt.Errorf("systemctl restart docker: %w\n%s", err, out)
		}
	} else {
		logf, err := os.OpenFile(o.DockerdLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		defer logf.Close()
		// dockerd must outlive nodeconform: own session, no context.
		cmd := exec.Command("dockerd")
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start dockerd: %w", err)
		}
		pid := cmd.Process.Pid
		_ = cmd.Process.Release()
		o.Logger.V(0).Infof("started dockerd (pid %d, log %s)", pid, o.DockerdLog)
	}
	deadline := time.Now().Add(o.StartTimeout)
	for time.Now().Before(deadline) {
		if _, ok := DockerAnswers(ctx); ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	logTail, _ := os.ReadFile(o.DockerdLog)
	return fmt.Errorf("dockerd did not answer within %s; last log lines:\n%s", o.StartTimeout, tail(logTail, 2000))
}

func isSystemd() bool {
	comm, err := os.ReadFile("/proc/1/comm")
	return err == nil && strings.TrimSpace(string(comm)) == "systemd"
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
