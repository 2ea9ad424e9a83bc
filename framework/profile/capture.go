package profile

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Observed is one node as capture sees it.
type Observed struct {
	Name   string
	Labels map[string]string
	State  State
}

// labelPreference orders the labels capture may select a group by: role
// labels first, then pool-like labels, hostname last.
var labelPreference = []string{"node-role.kubernetes.io/", "node.kubernetes.io/", "nodeconform.io/", "machineconfiguration.openshift.io/", hostnameLabel}

// hostnameLabel is the kubelet's own label of its host name; its value is
// not always the node's name.
const hostnameLabel = "kubernetes.io/hostname"

// ignoredLabels never make a selector: they are not about the node's role
// and differ or change with no intent behind them.
var ignoredLabels = []string{"beta.kubernetes.io/", "feature.node.kubernetes.io/", "topology.", "kubernetes.io/arch", "kubernetes.io/os", "node.kubernetes.io/exclude-from-external-load-balancers"}

// Capture writes a profile from a cluster known to be good: nodes whose
// observed states are equal form one group, selected by the label (or set
// of labels) its members share and no other node carries, else by their
// hostnames. Only fields observed on every member are declared.
func Capture(name string, nodes []Observed) (*Profile, error) {
	if len(nodes) == 0 {
		return nil, fmt.Errorf("no nodes to capture")
	}
	type cluster struct {
		key     string
		members []Observed
	}
	var clusters []*cluster
	byKey := map[string]*cluster{}
	for _, n := range nodes {
		k := stateKey(n.State)
		c, ok := byKey[k]
		if !ok {
			c = &cluster{key: k}
			byKey[k] = c
			clusters = append(clusters, c)
		}
		c.members = append(c.members, n)
	}
	p := &Profile{APIVersion: APIVersion, Kind: Kind, Metadata: Metadata{Name: name}}
	used := map[string]bool{}
	want := map[string]string{} // node → the group made for it
	for _, c := range clusters {
		sort.Slice(c.members, func(i, j int) bool { return c.members[i].Name < c.members[j].Name })
		sel := selectorFor(c.members, nodes)
		intent, err := IntentFromState(c.members[0].State)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", c.members[0].Name, err)
		}
		gname := groupName(sel, c.members)
		for base, i := gname, 2; used[gname]; i++ {
			gname = fmt.Sprintf("%s-%d", base, i)
		}
		used[gname] = true
		for _, m := range c.members {
			want[m.Name] = gname
		}
		p.Spec.Groups = append(p.Spec.Groups, Group{Name: gname, NodeSelector: sel, Node: intent})
	}
	sort.Slice(p.Spec.Groups, func(i, j int) bool { return p.Spec.Groups[i].Name < p.Spec.Groups[j].Name })
	if err := p.Validate(); err != nil {
		return p, err
	}
	return p, selectsAsCaptured(p, nodes, want)
}

// selectsAsCaptured reads the profile back against the nodes it was
// captured from: each node must land in the group made for it. A profile
// that leaves a node out would have that node skipped, not judged, by
// every run that uses it.
func selectsAsCaptured(p *Profile, nodes []Observed, want map[string]string) error {
	var nl []NodeLabels
	for _, n := range nodes {
		nl = append(nl, NodeLabels{Name: n.Name, Labels: n.Labels})
	}
	// Resolve's own error (a group matching no node) is joined with the
	// nodes it leaves out, so that those are named too.
	m, err := p.Resolve(nl)
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("the captured profile does not read back: %w", err))
	}
	for _, n := range nodes {
		got := "no group"
		if g := m.Group[n.Name]; g != nil {
			got = "group " + g.Name
		}
		if got != "group "+want[n.Name] {
			errs = append(errs, fmt.Errorf("node %s was captured into group %s but the profile puts it in %s (its labels cannot tell it from the other nodes: give it a label of its own)", n.Name, want[n.Name], got))
		}
	}
	return errors.Join(errs...)
}

func stateKey(s State) string {
	var keys []string
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%s\n", k, s[k])
	}
	return b.String()
}

// selectorFor finds the most preferred label every member has with one
// value and no other node has with that value; failing that, hostnames.
func selectorFor(members, all []Observed) metav1.LabelSelector {
	in := map[string]bool{}
	for _, m := range members {
		in[m.Name] = true
	}
	var candidates []string
	for k, v := range members[0].Labels {
		if ignored(k) {
			continue
		}
		shared := true
		for _, m := range members[1:] {
			if m.Labels[k] != v {
				shared = false
				break
			}
			if _, ok := m.Labels[k]; !ok {
				shared = false
				break
			}
		}
		if !shared {
			continue
		}
		exclusive := true
		for _, o := range all {
			if in[o.Name] {
				continue
			}
			if ov, ok := o.Labels[k]; ok && ov == v {
				exclusive = false
				break
			}
		}
		if exclusive {
			candidates = append(candidates, k)
		}
	}
	sort.Slice(candidates, func(i, j int) bool {
		pi, pj := preference(candidates[i]), preference(candidates[j])
		if pi != pj {
			return pi < pj
		}
		return candidates[i] < candidates[j]
	})
	if len(candidates) > 0 {
		k := candidates[0]
		return metav1.LabelSelector{MatchLabels: map[string]string{k: members[0].Labels[k]}}
	}
	// A group that is "every node without the labels the others use"
	// (kind workers carry no role label): select by absence of the
	// other groups' exclusive labels is fragile; name the hosts instead.
	// By the label's value, not the node's name: the two differ where a
	// cloud provider names the node (and the kubelet labels its own
	// hostname) or where an admin relabelled it.
	var hosts []string
	for _, m := range members {
		h, ok := m.Labels[hostnameLabel]
		if !ok {
			h = m.Name // no label to select it by: Capture's own check names it
		}
		hosts = append(hosts, h)
	}
	return metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: hostnameLabel, Operator: metav1.LabelSelectorOpIn, Values: hosts}}}
}

func preference(k string) int {
	for i, p := range labelPreference {
		if strings.HasPrefix(k, p) {
			return i
		}
	}
	return len(labelPreference) - 1 // before hostname would be wrong: unknown labels rank with it
}

func ignored(k string) bool {
	for _, p := range ignoredLabels {
		if strings.HasPrefix(k, p) {
			return true
		}
	}
	return false
}

func groupName(sel metav1.LabelSelector, members []Observed) string {
	for k, v := range sel.MatchLabels {
		name := k
		if i := strings.LastIndexByte(k, '/'); i >= 0 {
			name = k[i+1:]
		}
		if k == hostnameLabel {
			return v
		}
		if v != "" && v != "true" {
			name += "-" + v
		}
		return sanitize(name)
	}
	if len(members) == 1 {
		return sanitize(members[0].Name)
	}
	return sanitize(members[0].Name + "-and-" + fmt.Sprint(len(members)-1))
}

func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, s)
}
