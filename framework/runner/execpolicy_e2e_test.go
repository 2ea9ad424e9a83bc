package runner

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/e2e-framework/klient"

	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/nodeaccess"
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
	adm := cs.AdmissionregistrationV1()
	denyPolicy(ctx, t, cs, name, admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{RuleWithOperations: admissionv1.RuleWithOperations{
		Operations: []admissionv1.OperationType{admissionv1.Connect},
		Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods/exec"}},
	}}}}, admissionv1.Validation{Expression: "false", Message: "exec into pods is not allowed on this cluster"})
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

// denyPolicy puts a ValidatingAdmissionPolicy named name and its Deny
// binding in force on the cluster, behind nodeconform's back, as a
// security team would. Both are removed at the test's end, and first a
// killed run's leftovers.
func denyPolicy(ctx context.Context, t *testing.T, cs kubernetes.Interface, name string, match admissionv1.MatchResources, v admissionv1.Validation) {
	t.Helper()
	fail := admissionv1.Fail
	adm := cs.AdmissionregistrationV1()
	remove := func() {
		ctx := context.Background()
		_ = adm.ValidatingAdmissionPolicyBindings().Delete(ctx, name, metav1.DeleteOptions{})
		_ = adm.ValidatingAdmissionPolicies().Delete(ctx, name, metav1.DeleteOptions{})
	}
	remove()
	t.Cleanup(remove)
	vap := &admissionv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: admissionv1.ValidatingAdmissionPolicySpec{
		FailurePolicy: &fail, MatchConstraints: &match, Validations: []admissionv1.Validation{v},
	}}
	if _, err := adm.ValidatingAdmissionPolicies().Create(ctx, vap, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &admissionv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
		PolicyName: name, ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
	}}
	if _, err := adm.ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestProbeRefusedOnOneNode runs on a cluster whose admission refuses
// nodeconform's privileged probe pod on one node only (a policy keyed on
// the node, as for a node pool kept for regulated workloads; a quota
// that runs out does the same): the DaemonSet controller creates every
// other node's pod and reports FailedCreate for that one.
//   - Before: the probe's wait ran its whole 2-minute timeout, and then
//     every node's specs failed ("probe DaemonSet not scheduled").
//   - Now: once the controller's refusal has lasted Stuck's time, a dry
//     run of that node's pod is refused, and each spec fails that node
//     alone with admission's answer (the other nodes' verdicts in the
//     same specs pass).
func TestProbeRefusedOnOneNode(t *testing.T) {
	if os.Getenv("NODECONFORM_E2E") == "" {
		t.Skip("set NODECONFORM_E2E=1 to run on the kind cluster (make findings-e2e)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cs := kindClient(t)
	refused := workers(ctx, t, cs)[0]
	const name = "nodeconform-e2e-deny-probe"
	// The probe DaemonSet's pod for a node is pinned to it by a matchFields
	// term on metadata.name.
	expr := fmt.Sprintf(`!(has(object.metadata.labels) && 'app' in object.metadata.labels && object.metadata.labels['app'] == '%s' &&
		has(object.spec.affinity) && has(object.spec.affinity.nodeAffinity) &&
		has(object.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution) &&
		object.spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms.exists(t,
			has(t.matchFields) && t.matchFields.exists(f, f.values.exists(v, v == '%s'))))`, nodeaccess.DaemonSetName, refused)
	denyPolicy(ctx, t, cs, name, admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{RuleWithOperations: admissionv1.RuleWithOperations{
		Operations: []admissionv1.OperationType{admissionv1.Create},
		Rule:       admissionv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
	}}}}, admissionv1.Validation{Expression: expr, Message: "privileged pods are not allowed on node " + refused})
	// In force once a dry-run of such a pod is refused (the API server's
	// policy informer takes a moment).
	probe := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "in-force", Namespace: metav1.NamespaceDefault, Labels: map[string]string{"app": nodeaccess.DaemonSetName}},
		Spec: corev1.PodSpec{Affinity: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{refused}}}}}}}},
			Containers: []corev1.Container{{Name: "c", Image: "registry.k8s.io/pause:3.10.2"}}}}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
		_, err := cs.CoreV1().Pods(metav1.NamespaceDefault).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if workload.Refused(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("policy not in force after a minute: a dry-run create answered %v", err)
		}
	}
	failsOneNode(ctx, t, cs, "probe-refused", "primitives", refused, "admission refuses it on this node", name)
}

// failsOneNode runs suite in apply mode on the lab and expects only node
// to fail: every failed spec names it with each of wants (nodeSays: on
// the node's own line, as "node <node>: …<nodeSays>"), none names another
// node, and the run is not a wait for the probe's 2-minute timeout.
func failsOneNode(ctx context.Context, t *testing.T, cs kubernetes.Interface, label, suite, node, nodeSays string, wants ...string) {
	t.Helper()
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	res := runSuites(ctx, t, t.TempDir(), label, Options{Mode: ModeApply, Profile: labProfile(), Suites: []string{suite}})
	took := time.Since(began)
	f := failed(res)
	if len(f) == 0 {
		t.Error("nothing failed on " + node)
	}
	for _, s := range f {
		ok := strings.Contains(s.Failure, "node "+node+": ") && strings.Contains(s.Failure, nodeSays)
		for _, w := range wants {
			ok = ok && strings.Contains(s.Failure, w)
		}
		if !ok {
			t.Errorf("%s fails without naming node %s and %q %q: %.600s", s.Name, node, nodeSays, wants, s.Failure)
		}
		for _, n := range list.Items {
			if n.Name != node && strings.Contains(s.Failure, "node "+n.Name+":") {
				t.Errorf("%s fails node %s too: %.600s", s.Name, n.Name, s.Failure)
			}
		}
	}
	if took > 100*time.Second {
		t.Errorf("the run took %s: a node the probe cannot run on must not be waited out (the probe's timeout is 2 min)", took)
	}
	t.Logf("run %s with node %s failing: %s, %d failed", label, node, took.Round(time.Second), len(f))
}
