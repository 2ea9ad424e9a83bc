package nodeaccess

import (
	"strings"
	"testing"

	"github.com/nodeconform/nodeconform/framework/procfs"
)

func TestKubeletRootDir(t *testing.T) {
	for want, cmd := range map[string][]string{
		"/var/lib/kubelet":  {"/usr/bin/kubelet", "--config=/var/lib/kubelet/config.yaml"},
		"/data/kubelet":     {"/usr/bin/kubelet", "--root-dir=/data/kubelet"},
		"/srv/kubelet-root": {"kubelet", "--root-dir", "/srv/kubelet-root", "--v=2"},
	} {
		if got := kubeletRootDir(cmd); got != want {
			t.Errorf("%v: %s, want %s", cmd, got, want)
		}
	}
}

func TestKubeletRootRisk(t *testing.T) {
	parse := func(s string) []procfs.Mount {
		m, err := procfs.ParseMountinfo([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	shared := parse("115 62 0:40 / / rw shared:5 master:2 - overlay overlay rw\n132 115 254:0 /v /var rw shared:23 master:1 - ext4 /dev/vda rw\n")
	if r := kubeletRootRisk(shared, "/var/lib/kubelet"); r != "" {
		t.Errorf("shared /var: %s", r)
	}
	// `mount --make-rprivate /` on the node: the kubelet would bind its root over itself.
	private := parse("115 62 0:40 / / rw - overlay overlay rw\n132 115 254:0 /v /var rw - ext4 /dev/vda rw\n")
	if r := kubeletRootRisk(private, "/var/lib/kubelet"); !strings.Contains(r, "/var/lib/kubelet is on mount /var whose propagation is private") {
		t.Errorf("private /var: %q", r)
	}
	// The kubelet's own rshared bind of its root (made at an earlier start) is enough.
	own := parse("115 62 0:40 / / rw - overlay overlay rw\n140 115 254:0 /k /var/lib/kubelet rw shared:30 - ext4 /dev/vda rw\n")
	if r := kubeletRootRisk(own, "/var/lib/kubelet"); r != "" {
		t.Errorf("own shared bind: %s", r)
	}
	slave := parse("115 62 0:40 / / rw master:2 - overlay overlay rw\n")
	if r := kubeletRootRisk(slave, "/var/lib/kubelet"); !strings.Contains(r, "propagation is master:2") {
		t.Errorf("slave /: %q", r)
	}
}
