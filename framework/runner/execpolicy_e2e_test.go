package runner

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/e2e-framework/klient"

	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/report"
	"github.com/nodeconform/nodeconform/framework/workload"
)

// TestExecRefusedByPolicy runs on a cluster whose admission policy
// refuses exec into pods, as security policies on production clusters
// do (a ValidatingAdmissionPolicy on CONNECT pods/exec, set up behind
// nodeconform's back; webhooks refuse it the same way). The permission
// check cannot see it (RBAC allows exec).
//   - Every suite fails, each naming the policy's refusal and what to
//     exempt, within seconds: before, the probe's exec was retried as an
//     unreachable node for 3 minutes per suite and the cluster suite's
//     execs for 90 s each ("GET … from pod client"): 4 min 48 s for the
//     cluster and primitives suites against 23 s now.
//   - With the policy's binding exempting namespaces labelled
//     nodeconform.io/managed=true, as the message advises, they pass.
func TestExecRefusedByPolicy(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run on the kind cluster (make findings-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cs := kindClient(t)
	const name = "nodeconform-e2e-deny-exec"
	fail := admissionv1.Fail
	vap := &admissionv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: admissionv1.ValidatingAdmissionPolicySpec{
		FailurePolicy: &fail,
		MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{RuleWithOperations: admissionv1.RuleWithOperations{
			Operations: []admissionv1.OperationType{admissionv1.Connect},
			Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/exec"}},
		}}}},
		Validations: []admissionv1.Validation{{Expression: "false", Message: "exec into pods is not allowed on this cluster"}},
	}}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
		PolicyName: name, ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
	}}
	adm := cs.AdmissionregistrationV1()
	remove := func() {
		ctx := context.Background()
		_ = adm.ValidatingAdmissionPolicyBindings().Delete(ctx, name, metav1.DeleteOptions{})
		_ = adm.ValidatingAdmissionPolicies().Delete(ctx, name, metav1.DeleteOptions{})
	}
	remove() // a run killed before its cleanup left them
	t.Cleanup(remove)
	// A pod in a namespace like nodeconform's, never scheduled (its node
	// does not exist): admission judges an exec into it before anything
	// else does, so its answer says whether the policy is in force there.
	ns, err := workload.CreateNamespace(ctx, workload.NamespaceInput{Clientset: cs, Prefix: "e2e-exec", PodSecurity: "baseline"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = workload.StartNamespaceDeletion(context.Background(), cs, ns.Name) })
	marker := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "marker", Namespace: ns.Name}, Spec: corev1.PodSpec{NodeName: "nowhere",
		Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10.2"}}}}
	if _, err := cs.CoreV1().Pods(ns.Name).Create(ctx, marker, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	kl, err := klient.NewWithKubeConfigFile(cluster.DefaultKubeconfigPath(config.Default().Cluster.Name))
	if err != nil {
		t.Fatal(err)
	}
	// inForce waits until an exec into the marker is refused (or not):
	// the API server's policy informer takes a moment either way.
	inForce := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			var o, e bytes.Buffer
			err := kl.Resources().ExecInPod(ctx, ns.Name, "marker", "c", []string{"true"}, &o, &e)
			if workload.Refused(err) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("policy in force in %s: want %v, exec answered %v", ns.Name, want, err)
			}
			time.Sleep(500 * time.Millisecond)
		}
	}
	if _, err := adm.ValidatingAdmissionPolicies().Create(ctx, vap, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	inForce(true)
	dir := t.TempDir()
	suites := []string{"cluster", "primitives"}
	began := time.Now()
	res := runSuites(ctx, t, dir, "exec-refused", Options{Mode: ModeApply, Profile: labProfile(), Suites: suites})
	took := time.Since(began)
	f := failed(res)
	named := map[string]bool{}
	for _, s := range f {
		if strings.Contains(s.Failure, name) && strings.Contains(s.Failure, workload.ManagedLabel+"=true") {
			named[s.Suite] = true
		} else {
			t.Errorf("%s: %s fails without naming the refusal and the exemption: %.600s", s.Suite, s.Name, s.Failure)
		}
	}
	if len(named) != len(suites) {
		t.Errorf("suites failing on the refusal: %v, want %v", named, suites)
	}
	if took > 2*time.Minute {
		t.Errorf("the refused run took %s: a refusal must not be waited out", took)
	}
	t.Logf("refused run: %s, %d failed", took.Round(time.Second), len(f))

	// Exempted as advised.
	b, err := adm.ValidatingAdmissionPolicyBindings().Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.Spec.MatchResources = &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
		{Key: workload.ManagedLabel, Operator: metav1.LabelSelectorOpNotIn, Values: []string{"true"}}}}}
	if _, err := adm.ValidatingAdmissionPolicyBindings().Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	inForce(false)
	res = runSuites(ctx, t, dir, "exempted", Options{Mode: ModeApply, Profile: labProfile(), Suites: suites})
	if f := failed(res); len(f) != 0 {
		t.Errorf("with nodeconform's namespaces exempted: %+v", f)
	}
	passed := 0
	for _, s := range res.Specs {
		if s.State == report.Passed {
			passed++
		}
	}
	if passed == 0 {
		t.Error("nothing passed with nodeconform's namespaces exempted")
	}
}
