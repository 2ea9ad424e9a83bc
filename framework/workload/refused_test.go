package workload

import (
	"errors"
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

func TestRefused(t *testing.T) {
	pods := schema.GroupResource{Resource: "pods"}
	cases := []struct {
		err  error
		want bool
	}{
		// As client-go's SPDY executor reports them, seen on the lab.
		{errors.New(`unable to upgrade connection: pods "kube-proxy-dps6p" is forbidden: ValidatingAdmissionPolicy 'deny-exec' with binding 'deny-exec' denied request: exec into pods is not allowed`), true},
		{fmt.Errorf("open probe session in ns/p: %w", errors.New(`unable to upgrade connection: pods "p" is forbidden: User "system:serviceaccount:ci:nc" cannot create resource "pods/exec" in API group "" in the namespace "ns"`)), true},
		// A webhook (Gatekeeper, Kyverno) and a policy refusing a create.
		{errors.New(`unable to upgrade connection: admission webhook "validation.gatekeeper.sh" denied the request: [deny-exec] exec is not allowed`), true},
		{apierrors.NewForbidden(pods, "p", errors.New(`admission webhook "validate.kyverno.svc-fail" denied the request: policy deny-exec`)), true},
		{apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, "p", field.ErrorList{field.Invalid(field.NewPath(""), nil, "ValidatingAdmissionPolicy 'x' with binding 'x' denied request: no")}), true},
		{apierrors.NewForbidden(pods, "p", errors.New(`User "u" cannot list resource "pods" in API group "" at the cluster scope`)), true},
		{errors.New(`forbidden: User "system:serviceaccount:ci:nc" cannot get path "/version"`), true},
		{apierrors.NewForbidden(pods, "p", errors.New(`failed quota: ns-quota: must specify limits.cpu for: c; limits.memory for: c`)), true},
		// May pass by themselves: not refusals.
		{apierrors.NewForbidden(pods, "p", errors.New(`error looking up service account ns/default: serviceaccount "default" not found`)), false},
		{apierrors.NewForbidden(pods, "p", errors.New(`exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1`)), false},
		{fmt.Errorf("list: %w", apierrors.NewUnauthorized("token expired")), false},
		{errors.New(`unable to upgrade connection: Unauthorized`), false},
		// A kubelet restarting, a pod gone, a network error.
		{errors.New("unable to upgrade connection: pod does not exist"), false},
		{errors.New("unable to upgrade connection: container not found (\"probe\")"), false},
		{errors.New("error dialing backend: dial tcp 172.18.0.3:10250: connect: connection refused"), false},
		{apierrors.NewNotFound(pods, "p"), false},
		// Pod Security refusing a pod: the sysctl suite's expected outcome.
		{apierrors.NewForbidden(pods, "p", errors.New(`violates PodSecurity "restricted:latest": forbidden sysctls (net.ipv4.ip_local_port_range)`)), false},
		{nil, false},
	}
	for _, c := range cases {
		if got := Refused(c.err); got != c.want {
			t.Errorf("Refused(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
