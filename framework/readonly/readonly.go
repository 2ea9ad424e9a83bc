// Package readonly enforces verify mode: a run that must be safe to point
// at production may read anything, but may only write inside namespaces it
// created (named nodeconform-*) and may only run read-only commands on
// nodes. The guard sits in the API client and the node access layer, so a
// spec that forgets to skip fails loudly instead of changing the cluster.
package readonly

import (
	"fmt"
	"net/http"
	"path"
	"strings"
)

// NamespacePrefix names the namespaces a run creates and may write into.
const NamespacePrefix = "nodeconform-"

// CheckRequest allows every read, and writes only to the run's own
// namespaces: creating and deleting them, and anything inside them (pods,
// exec into probe pods, DaemonSets). Cluster-scoped writes are refused.
func CheckRequest(method, urlPath string) error {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	p := path.Clean(urlPath)
	parts := strings.Split(strings.Trim(p, "/"), "/")
	// /api/v1/... or /apis/<group>/<version>/...
	var rest []string
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		rest = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		rest = parts[3:]
	default:
		return fmt.Errorf("verify mode: refusing %s %s", method, urlPath)
	}
	if len(rest) >= 1 && rest[0] == "namespaces" {
		if len(rest) == 1 && method == http.MethodPost && parts[0] == "api" {
			return nil // creating a namespace (generateName nodeconform-…)
		}
		if len(rest) >= 2 && strings.HasPrefix(rest[1], NamespacePrefix) {
			return nil
		}
	}
	return fmt.Errorf("verify mode (read-only): refusing %s %s: only the run's own %s* namespaces may be written", method, urlPath, NamespacePrefix)
}

// Transport refuses requests CheckRequest does not allow.
type Transport struct{ Next http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (t Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := CheckRequest(r.Method, r.URL.Path); err != nil {
		return nil, err
	}
	return t.Next.RoundTrip(r)
}

// readOnlyCommands are node commands that only read.
var readOnlyCommands = map[string]bool{
	"cat": true, "grep": true, "findmnt": true, "test": true, "stat": true, "readlink": true, "ls": true,
	"iptables-save": true, "ip6tables-save": true, "uname": true, "ps": true,
	"/usr/local/bin/kubensenter": true, "/usr/bin/kubensenter": true, "kubensenter": true,
}

// CheckCommand allows only read-only node commands in verify mode:
// kubensenter only to run another allowed command, systemctl only to query.
func CheckCommand(cmd []string) error {
	if len(cmd) == 0 {
		return fmt.Errorf("verify mode: empty node command")
	}
	name := cmd[0]
	switch {
	case name == "systemctl":
		for _, a := range cmd[1:] {
			switch a {
			case "is-active", "is-enabled", "is-system-running", "show", "status", "cat", "list-units":
				return nil
			}
		}
	case name == "sh" && len(cmd) == 3 && cmd[1] == "-c" && cmd[2] == "command -v kubensenter":
		return nil
	case strings.HasSuffix(name, "kubensenter"):
		if len(cmd) == 1 {
			return fmt.Errorf("verify mode: kubensenter without a command would start a shell")
		}
		return CheckCommand(cmd[1:])
	case readOnlyCommands[name]:
		return nil
	}
	return fmt.Errorf("verify mode (read-only): refusing node command %q", strings.Join(cmd, " "))
}
