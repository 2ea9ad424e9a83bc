package nodechange

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestStoredEntryRoundTrip: what Record stores is read back by Pending
// with its units and after-script, and running the stored file runs only
// the undo (the headers are comments).
func TestStoredEntryRoundTrip(t *testing.T) {
	e := Entry{Node: "w1", Run: "20261202-0512-ab12", Name: "kubelet-misconfigured",
		Undo: "echo undone", Restart: []string{"kubelet.service"}, After: "systemctl stop kubepods.slice; ! ls -d /sys/fs/cgroup/kubepods.slice"}
	body := e.script()
	got, ok, err := parseEntry("w1", "20261202-0512-ab12.kubelet-misconfigured.sh", body)
	if err != nil || !ok {
		t.Fatalf("%v %v", ok, err)
	}
	if got.Run != e.Run || got.Name != e.Name || got.After != e.After || strings.Join(got.Restart, ",") != "kubelet.service" {
		t.Fatalf("%+v", got)
	}
	out, err := exec.Command("sh", "-c", got.Undo).CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "undone" {
		t.Fatalf("stored script ran %q (%v)", out, err)
	}
	// Entries written before after-scripts existed read as before.
	old := Entry{Node: "w1", Run: "r", Name: "kubelet-cpu-cfs-quota", Undo: "true", Restart: []string{"kubelet.service"}}
	if got, _, _ := parseEntry("w1", "r.kubelet-cpu-cfs-quota.sh", old.script()); got.After != "" || len(got.Restart) != 1 {
		t.Fatalf("%+v", got)
	}
	for _, f := range []string{"README", "r.name.sh.tmp", "noname.sh"} {
		if _, ok, _ := parseEntry("w1", f, "x"); ok {
			t.Errorf("%s read as an entry", f)
		}
	}
	if _, _, err := parseEntry("w1", "r.x.sh", afterHeader+" !!notbase64\n"); err == nil {
		t.Error("a corrupt after-script must be an error naming the entry")
	}
}

// fakeSystemctl is a systemctl for the guard's tests: a unit is up once
// $dir/restarted exists (or $dir/healthy does); restart creates it.
// Before, it is a crash loop: "active" at every look (it was started
// again), with a restart count that grows.
const fakeSystemctl = `#!/bin/sh
up() { [ -e "$FAKE_DIR/healthy" ] || [ -e "$FAKE_DIR/restarted" ]; }
case "$1 $3" in
"show ActiveState") if up; then echo active; else echo active; fi ;;
"show NRestarts") if up; then echo 7; else date +%s%N; fi ;;
restart*) shift; echo "$*" >> "$FAKE_DIR/restarts"; touch "$FAKE_DIR/restarted" ;;
esac
`

func runGuard(t *testing.T, e Entry, healthy bool, limit, lifetime time.Duration) (dir, out string) {
	t.Helper()
	dir = t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "systemctl"), []byte(fakeSystemctl), 0o755); err != nil {
		t.Fatal(err)
	}
	if healthy {
		if err := os.WriteFile(filepath.Join(dir, "healthy"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "entry.sh")
	if err := os.WriteFile(file, []byte(e.script()), 0o700); err != nil {
		t.Fatal(err)
	}
	args := guardCommand(e.guard(file, limit, lifetime, time.Second))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"), "FAKE_DIR="+dir)
	b, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("guard: %v\n%s", err, b)
	}
	return dir, string(b)
}

// TestGuardUndoesWhenUnitsStayDown: a kubelet that does not come back
// after the change is undone on the node itself: undo, restart, the
// after-script, the entry removed.
func TestGuardUndoesWhenUnitsStayDown(t *testing.T) {
	e := Entry{Run: "r1", Name: "kubelet-misconfigured", Restart: []string{"kubelet.service"},
		Undo: `echo undone >> "$FAKE_DIR/log"`, After: `echo after >> "$FAKE_DIR/log"`}
	dir, out := runGuard(t, e, false, 2*time.Second, time.Minute)
	log, _ := os.ReadFile(filepath.Join(dir, "log"))
	if string(log) != "undone\nafter\n" {
		t.Errorf("ran %q, want the undo then the after-script\n%s", log, out)
	}
	if r, _ := os.ReadFile(filepath.Join(dir, "restarts")); string(r) != "kubelet.service\n" {
		t.Errorf("restarted %q", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "entry.sh")); !os.IsNotExist(err) {
		t.Errorf("entry kept after the guard undid it: %v", err)
	}
	if !strings.Contains(out, "undid kubelet-misconfigured of run r1") {
		t.Errorf("output %q", out)
	}
}

// TestGuardLeavesHealthyNodesAlone: units that stay up are never touched;
// the guard ends at its lifetime, and at once when the entry is gone.
func TestGuardLeavesHealthyNodesAlone(t *testing.T) {
	e := Entry{Run: "r1", Name: "x", Restart: []string{"kubelet.service", "containerd.service"}, Undo: `echo undone >> "$FAKE_DIR/log"`}
	dir, _ := runGuard(t, e, true, time.Second, 3*time.Second)
	if _, err := os.Stat(filepath.Join(dir, "log")); !os.IsNotExist(err) {
		t.Error("the guard undid a change whose units stayed up")
	}
	if _, err := os.Stat(filepath.Join(dir, "entry.sh")); err != nil {
		t.Errorf("the guard removed the entry of a healthy node: %v", err)
	}
	// No entry: the suite undid the change; the guard ends.
	gone := Entry{Run: "r2", Name: "y", Restart: []string{"kubelet.service"}, Undo: "true"}
	start := time.Now()
	cmd := exec.Command("sh", "-c", gone.guard(filepath.Join(t.TempDir(), "absent.sh"), time.Second, time.Hour, time.Second))
	if out, err := cmd.CombinedOutput(); err != nil || time.Since(start) > 10*time.Second {
		t.Errorf("guard without an entry: %v after %s\n%s", err, time.Since(start), out)
	}
}
