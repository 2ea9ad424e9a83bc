// Package access says which Kubernetes API permissions a run needs and
// checks them, before the run creates anything, with
// SelfSubjectAccessReviews: a CI service account bound to too small a
// role then gets one error naming every missing permission, instead of
// one suite after another failing on "forbidden" half-way through.
//
// The same table prints the ClusterRole to bind (`nodeconform rbac`), so
// the role a platform team grants and the permissions a run checks for
// cannot drift apart.
package access

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
	authv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Need is one API permission a run uses.
type Need struct {
	// Group is the API group ("" for the core group).
	Group       string
	Resource    string
	Subresource string
	// Name narrows the permission to one object ("" for any).
	Name string
	Verb string
	// Namespace is where the run needs it; "" is every namespace (the
	// run's own namespaces are created with generated names, so a
	// namespaced permission must hold cluster-wide) or, for a
	// cluster-scoped resource, the resource itself.
	Namespace string
	// Why says what the run does with it, for the error and the role.
	Why string
	// IfServed: the run uses it only where the cluster serves its API
	// group (NFD's, OpenShift's); elsewhere it is not asked for.
	IfServed bool
}

// ResourcePath is the resource as RBAC rules name it: "pods/exec".
func (n Need) ResourcePath() string {
	if n.Subresource == "" {
		return n.Resource
	}
	return n.Resource + "/" + n.Subresource
}

// String names the permission as an error reader checks it with
// `kubectl auth can-i`.
func (n Need) String() string {
	r := n.ResourcePath()
	if n.Group != "" {
		r += "." + n.Group
	}
	if n.Name != "" {
		r += " " + n.Name
	}
	where := "in every namespace"
	switch {
	case n.Namespace != "":
		where = "in namespace " + n.Namespace
	case clusterScoped[n.Group+"/"+n.Resource]:
		where = "(cluster-scoped)"
	}
	return fmt.Sprintf("%s %s %s", n.Verb, r, where)
}

// clusterScoped are the resources in rules that no namespace holds
// (group/resource), for the message only.
var clusterScoped = map[string]bool{
	"/nodes": true, "/namespaces": true, "node.k8s.io/runtimeclasses": true, "nfd.k8s-sigs.io/nodefeaturerules": true,
	"machineconfiguration.openshift.io/machineconfigs": true, "machineconfiguration.openshift.io/kubeletconfigs": true,
	"machineconfiguration.openshift.io/machineconfigpools": true, "kataconfiguration.openshift.io/kataconfigs": true,
}

// rule is a set of permissions sharing a reason and the suites (and
// mode) that use them.
type rule struct {
	group, resource, sub string
	// name narrows the permission to one object (resourceNames).
	name      string
	verbs     []string
	namespace string
	// suites that use it; none: every suite.
	suites []string
	// applyOnly: only apply mode uses it (verify mode writes nothing
	// outside the run's namespaces).
	applyOnly bool
	// ifServed: see Need.IfServed.
	ifServed bool
	// pullSecret: only a run with --pull-secret uses it (WithPullSecret).
	pullSecret bool
	why        string
}

// ProbeSuites reach the nodes through the run's probe DaemonSet (the
// runner's NodeAccess; a runner test keeps the two equal).
var ProbeSuites = []string{"primitives", "sysctl", "nfd", "cgroups", "runtimeclass", "encapsulation"}

