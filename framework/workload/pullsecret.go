package workload

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// PullSecretName is the image pull Secret nodeconform makes in each of its
// namespaces when the run has registry credentials (--pull-secret).
const PullSecretName = "nodeconform-pull"

// GrantPullTimeout bounds GrantPull's waits for the namespace's default
// service account and for admission to hand the secret out when its
// caller gives no timeout (config: timeouts.pullSecretGrant).
const GrantPullTimeout = 30 * time.Second

// ReadPullSecret reads a docker config.json (what `docker login` writes,
// or a kubernetes.io/dockerconfigjson Secret's data) holding the
// credentials of the registry the nodes pull nodeconform's images from.
// The error names the file and what is wrong with it.
func ReadPullSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pull secret (--pull-secret or NODECONFORM_PULL_SECRET): %w", err)
	}
	var c struct {
		Auths map[string]struct {
			Auth     string `json:"auth"`
			Username string `json:"username"`
			Password string `json:"password"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("pull secret %s (--pull-secret or NODECONFORM_PULL_SECRET) is not a docker config.json: %w", path, err)
	}
	// `docker login` with a credential helper (credsStore) writes each
	// registry with no credentials in the file: none a kubelet could use.
	var empty []string
	for host, a := range c.Auths {
		if a.Auth != "" || (a.Username != "" && a.Password != "") {
			return b, nil
		}
		empty = append(empty, host)
	}
	sort.Strings(empty)
	return nil, fmt.Errorf("pull secret %s (--pull-secret or NODECONFORM_PULL_SECRET) holds no credentials under \"auths\" (registries without any: %v): a docker config.json with inline credentials (\"auth\", or \"username\" and \"password\"), as `docker login` writes without a credential helper", path, empty)
}

// GrantPull makes the namespace's pods pull with dockerConfig: it creates
// the PullSecretName Secret there and adds it to the imagePullSecrets of
// the namespace's default service account, waiting up to timeout for the
// controller to make that account and for admission to see the change.
// The ServiceAccount admission plugin then gives the secret to every pod
// of the account, those nodeconform builds and those of fixtures and
// templates alike. It must run before the namespace's first pod. A zero
// timeout is GrantPullTimeout.
func GrantPull(ctx context.Context, cs kubernetes.Interface, ns string, dockerConfig []byte, timeout time.Duration) error {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: PullSecretName, Namespace: ns, Labels: map[string]string{ManagedLabel: "true"}},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: dockerConfig},
	}
	if _, err := cs.CoreV1().Secrets(ns).Create(ctx, secret, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create image pull secret %s/%s: %w", ns, PullSecretName, err)
	}
	if timeout <= 0 {
		timeout = GrantPullTimeout
	}
	deadline := time.Now().Add(timeout)
	wait := func() error {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
			return nil
		}
	}
	// Added to the account's own (OpenShift gives each default account
	// one for its internal registry): the list has no merge key.
	for {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			sa, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			if err != nil {
				return err
			}
			for _, r := range sa.ImagePullSecrets {
				if r.Name == PullSecretName {
					return nil
				}
			}
			sa.ImagePullSecrets = append(sa.ImagePullSecrets, corev1.LocalObjectReference{Name: PullSecretName})
			_, err = cs.CoreV1().ServiceAccounts(ns).Update(ctx, sa, metav1.UpdateOptions{})
			return err
		})
		if err == nil {
			break
		}
		if !apierrors.IsNotFound(err) || time.Now().After(deadline) {
			return fmt.Errorf("add image pull secret %s to service account %s/default: %w", PullSecretName, ns, err)
		}
		if err := wait(); err != nil {
			return err
		}
	}
	// The ServiceAccount admission plugin reads the account from the API
	// server's cache: a pod created at once could still get the account
	// as it was. A pod dry-run in the namespace shows when admission
	// gives it the secret. A check pod admission refuses (a policy requiring
	// what the check pod lacks) cannot be asked: then the update stands
	// alone, as good a guarantee as the cache's delay.
	for {
		got, err := cs.CoreV1().Pods(ns).Create(ctx, pullCheckPod(ns), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		// "error looking up service account": the cache again.
		cacheBehind := apierrors.IsForbidden(err) && strings.Contains(err.Error(), "service account")
		if err != nil && !cacheBehind {
			return nil
		}
		if err == nil && slices.ContainsFunc(got.Spec.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == PullSecretName }) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("image pull secret %s listed on service account %s/default, but admission did not give it to a pod within %s", PullSecretName, ns, timeout)
		}
		if err := wait(); err != nil {
			return err
		}
	}
}

// pullCheckPod is the pod GrantPull dry-runs: one Pod Security's
// restricted level admits, with resources, never created.
func pullCheckPod(ns string) *corev1.Pod {
	no, yes := false, true
	res := corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("16Mi")}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "nodeconform-pull-check", Namespace: ns},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{
			Name: "c", Image: "nodeconform-pull-check",
			Resources: corev1.ResourceRequirements{Requests: res, Limits: res},
			SecurityContext: &corev1.SecurityContext{RunAsNonRoot: &yes, AllowPrivilegeEscalation: &no,
				Capabilities:   &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
		}}},
	}
}
