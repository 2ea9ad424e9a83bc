package workload

import (
	"errors"
	"fmt"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
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
		{errors.New(`unable to upgrade connection: pods "p" is invalid: : ValidatingAdmissionPolicy 'deny-exec' denied request`), true},
		{errors.New(`unable to upgrade connection: Unauthorized`), true},
		{apierrors.NewForbidden(pods, "p", errors.New("denied")), true},
		{fmt.Errorf("list: %w", apierrors.NewUnauthorized("token expired")), true},
		// A kubelet restarting, a pod gone, a network error: not refusals.
		{errors.New("unable to upgrade connection: pod does not exist"), false},
		{errors.New("unable to upgrade connection: container not found (\"probe\")"), false},
		{errors.New("error dialing backend: dial tcp 172.18.0.3:10250: connect: connection refused"), false},
		{apierrors.NewNotFound(pods, "p"), false},
		{apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, "p", nil), false},
		{nil, false},
	}
	for _, c := range cases {
		if got := Refused(c.err); got != c.want {
			t.Errorf("Refused(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
