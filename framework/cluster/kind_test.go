package cluster

import (
	"strings"
	"testing"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func TestSameKubeContext(t *testing.T) {
	cfg := func(server string, key byte) *clientcmdapi.Config {
		c := clientcmdapi.NewConfig()
		c.Clusters["kind-a"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: []byte("ca")}
		c.AuthInfos["kind-a"] = &clientcmdapi.AuthInfo{ClientCertificateData: []byte("cert"), ClientKeyData: []byte{key}}
		c.Contexts["kind-a"] = &clientcmdapi.Context{Cluster: "kind-a", AuthInfo: "kind-a"}
		return c
	}
	if !sameKubeContext(cfg("https://127.0.0.1:1", 1), cfg("https://127.0.0.1:1", 1), "kind-a") {
		t.Fatal("identical contexts differ")
	}
	if sameKubeContext(cfg("https://127.0.0.1:2", 1), cfg("https://127.0.0.1:1", 1), "kind-a") {
		t.Fatal("a moved API server port must be exported again")
	}
	if sameKubeContext(cfg("https://127.0.0.1:1", 2), cfg("https://127.0.0.1:1", 1), "kind-a") {
		t.Fatal("new client credentials (a recreated cluster) must be exported again")
	}
	if sameKubeContext(clientcmdapi.NewConfig(), cfg("https://127.0.0.1:1", 1), "kind-a") {
		t.Fatal("a kubeconfig without the context must be exported")
	}
}

func TestParseNodeStates(t *testing.T) {
	out := "/c-control-plane true 2026-12-04T23:49:10.5Z sha256:aa nodeconform/node:v1\n" +
		"/c-worker false 2026-12-04T23:49:11Z sha256:aa nodeconform/node:v1\n"
	got := parseNodeStates([]string{"c-control-plane", "c-worker", "c-worker2"}, out)
	if len(got) != 3 {
		t.Fatalf("got %d states, want 3", len(got))
	}
	cp := got[0]
	if !cp.running || cp.imageID != "sha256:aa" || cp.imageRef != "nodeconform/node:v1" || cp.started.IsZero() {
		t.Errorf("control plane: %+v", cp)
	}
	if got[1].running || got[2].running {
		t.Errorf("a stopped container and one docker did not print must not be running: %+v %+v", got[1], got[2])
	}
	k := NewKind("c")
	if _, err := k.checkRunning(got); err == nil || !strings.Contains(err.Error(), "c-worker, c-worker2") {
		t.Errorf("checkRunning: %v, want both stopped containers named", err)
	}
	if last, err := k.checkRunning(got[:1]); err != nil || !last.Equal(cp.started) {
		t.Errorf("checkRunning(running) = %v, %v", last, err)
	}
}
