package procfs

import (
	"os"
	"strconv"
	"testing"
)

func TestParseStat(t *testing.T) {
	comm, ppid, err := ParseStat([]byte("1234 (kube let) (x)) S 77 1234 1234 0 -1"))
	if err != nil || comm != "kube let) (x)" || ppid != 77 {
		t.Fatalf("%q %d %v", comm, ppid, err)
	}
	if _, _, err := ParseStat([]byte("garbage")); err == nil {
		t.Fatal("want error")
	}
}

// A real excerpt of a kind node's /proc/1/mountinfo.
const mountinfo = `1273 1095 0:124 / / rw,relatime master:460 - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/A
1280 1273 0:130 / /run rw,nosuid,nodev,noexec,relatime shared:462 - tmpfs tmpfs rw
1290 1280 0:140 / /run/nodeconform/prop/a rw,relatime shared:500 - tmpfs tmpfs rw,size=1024k
1291 1280 0:141 /sandboxes/x/resolv.conf /etc/resolv\040conf rw - ext4 /dev/vda rw
`

func TestParseMountinfo(t *testing.T) {
	m, err := ParseMountinfo([]byte(mountinfo))
	if err != nil {
		t.Fatal(err)
	}
	if len(m) != 4 || m[1].MountPoint != "/run" || m[1].Propagation[0] != "shared:462" || m[1].FSType != "tmpfs" {
		t.Fatalf("%+v", m)
	}
	if m[0].Propagation[0] != "master:460" || m[0].Source != "overlay" {
		t.Fatalf("%+v", m[0])
	}
	if m[3].MountPoint != "/etc/resolv conf" || m[3].Root != "/sandboxes/x/resolv.conf" || len(m[3].Propagation) != 0 {
		t.Fatalf("%+v", m[3])
	}
	if !HasMountAt(m, "/run/nodeconform/prop/a") || HasMountAt(m, "/run/nodeconform/prop/b") {
		t.Fatal("HasMountAt")
	}
	if _, err := ParseMountinfo([]byte("1 2 3\n")); err == nil {
		t.Fatal("want error on a short line")
	}
}

func TestReadSelf(t *testing.T) {
	p, err := ReadProcess("/proc", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if p.NS["mnt"] == "" || p.NS["net"] == "" || p.Comm == "" {
		t.Fatalf("%+v", p)
	}
	self, _ := ReadNamespaces("/proc", strconv.Itoa(os.Getpid()))
	if self["mnt"] != p.NS["mnt"] {
		t.Fatal("inconsistent")
	}
}

func TestRuntimeBindMount(t *testing.T) {
	mounts := []Mount{
		{MountPoint: "/etc/resolv.conf", Root: "/var/lib/docker/volumes/x/_data/lib/containerd/io.containerd.grpc.v1.cri/sandboxes/abc/resolv.conf"},
		{MountPoint: "/etc/hosts", Root: "/var/lib/kubelet/pods/uid/etc-hosts"},
		{MountPoint: "/", Root: "/"},
	}
	if src, ok := RuntimeBindMount(mounts, "/etc/resolv.conf"); !ok || src == "" {
		t.Fatal("containerd resolv.conf not recognised")
	}
	if _, ok := RuntimeBindMount(mounts, "/etc/hosts"); ok {
		t.Fatal("kubelet's etc-hosts is not the runtime's")
	}
	if _, ok := RuntimeBindMount(mounts, "/etc/hostname"); ok {
		t.Fatal("absent mount")
	}
	crio := []Mount{{MountPoint: "/etc/resolv.conf", Root: "/containers/storage/overlay-containers/id/userdata/resolv.conf"}}
	if _, ok := RuntimeBindMount(crio, "/etc/resolv.conf"); !ok {
		t.Fatal("CRI-O resolv.conf not recognised")
	}
}

func TestParseVmRSS(t *testing.T) {
	if n := ParseVmRSS([]byte("Name:\tx\nVmRSS:\t   7412 kB\n")); n != 7412 {
		t.Fatalf("got %d", n)
	}
	if n := ParseVmRSS([]byte("Name:\tkthreadd\n")); n != 0 {
		t.Fatalf("got %d", n)
	}
}

func TestMountOf(t *testing.T) {
	// A kind node's kubelet (2026-12-06): / and /var shared, a pod volume
	// under /var/lib/kubelet.
	table := `115 62 0:40 / / rw,relatime shared:5 master:2 - overlay overlay rw
132 115 254:0 /var/lib/docker/volumes/x/_data /var rw,relatime shared:23 master:1 - ext4 /dev/vda rw
133 115 0:54 / /run rw,nosuid shared:24 - tmpfs tmpfs rw
731 132 0:165 / /var/lib/kubelet/pods/24a6/volumes/kubernetes.io~projected/kube-api-access-zrrt2 rw,relatime shared:324 - tmpfs tmpfs rw
`
	mounts, err := ParseMountinfo([]byte(table))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/var/lib/kubelet": "/var", "/var": "/var", "/variable": "/", "/etc": "/",
		"/var/lib/kubelet/pods/24a6/volumes/kubernetes.io~projected/kube-api-access-zrrt2/token": "/var/lib/kubelet/pods/24a6/volumes/kubernetes.io~projected/kube-api-access-zrrt2"} {
		m, ok := MountOf(mounts, path)
		if !ok || m.MountPoint != want {
			t.Errorf("MountOf(%s) = %s, %v; want %s", path, m.MountPoint, ok, want)
		}
		if !m.Shared() {
			t.Errorf("%s: not shared: %v", m.MountPoint, m.Propagation)
		}
	}
	// After `mount --make-rprivate /` the optional fields are gone; a
	// slave is not shared either.
	private, _ := ParseMountinfo([]byte("115 62 0:40 / / rw,relatime - overlay overlay rw\n132 115 254:0 /v /var rw master:1 - ext4 /dev/vda rw\n"))
	for _, p := range []string{"/", "/var/lib/kubelet"} {
		if m, ok := MountOf(private, p); !ok || m.Shared() {
			t.Errorf("%s: %+v, %v: want found and not shared", p, m, ok)
		}
	}
	if _, ok := MountOf(nil, "/var"); ok {
		t.Error("empty table: found a mount")
	}
}
