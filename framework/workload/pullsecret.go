package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
)

// PullSecretName is the image pull Secret nodeconform makes in each of its
// namespaces when the run has registry credentials (--pull-secret).
const PullSecretName = "nodeconform-pull"

// ReadPullSecret reads a docker config.json (what `docker login` writes,
// or a kubernetes.io/dockerconfigjson Secret's data) holding the
// credentials of the registry the nodes pull nodeconform's images from.
// The error names the file and what is wrong with it.
func ReadPullSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--pull-secret: %w", err)
	}
	var c struct {
		Auths map[string]json.RawMessage `json:"auths"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("--pull-secret %s is not a docker config.json: %w", path, err)
	}
	if len(c.Auths) == 0 {
		// A credential helper's config (credsStore) names no credentials
		// a kubelet could use.
		return nil, fmt.Errorf("--pull-secret %s names no registry under \"auths\" (a docker config.json with inline credentials, as `docker login` writes without a credential helper)", path)
	}
	return b, nil
}

// GrantPull makes the namespace's pods pull with dockerConfig: it creates
// the PullSecretName Secret there and lists it in the imagePullSecrets of
// the namespace's default service account, waiting up to timeout for the
// controller to make that account. The ServiceAccount admission plugin
// then gives the secret to every pod of the account, those nodeconform
// builds and those of fixtures and templates alike. It must run before
// the namespace's first pod.
func GrantPull(ctx context.Context, cs kubernetes.Interface, ns string, dockerConfig []byte, timeout time.Duration) error {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: PullSecretName, Namespace: ns, Labels: map[string]string{ManagedLabel: "true"}},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig},
	}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create image pull secret %s/%s: %w", ns, PullSecretName, err)
	}
	patch := []byte(`{"imagePullSecrets":[{"name":"` + PullSecretName + `"}]}`)
	deadline := time.Now().Add(timeout)
	for {
		_, err := cs.CoreV1().ServiceAccounts(ns).Patch(ctx, "default", types.StrategicMergePatchType, patch, metav1.PatchOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsNotFound(err) || time.Now().After(deadline) {
			return fmt.Errorf("add image pull secret %s to service account %s/default: %w", PullSecretName, ns, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
