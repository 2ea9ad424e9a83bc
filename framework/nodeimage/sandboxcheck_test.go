package nodeimage

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// runSandboxCheck runs the node's sandbox check with wrapper standing in
// for runsc, and returns its status line and whether it wrote the
// containerd drop-in.
func runSandboxCheck(t *testing.T, wrapper string) (string, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the sandbox check's checks run as root")
	}
	run := t.TempDir()
	shim := fakeRunsc(t, "exit 0")
	out, err := exec.Command("bash", "files/usr/local/bin/nodeconform-sandbox-check", run, wrapper, "/etc/containerd/runsc.toml", shim).CombinedOutput()
	if err != nil {
		t.Fatalf("the check must never fail the boot: %v\n%s", err, out)
	}
	status, err := os.ReadFile(filepath.Join(run, "sandbox", "runsc"))
	if err != nil {
		t.Fatalf("no status written: %v\n%s", err, out)
	}
	dropin, _ := os.ReadFile(filepath.Join(run, "containerd.d", "runsc.toml"))
	return strings.TrimSpace(string(status)), string(dropin)
}

func fakeRunsc(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "runsc")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSandboxCheck(t *testing.T) {
	t.Run("a sandbox with its own kernel registers the handler", func(t *testing.T) {
		w := fakeRunsc(t, `echo "booting..." >&2; echo 0a1b2c3d-0000-4000-8000-000000000000`)
		status, dropin := runSandboxCheck(t, w)
		if status != "available" {
			t.Fatalf("status %q", status)
		}
		for _, want := range []string{"runtimes.runsc]", `runtime_type = "io.containerd.runsc.v1"`, `ConfigPath = "/etc/containerd/runsc.toml"`} {
			if !strings.Contains(dropin, want) {
				t.Errorf("drop-in lacks %q:\n%s", want, dropin)
			}
		}
	})
	t.Run("runsc failing leaves the handler out and says why", func(t *testing.T) {
		status, dropin := runSandboxCheck(t, fakeRunsc(t, `echo "FATAL ERROR: error setting system registers" >&2; exit 128`))
		if !strings.HasPrefix(status, "unavailable: ") || !strings.Contains(status, "exited 128") || !strings.Contains(status, "system registers") {
			t.Errorf("status %q", status)
		}
		if dropin != "" {
			t.Errorf("drop-in written although runsc failed:\n%s", dropin)
		}
	})
	t.Run("a sandbox on the node's own kernel is no sandbox", func(t *testing.T) {
		status, dropin := runSandboxCheck(t, fakeRunsc(t, `cat /proc/sys/kernel/random/boot_id`))
		if !strings.Contains(status, "node's own boot_id") || dropin != "" {
			t.Errorf("status %q, drop-in %q", status, dropin)
		}
	})
	t.Run("no runsc", func(t *testing.T) {
		status, dropin := runSandboxCheck(t, filepath.Join(t.TempDir(), "absent"))
		if !strings.Contains(status, "is not installed") || dropin != "" {
			t.Errorf("status %q, drop-in %q", status, dropin)
		}
	})
}

// The wrapper turns the kubelet's systemd cgroup name into the absolute
// path systemd and runc would use, so runsc joins the pod's cgroup on v1.
func TestRunscWrapperExpandsSystemdCgroupsPath(t *testing.T) {
	bundle := t.TempDir()
	config := `{"ociVersion":"1.2.1","linux":{"cgroupsPath":"kubelet-kubepods-burstable-pod6f1d2c4e_9b0a_4c3d_8e7f_0a1b2c3d4e5f.slice:cri-containerd:abc123","namespaces":[]}}`
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	// The stand-in prints its arguments and the path runsc would be given.
	fake := fakeRunsc(t, `echo "args: $*"; grep -o '"cgroupsPath":"[^"]*"' "$5/config.json"`)
	c := exec.Command("bash", "files/usr/local/bin/runsc-nodeconform", "--root", "/run/x", "create", "--bundle", bundle, "abc123")
	c.Env = append(os.Environ(), "NODECONFORM_RUNSC="+fake)
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	want := `"cgroupsPath":"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-burstable.slice/kubelet-kubepods-burstable-pod6f1d2c4e_9b0a_4c3d_8e7f_0a1b2c3d4e5f.slice/cri-containerd-abc123.scope"`
	if !strings.Contains(string(out), want) || !strings.Contains(string(out), "args: --root /run/x create --bundle "+bundle+" abc123") {
		t.Errorf("got:\n%s\nwant the arguments unchanged and %s", out, want)
	}
	// A cgroupfs path (no slice) is left alone, and so is every other command.
	os.WriteFile(filepath.Join(bundle, "config.json"), []byte(`{"linux":{"cgroupsPath":"/kubepods/burstable/podx/abc"}}`), 0o644)
	c = exec.Command("bash", "files/usr/local/bin/runsc-nodeconform", "--root", "/run/x", "create", "--bundle", bundle, "abc123")
	c.Env = append(os.Environ(), "NODECONFORM_RUNSC="+fake)
	if out, err := c.CombinedOutput(); err != nil || !strings.Contains(string(out), `"cgroupsPath":"/kubepods/burstable/podx/abc"`) {
		t.Errorf("cgroupfs path changed: %v\n%s", err, out)
	}
}
