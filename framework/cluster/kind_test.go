package cluster

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

// A Ready node still carrying the lifecycle controller's not-ready taint
// is not settled: it was the production-like CI failure of 2026-12-05
// (the taint left a worker after "3 nodes Ready", during the proof).
func TestUnsettled(t *testing.T) {
	ready := []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}
	node := func(name string, conds []corev1.NodeCondition, taints ...corev1.Taint) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.NodeSpec{Taints: taints}, Status: corev1.NodeStatus{Conditions: conds}}
	}
	got := Unsettled([]corev1.Node{
		node("cp", ready, corev1.Taint{Key: "node-role.kubernetes.io/control-plane", Effect: corev1.TaintEffectNoSchedule}),
		node("w1", ready, corev1.Taint{Key: corev1.TaintNodeNotReady, Effect: corev1.TaintEffectNoExecute}),
		node("w2", nil),
		node("w3", ready, corev1.Taint{Key: corev1.TaintNodeUnreachable, Effect: corev1.TaintEffectNoSchedule}),
	})
	want := []string{"w1 (taint node.kubernetes.io/not-ready:NoExecute)", "w2 (not Ready)", "w3 (taint node.kubernetes.io/unreachable:NoSchedule)"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestDown(t *testing.T) {
	now := time.Date(2026, 12, 6, 14, 0, 0, 0, time.UTC)
	node := func(name string, status corev1.ConditionStatus, ago time.Duration) corev1.Node {
		return corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: status, LastTransitionTime: metav1.NewTime(now.Add(-ago)),
			Reason: "NodeStatusUnknown", Message: "Kubelet stopped posting node status."}}}}
	}
	got := Down([]corev1.Node{
		node("ready", corev1.ConditionTrue, time.Hour),
		node("down", corev1.ConditionUnknown, 2*time.Minute),
		node("just-stopped", corev1.ConditionUnknown, 20*time.Second),
		node("not-ready", corev1.ConditionFalse, time.Minute),
		{ObjectMeta: metav1.ObjectMeta{Name: "registering"}},
	}, now, time.Minute)
	want := map[string]string{
		"down":      "Ready Unknown since 2026-12-06T13:58:00Z (NodeStatusUnknown: Kubelet stopped posting node status.)",
		"not-ready": "Ready False since 2026-12-06T13:59:00Z (NodeStatusUnknown: Kubelet stopped posting node status.)",
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for n, w := range want {
		if got[n] != w {
			t.Errorf("%s: got %q, want %q", n, got[n], w)
		}
	}
}