// rules is every permission a run uses, read from the code and checked
// by running every suite in verify mode with a service account bound to
// exactly the verify-mode role (TestProductionLikeCluster). The
// apply-mode rules were written from the code and have run only with
// cluster-admin credentials.
var rules = []rule{
	{resource: "nodes", verbs: []string{"get", "list"}, why: "select and judge the nodes"},
	{resource: "nodes", sub: "proxy", verbs: []string{"get"}, suites: []string{"cluster", "sysctl", "cgroups", "runtimeclass"}, why: "read each kubelet's running configuration (/configz)"},
	{resource: "namespaces", verbs: []string{"create", "get", "list", "watch", "delete"}, why: "one namespace per spec and the run's probe, deleted at the end"},
	{resource: "pods", verbs: []string{"create", "get", "list", "watch", "delete", "deletecollection"}, why: "the pods whose isolation is judged"},
	{resource: "pods", sub: "log", verbs: []string{"get"}, why: "a failed pod's output as evidence"},
	{resource: "events", verbs: []string{"list"}, why: "why a pod did not start, as evidence"},
	{resource: "secrets", verbs: []string{"create"}, pullSecret: true, why: "the image pull secret in each of the run's namespaces (--pull-secret)"},
	{resource: "serviceaccounts", verbs: []string{"get", "update"}, pullSecret: true, why: "add the image pull secret to each of the run's namespaces' default service account (--pull-secret)"},
	{resource: "pods", verbs: []string{"create"}, pullSecret: true, why: "a pod dry-run showing admission gives out the image pull secret (--pull-secret)"},
	{group: "coordination.k8s.io", resource: "leases", verbs: []string{"create", "get", "update"}, why: "the run's owner lease (a killed run's leftovers are told from a live run's) and the nodes' heartbeats"},
	{group: "apps", resource: "daemonsets", verbs: []string{"create", "get"}, suites: ProbeSuites, why: "the run's privileged probe DaemonSet, which reads each node's kernel and files"},
	{resource: "pods", sub: "exec", verbs: []string{"create"}, suites: append([]string{"cluster"}, ProbeSuites...), why: "run the readers in the probe pods and the cluster suite's client pod"},
	{group: "apps", resource: "deployments", verbs: []string{"create"}, suites: []string{"sysctl"}, why: "sysctls in a Deployment's, a StatefulSet's and a DaemonSet's pod template"},
	{group: "apps", resource: "statefulsets", verbs: []string{"create"}, suites: []string{"sysctl"}, why: "sysctls in a Deployment's, a StatefulSet's and a DaemonSet's pod template"},
	{resource: "services", verbs: []string{"create"}, suites: []string{"cluster", "primitives"}, why: "a Service of the run's own, reached by a pod and programmed by kube-proxy"},
	{resource: "services", verbs: []string{"get"}, namespace: "default", suites: []string{"primitives"}, why: "the API server's Service (default/kubernetes)"},
	{group: "discovery.k8s.io", resource: "endpointslices", verbs: []string{"create", "list"}, suites: []string{"primitives"}, why: "the run's Service's endpoints, and the API server's"},
	{resource: "configmaps", name: "kube-proxy", verbs: []string{"get"}, namespace: "kube-system", suites: []string{"primitives"}, why: "kube-proxy's configuration (its mode)"},
	{group: "node.k8s.io", resource: "runtimeclasses", verbs: []string{"get", "list"}, suites: []string{"runtimeclass"}, why: "the RuntimeClasses the profile declares"},
	{group: "nfd.k8s-sigs.io", resource: "nodefeatures", verbs: []string{"list"}, suites: []string{"nfd"}, ifServed: true, why: "whether the cluster runs NFD of its own"},
	{group: "kataconfiguration.openshift.io", resource: "kataconfigs", verbs: []string{"list"}, suites: []string{"nfd"}, ifServed: true, why: "the KataConfigs whose checkNodeEligibility the nfd suite judges"},

	{group: "node.k8s.io", resource: "runtimeclasses", verbs: []string{"create", "delete", "watch", "patch", "update", "deletecollection"}, suites: []string{"runtimeclass"}, applyOnly: true, why: "the RuntimeClasses a kind cluster lacks, the deleted-class case and the RuntimeClass API's every verb"},
	{resource: "nodes", verbs: []string{"patch"}, suites: []string{"nfd"}, applyOnly: true, why: "the wrongly-set kata label the nfd suite must catch (removed after)"},
	{group: "nfd.k8s-sigs.io", resource: "nodefeaturerules", verbs: []string{"create", "delete", "list"}, suites: []string{"nfd"}, applyOnly: true, ifServed: true, why: "the kata and control NodeFeatureRules (deleted after; listed to sweep an interrupted run's)"},
	{group: "nfd.k8s-sigs.io", resource: "nodefeatures", verbs: []string{"create", "delete"}, suites: []string{"nfd"}, applyOnly: true, ifServed: true, why: "features published for a node so that a rule's positive path runs (deleted after)"},
	// OpenShift: node changes go through the Machine Config Operator.
	{group: "machineconfiguration.openshift.io", resource: "machineconfigs", verbs: []string{"create", "patch", "delete"}, suites: []string{"encapsulation"}, applyOnly: true, ifServed: true, why: "the kubens MachineConfigs (deleted after)"},
	{group: "machineconfiguration.openshift.io", resource: "kubeletconfigs", verbs: []string{"create", "patch", "delete"}, suites: []string{"sysctl"}, applyOnly: true, ifServed: true, why: "the seed's allowlisting KubeletConfig (deleted after)"},
	{group: "machineconfiguration.openshift.io", resource: "machineconfigpools", verbs: []string{"get", "list"}, suites: []string{"sysctl", "runtimeclass", "encapsulation"}, applyOnly: true, ifServed: true, why: "wait for the pools to roll out a change (runtimeclass: only when it installs a missing kata class)"},
	{group: "machineconfiguration.openshift.io", resource: "machineconfigpools", verbs: []string{"patch"}, suites: []string{"sysctl"}, applyOnly: true, ifServed: true, why: "label the worker pool for the KubeletConfig (removed after)"},
	{group: "kataconfiguration.openshift.io", resource: "kataconfigs", verbs: []string{"create", "patch", "get", "delete"}, suites: []string{"runtimeclass"}, applyOnly: true, ifServed: true, why: "install the sandboxed containers operator's KataConfig when the kata class is missing (deleted after)"},
}

// Option adds to what For returns.
type Option func(*forOptions)

type forOptions struct{ pullSecret bool }

// WithPullSecret: the run has registry credentials for its namespaces
// (--pull-secret).
func WithPullSecret() Option { return func(o *forOptions) { o.pullSecret = true } }

