// Package netfilter reads what kube-proxy programmed on a node: iptables-save
// output (its iptables mode) and its nftables table as the probe reads it
// from the kernel (its nftables mode).
package netfilter

import (
	"bufio"
	"strings"
)

// Table is one table of iptables-save output.
type Table struct {
	Chains map[string]bool
	Rules  []string
}

// Parse splits iptables-save output into tables with their chains and rules.
func Parse(save string) map[string]*Table {
	out := map[string]*Table{}
	var cur *Table
	sc := bufio.NewScanner(strings.NewReader(save))
	sc.Buffer(make([]byte, 1<<16), 1<<22)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			cur = &Table{Chains: map[string]bool{}}
			out[strings.TrimPrefix(line, "*")] = cur
		case cur == nil:
		case strings.HasPrefix(line, ":"):
			if f := strings.Fields(line[1:]); len(f) > 0 {
				cur.Chains[f[0]] = true
			}
		case strings.HasPrefix(line, "-A "):
			cur.Rules = append(cur.Rules, line)
		}
	}
	return out
}

// KubeProxyChains are the nat chains kube-proxy's iptables mode creates.
var KubeProxyChains = []string{"KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"}

// MissingChains returns which of want are absent from table.
func MissingChains(t *Table, want []string) []string {
	var miss []string
	for _, c := range want {
		if t == nil || !t.Chains[c] {
			miss = append(miss, c)
		}
	}
	return miss
}

// ServiceRule returns the KUBE-SERVICES rule sending clusterIP:port to a
// service chain, or "" when kube-proxy has not programmed it.
func ServiceRule(t *Table, clusterIP string, port string) string {
	if t == nil {
		return ""
	}
	for _, r := range t.Rules {
		if strings.HasPrefix(r, "-A KUBE-SERVICES ") && strings.Contains(r, "-d "+clusterIP+"/") &&
			strings.Contains(r, "--dport "+port+" ") && strings.Contains(r, "-j KUBE-SVC-") {
			return r
		}
	}
	return ""
}
