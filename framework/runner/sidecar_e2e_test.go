package runner

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeconform/nodeconform/framework/report"
	"github.com/nodeconform/nodeconform/framework/workload"
)

// sidecarName sorts before "probe" (the container of pods built from
// workload.ProbePod), as "istio-proxy" does: the kubelet lists container
// statuses by name, so a check reading the first status read the
// sidecar's (the runtimeclass OOM spec timed out on every node, blaming
// the runtime).
const sidecarName = "mesh-proxy"

// sidecarPatch appends a container to every pod, as a service mesh or a
// security agent's injector does (a pause container, present on every
// node, with a securityContext Pod Security "restricted" admits).
const sidecarPatch = `[JSONPatch{op: "add", path: "/spec/containers/-", value: Object.spec.containers{
  name: "` + sidecarName + `", image: "registry.k8s.io/pause:3.10.2", imagePullPolicy: "IfNotPresent",
  securityContext: Object.spec.containers.securityContext{
    runAsNonRoot: true, runAsUser: 65535, allowPrivilegeEscalation: false,
    capabilities: Object.spec.containers.securityContext.capabilities{drop: ["ALL"]},
    seccompProfile: Object.spec.containers.securityContext.seccompProfile{type: "RuntimeDefault"}}}}]`

// TestSidecarInjected runs on a cluster that injects a sidecar into every
// pod outside kube-system (a MutatingAdmissionPolicy set up behind
// nodeconform's back):
//   - the cluster, primitives and sysctl suites pass: every exec and log
//     read names its container (before, the API server refused each one
//     "a container name must be specified", every suite failed and the
//     whole run took 14 min);
//   - so does the runtimeclass OOM spec for kata, which waits for the
//     pod's own container's termination (before, it waited 2 min per
//     node for the sidecar's: workload.MainContainerStatus); for gVisor
//     it fails, noting the added container: gVisor's sentry limits the
//     sandbox by the pod's memory, which the resource-less sidecar took
//     away, so the container allocated past its own limit unkilled;
//   - the runtimeclass specs on the pod's sums (rcPodSums) fail naming
//     the added container (before, the pod cgroup spec passed with no
//     memory limit expected or found, and its negative control failed);
//   - the cgroups limit-file spec, whose pod's resources are the point,
//     fails naming the added container and the exemption (before, it
//     read the sidecar's cgroup: "cpu quota -1");
//   - with nodeconform's namespaces exempted, it and the pod cgroup spec
//     pass.
func TestSidecarInjected(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run on the kind cluster (make findings-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cs := kindClient(t)
	const name = "nodeconform-e2e-sidecar"
	adm := cs.AdmissionregistrationV1()
	remove := func() {
		ctx := context.Background()
		_ = adm.MutatingAdmissionPolicyBindings().Delete(ctx, name, metav1.DeleteOptions{})
		_ = adm.MutatingAdmissionPolicies().Delete(ctx, name, metav1.DeleteOptions{})
	}
	remove()
	t.Cleanup(remove)
	fail := admissionv1.Fail
	policy := &admissionv1.MutatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: admissionv1.MutatingAdmissionPolicySpec{
		FailurePolicy:      &fail,
		ReinvocationPolicy: admissionv1.NeverReinvocationPolicy,
		MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{RuleWithOperations: admissionv1.RuleWithOperations{
			Operations: []admissionv1.OperationType{admissionv1.Create},
			Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
		}}}},
		MatchConditions: []admissionv1.MatchCondition{{Name: "once", Expression: `!object.spec.containers.exists(c, c.name == "` + sidecarName + `")`}},
		Mutations:       []admissionv1.Mutation{{PatchType: admissionv1.PatchTypeJSONPatch, JSONPatch: &admissionv1.JSONPatch{Expression: sidecarPatch}}},
	}}
	outside := func() *admissionv1.MatchResources {
		return &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
			{Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"kube-system", "local-path-storage"}}}}}
	}
	binding := &admissionv1.MutatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: admissionv1.MutatingAdmissionPolicyBindingSpec{
		PolicyName: name, MatchResources: outside()}}
	if _, err := adm.MutatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.MutatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A namespace like nodeconform's: the policy is in force there once a
	// pod dry-run in it (server-side) comes back with the sidecar.
	ns, err := workload.CreateNamespace(ctx, workload.NamespaceInput{Clientset: cs, Prefix: "e2e-sidecar", PodSecurity: "baseline"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = workload.StartNamespaceDeletion(context.Background(), cs, ns.Name) })
	injected := func(want bool) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "sidecar-check", Namespace: ns.Name},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10.2"}}}}
			got, err := cs.CoreV1().Pods(ns.Name).Create(ctx, p, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err == nil && (len(got.Spec.Containers) == 2) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("sidecar injected in %s: want %v after 1 min (%v)", ns.Name, want, err)
			}
		}
	}
	injected(true)
	dir := t.TempDir()
	res := runSuites(ctx, t, dir, "sidecar", Options{Mode: ModeApply, Profile: labProfile(), Suites: []string{"cluster", "primitives", "sysctl", "runtimeclass"}})
	blamesAdmission := func(s report.Spec) bool {
		return s.State == report.Failed && strings.Contains(s.Failure, "container "+sidecarName+" added by admission") && strings.Contains(s.Failure, workload.ManagedLabel+"=true")
	}
	podSums := 0
	for _, s := range res.Specs {
		sums := s.Suite == "runtimeclass" && containsAny(s.Name, rcPodSums...)
		oom := s.Suite == "runtimeclass" && strings.Contains(s.Name, rcOOM)
		switch {
		case oom && strings.Contains(s.Name, "RuntimeClass gvisor "):
			// gVisor's sentry limits the sandbox by the pod's memory,
			// which the resource-less sidecar took away: not killed,
			// noted as admission's doing.
			if s.State != report.Failed || !strings.Contains(s.Failure, "admission changed the pod: container "+sidecarName+" added by admission") {
				t.Errorf("gVisor's OOM kill with a sidecar: want a failure noting the added container, got %s: %.500s", s.State, s.Failure)
			}
		case oom && s.State != report.Passed:
			t.Errorf("%s with a sidecar: %s: %.500s (the pod's own container's status, not the sidecar's, sorted first)", s.Name, s.State, s.Failure)
		case sums && blamesAdmission(s):
			podSums++
		case sums:
			t.Errorf("with a sidecar in every pod: %s: %s: want a failure naming the added container, got %s: %.500s", s.Suite, s.Name, s.State, s.Failure)
		case s.State == report.Failed:
			t.Errorf("with a sidecar in every pod: %s: %s: %.500s", s.Suite, s.Name, s.Failure)
		}
	}
	if podSums == 0 {
		t.Errorf("with a sidecar in every pod: no runtimeclass spec on the pod's sums ran")
	}
	const limits = "exactly into the container's cgroup files"
	res = runSuites(ctx, t, dir, "sidecar-cgroups", Options{Mode: ModeApply, Profile: labProfile(), Suites: []string{"cgroups"}, Focus: []string{limits}})
	for _, s := range res.Specs {
		if strings.Contains(s.Name, limits) && !blamesAdmission(s) {
			t.Errorf("limit files with a sidecar: %s, %.600s", s.State, s.Failure)
		}
	}

	// Exempted: nodeconform's namespaces left alone by the injector.
	b, err := adm.MutatingAdmissionPolicyBindings().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.Spec.MatchResources.NamespaceSelector.MatchExpressions = append(b.Spec.MatchResources.NamespaceSelector.MatchExpressions,
		metav1.LabelSelectorRequirement{Key: workload.ManagedLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"true"}})
	if _, err := adm.MutatingAdmissionPolicyBindings().Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	injected(false)
	res = runSuites(ctx, t, dir, "sidecar-exempted", Options{Mode: ModeApply, Profile: labProfile(), Suites: []string{"cgroups", "runtimeclass"}, Focus: []string{limits, rcPodSums[0]}})
	if f := failed(res); len(f) != 0 {
		t.Errorf("limit files and the pod cgroup with nodeconform's namespaces exempted: %+v", f)
	}
	for _, want := range []string{limits, rcPodSums[0]} {
		ran := false
		for _, s := range res.Specs {
			ran = ran || (strings.Contains(s.Name, want) && s.State == report.Passed)
		}
		if !ran {
			t.Errorf("exempted: no spec %q passed", want)
		}
	}
}

// rcOOM is the runtimeclass OOM spec: it reads the pod's own container's
// status (workload.MainContainerStatus).
const rcOOM = "kills a sandboxed container that allocates past its memory limit"

// rcPodSums are the runtimeclass specs whose expectation is the pod's
// resources plus the overhead (a resource-less sidecar leaves the pod
// cgroup without a memory limit): the pod cgroup, the sandbox's memory
// at rest, and their negative controls.
var rcPodSums = []string{"writes the containers' limits plus the overhead into the pod cgroup", "keeps the sandbox's memory at rest",
	"reports a pod cgroup without the declared overhead", "memory overhead is smaller than its sandbox's use"}

func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
