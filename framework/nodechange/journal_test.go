package nodechange

import (
	"os/exec"
	"strings"
	"testing"
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