// For is what a run of suites in mode ("apply" or "verify") needs, each
// permission once, in the table's order.
func For(suites []string, mode string, opts ...Option) []Need {
	var o forOptions
	for _, f := range opts {
		f(&o)
	}
	var out []Need
	seen := map[Need]bool{}
	for _, r := range rules {
		if (r.applyOnly && mode != "apply") || (r.pullSecret && !o.pullSecret) {
			continue
		}
		if len(r.suites) > 0 && !slices.ContainsFunc(suites, func(s string) bool { return slices.Contains(r.suites, s) }) {
			continue
		}
		for _, v := range r.verbs {
			n := Need{Group: r.group, Resource: r.resource, Subresource: r.sub, Name: r.name, Verb: v, Namespace: r.namespace, Why: r.why, IfServed: r.ifServed}
			key := n
			key.Why, key.IfServed = "", false
			if !seen[key] {
				seen[key] = true
				out = append(out, n)
			}
		}
	}
	return out
}

// Served drops the needs whose API group the cluster does not serve and
// that the run uses only where it is served (Need.IfServed).
func Served(needs []Need, groups []string) []Need {
	return slices.DeleteFunc(slices.Clone(needs), func(n Need) bool {
		return n.IfServed && !slices.Contains(groups, n.Group)
	})
}

// Missing asks the API server, for each need, whether the client's own
// credentials allow it, and returns those it denies in the order given.
// An error is a review the server did not answer, not a denial.
func Missing(ctx context.Context, cs kubernetes.Interface, needs []Need) ([]Need, error) {
	denied := make([]bool, len(needs))
	// The reviews are independent and cheap: asked side by side, a run
	// pays for one round trip, not thirty.
	var g errgroup.Group
	g.SetLimit(8)
	for i, n := range needs {
		g.Go(func() error {
			r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{
				Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
					Namespace: n.Namespace, Verb: n.Verb, Group: n.Group, Resource: n.Resource, Subresource: n.Subresource, Name: n.Name,
				}},
			}, metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("ask whether the credentials may %s: %w", n, err)
			}
			denied[i] = !r.Status.Allowed
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var out []Need
	for i, n := range needs {
		if denied[i] {
			out = append(out, n)
		}
	}
	return out, nil
}

// MissingError is a run refused before it started: the credentials lack
// the permissions listed.
type MissingError struct {
	Missing []Need
	// Hint is how to get the role that grants them.
	Hint string
	// Warning: the run goes on (a filtered run may not need them).
	Warning bool
}

func (e MissingError) Error() string {
	var b strings.Builder
	if e.Warning {
		fmt.Fprintf(&b, "the credentials lack %d permission(s) the selected suites use:", len(e.Missing))
	} else {
		fmt.Fprintf(&b, "the credentials lack %d permission(s) this run needs (nothing was created):", len(e.Missing))
	}
	// Verbs of one resource and reason share a line: a role with none
	// of the run's permissions reads as a dozen lines, not thirty.
	for i := 0; i < len(e.Missing); {
		n := e.Missing[i]
		verbs := []string{n.Verb}
		j := i + 1
		for ; j < len(e.Missing); j++ {
			m := e.Missing[j]
			m.Verb = n.Verb
			if m != n {
				break
			}
			verbs = append(verbs, e.Missing[j].Verb)
		}
		n.Verb = strings.Join(verbs, ", ")
		fmt.Fprintf(&b, "\n  %s: %s", n, n.Why)
		i = j
	}
	if e.Hint != "" {
		b.WriteString("\n" + e.Hint)
	}
	return b.String()
}

// ClusterRole is the role granting needs: one rule per API group, verb
// set and object name, so that it reads as a short list. Namespace-bound
// needs (kube-proxy's ConfigMap, the API server's Service) are granted
// cluster-wide, since a ClusterRole bound by a ClusterRoleBinding has no
// narrower form; the ConfigMap's is still limited to its name.
func ClusterRole(name string, needs []Need) *rbacv1.ClusterRole {
	type key struct{ group, resource, name string }
	verbs := map[key][]string{}
	var order []key
	for _, n := range needs {
		k := key{n.Group, n.ResourcePath(), n.Name}
		if _, ok := verbs[k]; !ok {
			order = append(order, k)
		}
		if !slices.Contains(verbs[k], n.Verb) {
			verbs[k] = append(verbs[k], n.Verb)
		}
	}
	cr := &rbacv1.ClusterRole{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}
	// Resources of one group with the same verbs (and object names)
	// share a rule.
	for _, k := range order {
		v := verbs[k]
		var names []string
		if k.name != "" {
			names = []string{k.name}
		}
		merged := false
		for i := range cr.Rules {
			r := &cr.Rules[i]
			if r.APIGroups[0] == k.group && slices.Equal(r.Verbs, v) && slices.Equal(r.ResourceNames, names) {
				r.Resources = append(r.Resources, k.resource)
				merged = true
				break
			}
		}
		if !merged {
			cr.Rules = append(cr.Rules, rbacv1.PolicyRule{APIGroups: []string{k.group}, Resources: []string{k.resource}, ResourceNames: names, Verbs: v})
		}
	}
	return cr
}
