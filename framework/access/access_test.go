package access

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	authv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

var all = []string{"cluster", "primitives", "sysctl", "nfd", "cgroups", "runtimeclass", "encapsulation"}

func names(needs []Need) []string {
	var out []string
	for _, n := range needs {
		out = append(out, n.String())
	}
	return out
}

func TestForSelectsBySuiteAndMode(t *testing.T) {
	cases := []struct {
		suites     []string
		mode       string
		want, nope []string
	}{
		{all, "verify",
			[]string{"create pods/exec in every namespace", "get nodes/proxy (cluster-scoped)", "get configmaps kube-proxy in namespace kube-system", "create namespaces (cluster-scoped)"},
			[]string{"patch nodes (cluster-scoped)", "create runtimeclasses.node.k8s.io (cluster-scoped)", "create machineconfigs.machineconfiguration.openshift.io (cluster-scoped)"}},
		// The cluster suite reaches no node through the probe, but execs
		// into its client pod.
		{[]string{"cluster"}, "verify",
			[]string{"create services in every namespace", "get nodes/proxy (cluster-scoped)", "create pods/exec in every namespace"},
			[]string{"create daemonsets.apps in every namespace", "get configmaps kube-proxy in namespace kube-system", "get services in namespace default"}},
		{[]string{"sysctl"}, "verify",
			[]string{"get nodes/proxy (cluster-scoped)", "create deployments.apps in every namespace"},
			[]string{"create services in every namespace"}},
		{[]string{"nfd"}, "apply",
			[]string{"patch nodes (cluster-scoped)", "create nodefeaturerules.nfd.k8s-sigs.io (cluster-scoped)"},
			[]string{"create runtimeclasses.node.k8s.io (cluster-scoped)", "get nodes/proxy (cluster-scoped)"}},
		{[]string{"runtimeclass"}, "apply",
			[]string{"create runtimeclasses.node.k8s.io (cluster-scoped)", "delete runtimeclasses.node.k8s.io (cluster-scoped)"},
			[]string{"patch nodes (cluster-scoped)"}},
	}
	for _, c := range cases {
		got := names(For(c.suites, c.mode))
		for _, w := range c.want {
			if !slices.Contains(got, w) {
				t.Errorf("%v %s: missing %q in %v", c.suites, c.mode, w, got)
			}
		}
		for _, n := range c.nope {
			if slices.Contains(got, n) {
				t.Errorf("%v %s: should not need %q", c.suites, c.mode, n)
			}
		}
		seen := map[string]bool{}
		for _, g := range got {
			if seen[g] {
				t.Errorf("%v %s: %q twice", c.suites, c.mode, g)
			}
			seen[g] = true
		}
	}
}

// Verify mode writes nothing outside the run's namespaces: its needs
// write only the run's own objects (namespaces, namespaced objects in
// them, its lease).
func TestVerifyWritesOnlyItsOwn(t *testing.T) {
	own := map[string]bool{"namespaces": true, "pods": true, "pods/exec": true, "daemonsets": true, "leases": true, "services": true, "endpointslices": true, "deployments": true, "statefulsets": true}
	for _, n := range For(all, "verify") {
		switch n.Verb {
		case "get", "list", "watch":
			continue
		}
		if !own[n.ResourcePath()] {
			t.Errorf("verify mode needs %s", n)
		}
	}
}

func grants(role *rbacv1.ClusterRole, n Need) bool {
	r := n.ResourcePath()
	for _, p := range role.Rules {
		if len(p.ResourceNames) > 0 && !slices.Contains(p.ResourceNames, n.Name) {
			continue
		}
		if slices.Contains(p.APIGroups, n.Group) && slices.Contains(p.Resources, r) && slices.Contains(p.Verbs, n.Verb) {
			return true
		}
	}
	return false
}

func TestClusterRoleGrantsExactlyTheNeeds(t *testing.T) {
	for _, mode := range []string{"verify", "apply"} {
		for _, suites := range append([][]string{all}, func() [][]string {
			var one [][]string
			for _, s := range all {
				one = append(one, []string{s})
			}
			return one
		}()...) {
			needs := For(suites, mode)
			role := ClusterRole("nodeconform", needs)
			for _, n := range needs {
				if !grants(role, n) {
					t.Errorf("%s %v: the role does not grant %s", mode, suites, n)
				}
			}
			// Nothing more: each granted triple is a need.
			want := map[string]bool{}
			for _, n := range needs {
				want[n.Group+"|"+n.ResourcePath()+"|"+n.Verb+"|"+n.Name] = true
			}
			for _, p := range role.Rules {
				for _, g := range p.APIGroups {
					for _, r := range p.Resources {
						for _, v := range p.Verbs {
							name := ""
							if len(p.ResourceNames) > 0 {
								name = p.ResourceNames[0]
							}
							if !want[g+"|"+r+"|"+v+"|"+name] {
								t.Errorf("%s %v: the role grants %s %s in group %q, which no need asks for", mode, suites, v, r, g)
							}
						}
					}
				}
			}
		}
	}
}

