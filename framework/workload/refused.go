package workload

import (
	"errors"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RefusedAdvice is what to do about an exec the API server refuses: the
// suites read nodes and pods through exec into nodeconform's own pods.
const RefusedAdvice = "nodeconform reads nodes and pods through exec (pods/exec) into its own pods: allow it in the namespaces labelled " + ManagedLabel + "=true (RBAC: `nodeconform rbac`; an admission policy or webhook: exempt those namespaces)"

// Refused reports whether the API server itself refused a request, before
// it reached a node, in a way that asking again will not change: RBAC, an
// admission policy or webhook (Forbidden, or Invalid as a
// ValidatingAdmissionPolicy reports a refused connect), or credentials it
// does not accept. An exec's refusal reaches client-go's SPDY executor as
// plain text ("unable to upgrade connection: pods "x" is forbidden: …"),
// so that form is read too; a kubelet's own refusals of an exec ("pod
// does not exist" while it restarts) are not among these.
func Refused(err error) bool {
	if err == nil {
		return false
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		switch st.Status().Reason {
		case metav1.StatusReasonForbidden, metav1.StatusReasonUnauthorized:
			return true
		}
		return false
	}
	m := err.Error()
	i := strings.Index(m, "unable to upgrade connection: ")
	if i < 0 {
		return false
	}
	rest := m[i:]
	for _, s := range []string{" is forbidden: ", " is invalid: ", "Unauthorized", "Forbidden"} {
		if strings.Contains(rest, s) {
			return true
		}
	}
	return false
}
