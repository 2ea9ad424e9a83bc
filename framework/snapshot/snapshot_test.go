package snapshot

import (
	"strings"
	"testing"
)

func TestDiff(t *testing.T) {
	before := Snapshot{"a": "1", "b": "2", "c": "3"}
	after := Snapshot{"a": "1", "b": "9", "d": "4"}
	got := strings.Join(Diff(before, after), "|")
	if got != "added d|changed b|removed c" {
		t.Fatalf("got %s", got)
	}
	if len(Diff(before, before)) != 0 {
		t.Fatal("a snapshot differs from itself")
	}
}

func TestDigestIgnoresWhatMovesOnItsOwn(t *testing.T) {
	obj := func(rv, label, status string) map[string]any {
		return map[string]any{
			"metadata": map[string]any{"name": "n", "resourceVersion": rv, "labels": map[string]any{"l": label},
				"managedFields": []any{map[string]any{"manager": rv}}},
			"status": map[string]any{"phase": status},
		}
	}
	a, _ := Digest(obj("1", "x", "Ready"))
	b, _ := Digest(obj("2", "x", "NotReady"))
	c, _ := Digest(obj("2", "y", "Ready"))
	if a != b {
		t.Error("resourceVersion, managedFields or status changed the digest")
	}
	if a == c {
		t.Error("a label change must change the digest")
	}
}

func TestNode(t *testing.T) {
	outputs := map[string]string{
		"files":  "abc  /etc/containerd/config.toml\ndef  /etc/default/kubelet\n",
		"pids":   "systemd 1\nkubelet 612\ncontainerd 101\n",
		"mounts": "/ overlay overlay private\n/run tmpfs tmpfs shared\n",
	}
	run := func(cmd ...string) (string, error) {
		for what, c := range NodeCommands {
			if strings.Join(c, " ") == strings.Join(cmd, " ") {
				return outputs[what], nil
			}
		}
		t.Fatalf("unexpected command %v", cmd)
		return "", nil
	}
	s, err := Node("w", run)
	if err != nil {
		t.Fatal(err)
	}
	if s["node/w:files:/etc/containerd/config.toml"] != "abc" || s["node/w:pids:kubelet"] != "612" {
		t.Fatalf("%v", s)
	}
	if _, ok := s["node/w:mounts:/run tmpfs tmpfs shared"]; !ok {
		t.Fatalf("mount missing: %v", s)
	}
	// A kubelet restart shows as a changed PID.
	outputs["pids"] = "systemd 1\nkubelet 999\ncontainerd 101\n"
	s2, _ := Node("w", run)
	if d := Diff(s, s2); len(d) != 1 || d[0] != "changed node/w:pids:kubelet" {
		t.Fatalf("diff %v", d)
	}
}

// A changed object is named with the fields that moved: a failed proof
// that says only "changed /nodes//w" left the 28th session's CI failure
// unexplained.
func TestDiffNamesChangedFields(t *testing.T) {
	node := func(label string, taints []any) map[string]any {
		return map[string]any{
			"metadata": map[string]any{"name": "w", "labels": map[string]any{"pool": "a", "l": label}},
			"spec":     map[string]any{"podCIDR": "10.244.1.0/24", "taints": taints},
		}
	}
	digest := func(o map[string]any) string {
		d, err := Digest(o)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	taint := []any{map[string]any{"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"}}
	before := Snapshot{"/nodes//w": digest(node("x", nil)), "node/w:files:/etc/f": "abc"}
	after := Snapshot{"/nodes//w": digest(node("y", taint)), "node/w:files:/etc/f": "abd"}
	got := strings.Join(Diff(before, after), "|")
	if got != "changed /nodes//w: metadata.labels.l, spec.taints|changed node/w:files:/etc/f" {
		t.Fatalf("got %s", got)
	}
}
