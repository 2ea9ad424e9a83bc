package capfix

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

func TestMissing(t *testing.T) {
	// The bounding set measured on the CI hosts: everything up to
	// CAP_CHECKPOINT_RESTORE (40) except CAP_SYS_RESOURCE (24).
	got := Missing(0x1fffeffffff, 40)
	if !reflect.DeepEqual(got, []string{"CAP_SYS_RESOURCE"}) {
		t.Fatalf("Missing = %v", got)
	}
	if got := Missing(0x1ffffffffff, 40); len(got) != 0 {
		t.Fatalf("full set reported missing %v", got)
	}
}

func TestParseCapBnd(t *testing.T) {
	v, err := ParseCapBnd([]byte("Name:\tx\nCapEff:\t0\nCapBnd:\t000001fffeffffff\n"))
	if err != nil || v != 0x1fffeffffff {
		t.Fatalf("got %x %v", v, err)
	}
	if _, err := ParseCapBnd([]byte("Name: x\n")); err == nil {
		t.Fatal("want error without CapBnd")
	}
}

func TestFilterSpecKeepsOtherFields(t *testing.T) {
	spec := `{"ociVersion":"1.0.2","process":{"args":["sh"],"capabilities":{"bounding":["CAP_CHOWN","CAP_SYS_RESOURCE"],"effective":["CAP_SYS_RESOURCE"],"permitted":["CAP_SYS_RESOURCE","CAP_KILL"]}},"root":{"path":"rootfs"}}`
	out, changed, err := FilterSpec([]byte(spec), []string{"CAP_SYS_RESOURCE"})
	if err != nil || !changed {
		t.Fatalf("changed=%v err=%v", changed, err)
	}
	if strings.Contains(string(out), "CAP_SYS_RESOURCE") {
		t.Fatalf("cap still present: %s", out)
	}
	var s struct {
		OCIVersion string `json:"ociVersion"`
		Process    struct {
			Args []string            `json:"args"`
			Caps map[string][]string `json:"capabilities"`
		} `json:"process"`
		Root map[string]string `json:"root"`
	}
	if err := json.Unmarshal(out, &s); err != nil {
		t.Fatal(err)
	}
	if s.OCIVersion != "1.0.2" || s.Root["path"] != "rootfs" || s.Process.Args[0] != "sh" {
		t.Fatalf("fields lost: %s", out)
	}
	if !reflect.DeepEqual(s.Process.Caps["permitted"], []string{"CAP_KILL"}) {
		t.Fatalf("permitted = %v", s.Process.Caps["permitted"])
	}
	if len(s.Process.Caps["effective"]) != 0 || s.Process.Caps["effective"] == nil {
		t.Fatalf("effective should be an empty list, got %v", s.Process.Caps["effective"])
	}
}

func TestFilterSpecUnchanged(t *testing.T) {
	spec := `{"process":{"capabilities":{"bounding":["CAP_CHOWN"]}}}`
	out, changed, err := FilterSpec([]byte(spec), []string{"CAP_SYS_RESOURCE"})
	if err != nil || changed || string(out) != spec {
		t.Fatalf("unexpected change: %s %v %v", out, changed, err)
	}
	if _, _, err := FilterSpec([]byte("{"), nil); err == nil {
		t.Fatal("want error on malformed spec")
	}
}

func TestFindTarget(t *testing.T) {
	cases := []struct {
		args []string
		want Target
	}{
		{[]string{"--root", "/run/runc", "create", "--bundle", "/b", "id"}, Target{Path: "/b/config.json"}},
		{[]string{"--log", "/l.json", "--log-format", "json", "create", "--bundle=/b2", "id"}, Target{Path: "/b2/config.json"}},
		{[]string{"run", "id"}, Target{Path: "/cwd/config.json"}},
		{[]string{"--root", "/r", "exec", "--process", "/tmp/p.json", "--detach", "id"}, Target{Path: "/tmp/p.json", IsProcess: true}},
		{[]string{"exec", "id", "ls"}, Target{}},
		{[]string{"--root", "/r", "state", "id"}, Target{}},
		{[]string{"--version"}, Target{}},
	}
	for _, c := range cases {
		if got := FindTarget(c.args, "/cwd"); got != c.want {
			t.Errorf("FindTarget(%v) = %+v, want %+v", c.args, got, c.want)
		}
	}
}
