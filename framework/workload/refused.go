package workload

import (
	"strings"
)

// RefusedAdvice is what to do about an exec the API server refuses: the
// suites read nodes and pods through exec into nodeconform's own pods.
const RefusedAdvice = "nodeconform reads nodes and pods through exec (pods/exec) into its own pods: allow it in the namespaces labelled " + ManagedLabel + "=true (RBAC: `nodeconform rbac`; an admission policy or webhook: exempt those namespaces)"

// Refused reports whether the API server refused a request by a decision
// that asking again will not change: RBAC ("User … cannot create
// resource …") or admission (a ValidatingAdmissionPolicy's "denied
// request", a webhook's "admission webhook … denied the request") or a
// quota requiring what a pod does not declare ("must specify"). It
// reads the message, because client-go's SPDY executor reports a refused
// exec as plain text ("unable to upgrade connection: pods "x" is
// forbidden: …") and a policy's refusal comes as Forbidden or Invalid.
// Other Forbidden and Unauthorized answers may pass by themselves and are
// not refusals here: a namespace's service account not made yet, a quota
// used up, a token that a credential plugin refreshes; nor are a
// kubelet's own refusals of an exec ("pod does not exist" while it
// restarts).
func Refused(err error) bool {
	if err == nil {
		return false
	}
	m := err.Error()
	admission := strings.Contains(m, "denied request") || strings.Contains(m, "denied the request")
	// A quota that requires every pod to declare a resource refuses a pod
	// that does not for as long as the quota stands ("exceeded quota"
	// passes when pods go).
	quota := strings.Contains(m, "failed quota: ") && strings.Contains(m, "must specify ")
	return RBACRefused(err) || admission || quota
}

// RBACRefused reports whether err is RBAC refusing the caller's own
// request ("pods \"p\" is forbidden: User …" for a resource, "forbidden:
// User … cannot get path \"/x\"" for a non-resource URL), not admission
// refusing the object.
func RBACRefused(err error) bool {
	if err == nil {
		return false
	}
	m := err.Error()
	return strings.Contains(m, `forbidden: User "`) && strings.Contains(m, " cannot ")
}