func TestServedDropsOnlyOptionalGroups(t *testing.T) {
	needs := For([]string{"nfd", "encapsulation"}, "apply")
	got := names(Served(needs, []string{"", "apps", "nfd.k8s-sigs.io"}))
	if !slices.Contains(got, "create nodefeaturerules.nfd.k8s-sigs.io (cluster-scoped)") {
		t.Errorf("served NFD group dropped: %v", got)
	}
	for _, g := range got {
		if strings.Contains(g, "openshift.io") {
			t.Errorf("unserved OpenShift group kept: %s", g)
		}
	}
	// Core needs stay even if the list of groups were wrong.
	if !slices.Contains(names(Served(needs, nil)), "create pods/exec in every namespace") {
		t.Error("a need of a core group was dropped")
	}
	if len(needs) == len(Served(needs, nil)) {
		t.Error("Served dropped nothing")
	}
}

// fakeReviews answers SelfSubjectAccessReviews, denying those listed.
func fakeReviews(deny map[string]bool, fail error) *fake.Clientset {
	cs := fake.NewClientset()
	cs.PrependReactor("create", "selfsubjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if fail != nil {
			return true, nil, fail
		}
		r := a.(k8stesting.CreateAction).GetObject().(*authv1.SelfSubjectAccessReview)
		ra := r.Spec.ResourceAttributes
		n := Need{Group: ra.Group, Resource: ra.Resource, Subresource: ra.Subresource, Verb: ra.Verb, Namespace: ra.Namespace}
		r.Status.Allowed = !deny[n.String()]
		return true, r, nil
	})
	return cs
}

func TestMissingReturnsTheDenied(t *testing.T) {
	needs := For(all, "verify")
	deny := map[string]bool{"create pods/exec in every namespace": true, "get nodes/proxy (cluster-scoped)": true}
	got, err := Missing(context.Background(), fakeReviews(deny, nil), needs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || !deny[got[0].String()] || !deny[got[1].String()] {
		t.Fatalf("got %v", names(got))
	}
	// In the table's order, for a stable message.
	if slices.Index(needs, got[0]) > slices.Index(needs, got[1]) {
		t.Errorf("out of order: %v", names(got))
	}
	msg := MissingError{Missing: got, Hint: "HINT"}.Error()
	for _, w := range []string{"2 permission(s)", "create pods/exec in every namespace: run the readers", "get nodes/proxy (cluster-scoped): read each kubelet", "nothing was created", "HINT"} {
		if !strings.Contains(msg, w) {
			t.Errorf("message lacks %q:\n%s", w, msg)
		}
	}
	// Verbs of one resource and reason share a line.
	all := For(all, "verify")
	msg = MissingError{Missing: all}.Error()
	if !strings.Contains(msg, "\n  create, delete namespaces (cluster-scoped): ") && !strings.Contains(msg, "\n  create, get, list, watch, delete namespaces (cluster-scoped): ") {
		t.Errorf("verbs not grouped:\n%s", msg)
	}
	if lines := strings.Count(msg, "\n  "); lines >= len(all)*2/3 {
		t.Errorf("%d lines for %d permissions:\n%s", lines, len(all), msg)
	}
	if none, err := Missing(context.Background(), fakeReviews(nil, nil), needs); err != nil || len(none) != 0 {
		t.Errorf("all allowed: %v %v", names(none), err)
	}
	if _, err := Missing(context.Background(), fakeReviews(nil, errors.New("boom")), needs); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Errorf("an unanswered review: %v", err)
	}
}

// The pull secret's permissions are asked for only by a run that has one.
func TestPullSecretNeeds(t *testing.T) {
	has := func(needs []Need, resource string) bool {
		for _, n := range needs {
			if n.Resource == resource {
				return true
			}
		}
		return false
	}
	if without := For([]string{"cluster"}, "verify"); has(without, "secrets") || has(without, "serviceaccounts") {
		t.Errorf("without --pull-secret: %v", without)
	}
	if with := For([]string{"cluster"}, "verify", WithPullSecret()); !has(with, "secrets") || !has(with, "serviceaccounts") {
		t.Errorf("with --pull-secret: %v", with)
	}
}
