package cluster

import (
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
