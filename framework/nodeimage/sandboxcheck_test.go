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
