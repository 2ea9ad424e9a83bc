package readonly

import (
	"net/http"
	"testing"
)

func TestCheckRequest(t *testing.T) {
	allowed := [][2]string{
		{"GET", "/api/v1/nodes"},
		{"GET", "/api/v1/nodes/n1/proxy/configz"},
		{"POST", "/api/v1/namespaces"},
		{"DELETE", "/api/v1/namespaces/nodeconform-probe-abc"},
		{"POST", "/api/v1/namespaces/nodeconform-cluster-x/pods"},
		{"POST", "/api/v1/namespaces/nodeconform-probe-abc/pods/p/exec"},
		{"POST", "/apis/apps/v1/namespaces/nodeconform-probe-abc/daemonsets"},
		{"DELETE", "/api/v1/namespaces/nodeconform-sysctl-x/pods"},
	}
	for _, a := range allowed {
		if err := CheckRequest(a[0], a[1]); err != nil {
			t.Errorf("%s %s refused: %v", a[0], a[1], err)
		}
	}
	refused := [][2]string{
		{"POST", "/apis/node.k8s.io/v1/runtimeclasses"},
		{"PATCH", "/api/v1/nodes/n1"},
		{"DELETE", "/api/v1/namespaces/kube-system"},
		{"POST", "/api/v1/namespaces/default/pods"},
		{"PUT", "/apis/machineconfiguration.openshift.io/v1/machineconfigs/99-kubens-worker"},
		{"POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles"},
		{"POST", "/version"},
	}
	for _, r := range refused {
		if err := CheckRequest(r[0], r[1]); err == nil {
			t.Errorf("%s %s allowed", r[0], r[1])
		}
	}
}

type fakeRT struct{ called bool }

func (f *fakeRT) RoundTrip(*http.Request) (*http.Response, error) {
	f.called = true
	return &http.Response{StatusCode: 200}, nil
}

func TestTransport(t *testing.T) {
	next := &fakeRT{}
	req, _ := http.NewRequest("PATCH", "https://x/api/v1/nodes/n1", nil)
	if _, err := (Transport{Next: next}).RoundTrip(req); err == nil || next.called {
		t.Fatal("a node patch must not reach the server")
	}
	req, _ = http.NewRequest("GET", "https://x/api/v1/nodes", nil)
	if _, err := (Transport{Next: next}).RoundTrip(req); err != nil || !next.called {
		t.Fatal("reads pass")
	}
}

func TestCheckCommand(t *testing.T) {
	for _, ok := range [][]string{
		{"cat", "/proc/meminfo"}, {"grep", "-H", "", "/proc/sys/kernel/sem", "/proc/sys/kernel/msgmax"}, {"findmnt", "-rn"}, {"systemctl", "is-enabled", "kubens.service"},
		{"/usr/local/bin/kubensenter", "findmnt", "-rn"}, {"iptables-save", "-t", "nat"}, {"sh", "-c", "command -v kubensenter"},
	} {
		if err := CheckCommand(ok); err != nil {
			t.Errorf("%v refused: %v", ok, err)
		}
	}
	for _, bad := range [][]string{
		{"sh", "-c", "rm -rf /etc"}, {"systemctl", "restart", "kubelet"}, {"systemd-run", "systemctl", "restart", "kubelet"},
		{"rm", "-f", "/usr/local/bin/kubensenter"}, {"/usr/bin/kubensenter"}, {"/usr/bin/kubensenter", "umount", "-R", "/x"}, {},
	} {
		if err := CheckCommand(bad); err == nil {
			t.Errorf("%v allowed", bad)
		}
	}
}
