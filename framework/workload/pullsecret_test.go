package workload

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// A file the kubelet could not use is refused naming the file and why.
func TestReadPullSecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, good := range []string{`{"auths":{"registry.example:5000":{"auth":"dTpw"}}}`, `{"auths":{"r":{},"registry.example:5000":{"username":"u","password":"p"}}}`} {
		if b, err := ReadPullSecret(write("good.json", good)); err != nil || !strings.Contains(string(b), "registry.example") {
			t.Errorf("good %s: %q %v", good, b, err)
		}
	}
	for _, c := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.json"), "no such file"},
		{write("yaml", "auths: {}"), "is not a docker config.json"},
		{write("helper.json", `{"credsStore":"desktop"}`), `holds no credentials under "auths"`},
		// What `docker login` writes with a credential helper.
		{write("login.json", `{"auths":{"https://index.docker.io/v1/":{}},"credsStore":"desktop"}`), "https://index.docker.io/v1/"},
	} {
		if _, err := ReadPullSecret(c.path); err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "--pull-secret") || !strings.Contains(err.Error(), "NODECONFORM_PULL_SECRET") {
			t.Errorf("%s: got %v, want an error with %q", c.path, err, c.want)
		}
	}
}

// The secret is made and the default service account, made by its
// controller a moment after the namespace, lists it.
func TestGrantPullWaitsForTheDefaultServiceAccount(t *testing.T) {
	cs := fake.NewClientset()
	go func() {
		time.Sleep(300 * time.Millisecond)
		_, _ = cs.CoreV1().ServiceAccounts("ns").Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "ns"}}, metav1.CreateOptions{})
	}()
	cfg := []byte(`{"auths":{"r:5000":{"auth":"dTpw"}}}`)
	if err := GrantPull(context.Background(), cs, "ns", cfg, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	s, err := cs.CoreV1().Secrets("ns").Get(context.Background(), PullSecretName, metav1.GetOptions{})
	if err != nil || s.Type != corev1.SecretTypeDockerConfigJson || string(s.Data[corev1.DockerConfigJsonKey]) != string(cfg) {
		t.Errorf("secret: %+v %v", s, err)
	}
	sa, err := cs.CoreV1().ServiceAccounts("ns").Get(context.Background(), "default", metav1.GetOptions{})
	if err != nil || len(sa.ImagePullSecrets) != 1 || sa.ImagePullSecrets[0].Name != PullSecretName {
		t.Errorf("service account: %+v %v", sa, err)
	}
	// The account's own pull secrets stay (OpenShift's for its registry).
	if _, err := cs.CoreV1().ServiceAccounts("os").Create(context.Background(), &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "os"},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "default-dockercfg-x"}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := GrantPull(context.Background(), cs, "os", cfg, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if sa, _ := cs.CoreV1().ServiceAccounts("os").Get(context.Background(), "default", metav1.GetOptions{}); len(sa.ImagePullSecrets) != 2 || sa.ImagePullSecrets[0].Name != "default-dockercfg-x" {
		t.Errorf("kept: %+v", sa.ImagePullSecrets)
	}
	// No account by the timeout: an error naming it.
	if err := GrantPull(context.Background(), cs, "other", cfg, 200*time.Millisecond); err == nil || !strings.Contains(err.Error(), "other/default") {
		t.Errorf("no account: %v", err)
	}
}
