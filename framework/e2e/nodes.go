package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	corev1 "k8s.io/api/core/v1"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/evidence"
	"github.com/nodeconform/nodeconform/framework/nodechange"
	"github.com/nodeconform/nodeconform/framework/nodestate"
	"github.com/nodeconform/nodeconform/framework/profile"
	"github.com/nodeconform/nodeconform/framework/verdict"
)

// Target is a node the run judges, with its profile group ("" without a
// profile).
type Target struct {
	Name  string `json:"name"`
	Group string `json:"group,omitempty"`
}

// LoadConfig loads the configuration and, when profileFile is set, the
// profile, whose settings override the configuration key by key and whose
// RuntimeClasses, when it declares any, become the classes under test.
func LoadConfig(configFile, profileFile string) (*config.Config, *profile.Profile, error) {
	cfg, err := config.Load(configFile)
	if err != nil {
		return nil, nil, err
	}
	if profileFile == "" {
		return cfg, nil, validate(cfg)
	}
	prof, err := profile.Load(profileFile)
	if err != nil {
		return nil, nil, err
	}
	if len(prof.Spec.Settings) > 0 {
		data, err := json.Marshal(prof.Spec.Settings)
		if err != nil {
			return nil, nil, err
		}
		if err := cfg.Override(data); err != nil {
			return nil, nil, fmt.Errorf("profile %s: spec.settings: %w", profileFile, err)
		}
	}
	if len(prof.Spec.RuntimeClasses) > 0 {
		cfg.RuntimeClass.Classes = ProfileClasses(cfg.RuntimeClass.Classes, prof.Spec.RuntimeClasses)
	}
	return cfg, prof, validate(cfg)
}

// ProfileClasses are the classes under test when a profile declares
// RuntimeClasses: exactly the declared ones, with the declared handler,
// overhead, nodeSelector and isolation. A configured class of the same
// name lends its fixture, and the isolation and required flags the
// profile leaves out (else false).
func ProfileClasses(configured []config.RuntimeClass, declared []profile.RuntimeClass) []config.RuntimeClass {
	var out []config.RuntimeClass
	for _, d := range declared {
		var c config.RuntimeClass
		for _, k := range configured {
			if k.Name == d.Name {
				c = k
			}
		}
		c.Name, c.Handler = d.Name, d.Handler
		c.Overhead = map[string]string{}
		for k, q := range d.Overhead {
			c.Overhead[k] = q.String()
		}
		c.NodeSelector = d.NodeSelector
		if d.Isolated != nil {
			c.Isolated = *d.Isolated
		}
		if d.Required != nil {
			c.Required = *d.Required
		}
		out = append(out, c)
	}
	return out
}

// validate refuses settings that would break a run rather than slow it.
func validate(cfg *config.Config) error {
	if d := cfg.Timeouts.OwnerLease.Duration; d < 15*time.Second {
		return fmt.Errorf("timeouts.ownerLease %s: must be at least 15s (a shorter lease makes live runs look dead)", d)
	}
	if cfg.Nodes.MaxParallel < 1 {
		return fmt.Errorf("nodes.maxParallel %d: must be at least 1", cfg.Nodes.MaxParallel)
	}
	return nil
}

// SelectNodes returns the nodes a run judges: the nodes of the profile's
// groups when there is a profile (a group matching nothing, or two groups
// claiming a node, is an error), else every schedulable node; a selector
// narrows either. Nodes that are not Linux are never judged (the probe and
// every check are Linux's). notJudged maps the cluster's other nodes the
// selector matched to why they are left out.
func SelectNodes(ctx context.Context, cs kubernetes.Interface, prof *profile.Profile, selector string) (targets []Target, notJudged map[string]string, err error) {
	sel := labels.Everything()
	if selector != "" {
		if sel, err = labels.Parse(selector); err != nil {
			return nil, nil, fmt.Errorf("--nodes %q: %w", selector, err)
		}
	}
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("list nodes: %w", err)
	}
	var m profile.Membership
	if prof != nil {
		var nl []profile.NodeLabels
		for _, n := range list.Items {
			nl = append(nl, profile.NodeLabels{Name: n.Name, Labels: n.Labels})
		}
		if m, err = prof.Resolve(nl); err != nil {
			return nil, nil, fmt.Errorf("profile %s: %w", prof.Metadata.Name, err)
		}
	}
	notJudged = map[string]string{}
	for _, n := range list.Items {
		if !sel.Matches(labels.Set(n.Labels)) {
			continue
		}
		t := Target{Name: n.Name}
		if os := NodeOS(n); os != "linux" {
			notJudged[n.Name] = "operating system " + os + ": nodeconform examines Linux nodes"
			continue
		}
		if prof != nil {
			g, ok := m.Group[n.Name]
			if !ok {
				notJudged[n.Name] = "in no profile group"
				continue
			}
			t.Group = g.Name
		} else if n.Spec.Unschedulable {
			notJudged[n.Name] = "cordoned (no profile names it)"
			continue // not a node pods are meant to run on
		}
		targets = append(targets, t)
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i].Name < targets[j].Name })
	if len(targets) == 0 {
		return nil, nil, fmt.Errorf("no node selected (profile groups and --nodes %q match none)", selector)
	}
	return targets, notJudged, nil
}

// NodeOS is the node's operating system as its kubelet reports it, else
// its kubernetes.io/os label, else "linux" (a node object without either
// was not made by a kubelet of a known kind).
func NodeOS(n corev1.Node) string {
	if os := n.Status.NodeInfo.OperatingSystem; os != "" {
		return os
	}
	if os := n.Labels[corev1.LabelOSStable]; os != "" {
		return os
	}
	return "linux"
}

// NodeNames are the names of the judged nodes, sorted.
func (e *Env) NodeNames() []string {
	var out []string
	for _, t := range e.Targets {
		out = append(out, t.Name)
	}
	return out
}

// Group is the profile group of a judged node (nil without a profile).
func (e *Env) Group(node string) *profile.Group {
	if e.Profile == nil {
		return nil
	}
	for _, t := range e.Targets {
		if t.Name != node {
			continue
		}
		for i := range e.Profile.Spec.Groups {
			if e.Profile.Spec.Groups[i].Name == t.Group {
				return &e.Profile.Spec.Groups[i]
			}
		}
	}
	return nil
}

// Unreachable maps judged nodes that cannot be examined through the probe
// to why.
func (e *Env) Unreachable() map[string]string {
	out := map[string]string{}
	if e.Nodes == nil {
		return out
	}
	for _, t := range e.Targets {
		if why, ok := e.Nodes.Problems[t.Name]; ok {
			out[t.Name] = why
		} else if _, ok := e.Nodes.PodOn(t.Name); !ok {
			out[t.Name] = "no probe pod on the node"
		}
	}
	return out
}

// Judge checks property on every judged node (within
// nodes.maxParallel, or parallel when positive) and fails the spec with
// one line per failing node.
func (e *Env) Judge(ctx context.Context, property string, parallel int, check verdict.Check) []verdict.Result {
	ginkgo.GinkgoHelper()
	if parallel <= 0 {
		parallel = e.Config.Nodes.MaxParallel
	}
	res := verdict.Each(ctx, verdict.Input{Nodes: e.NodeNames(), Unreachable: e.Unreachable(), Parallel: parallel}, check)
	verdict.Expect(property, res)
	return res
}

// ExpectProfile is every suite's second question: is each node's
// configuration, in the fields the suite owns, what the profile declares
// for its group? It records the state read on every node (the "state"
// evidence `diff` compares); without a profile the spec is skipped after
// recording, saying that expectations were derived from the nodes.
func (e *Env) ExpectProfile(ctx context.Context, suite string) {
	ginkgo.GinkgoHelper()
	fields := profile.Fields[suite]
	gomega.Expect(fields).NotTo(gomega.BeEmpty(), "suite %s owns no profile field", suite)
	states := map[string]profile.State{}
	var mu sync.Mutex
	res := verdict.Each(ctx, verdict.Input{Nodes: e.NodeNames(), Unreachable: e.Unreachable(), Parallel: e.Config.Nodes.MaxParallel},
		func(ctx context.Context, g gomega.Gomega, node string) any {
			n, err := e.Clientset.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			g.Expect(err).NotTo(gomega.HaveOccurred())
			st, err := nodestate.Read(ctx, nodestate.Input{Clientset: e.Clientset, Probes: e.Nodes, Node: n}, fields)
			mu.Lock()
			states[node] = st
			mu.Unlock()
			if err != nil {
				verdict.FailNode(fmt.Sprintf("cannot read %v: %v", fields, err))
			}
			if e.Profile == nil {
				return st
			}
			grp := e.Group(node)
			if grp == nil {
				verdict.SkipNode("in no profile group")
			}
			declared := grp.Node.State()
			judged, groundTruth := false, false
			for _, f := range fields {
				v, ok := declared[f]
				switch {
				case ok && f == profile.FieldKataLabel && v == profile.KataGroundTruth:
					groundTruth = true
				case ok:
					judged = true
				}
			}
			switch {
			case !judged && groundTruth:
				verdict.SkipNode(fmt.Sprintf("profile group %s declares %s: %s (judged by the spec on the eligible nodes)", grp.Name, profile.FieldKataLabel, profile.KataGroundTruth))
			case !judged:
				verdict.SkipNode(fmt.Sprintf("profile group %s declares none of %v", grp.Name, fields))
			}
			var lines []string
			for _, d := range profile.Compare(node, grp, st, fields) {
				lines = append(lines, d.Sentence())
			}
			if len(lines) > 0 {
				verdict.FailNodeWith(joinSentences(lines), st)
			}
			return st
		})
	evidence.Record("state", states)
	if e.Profile == nil {
		evidence.Record("nodes", res)
		ginkgo.Skip(fmt.Sprintf("no --profile: %s's expected values are derived from each node's own configuration, which proves only that the kernel obeys it; pass --profile to judge it against the cluster's intent", suite))
	}
	verdict.Expect("node configuration ("+suite+" fields) equals profile "+e.Profile.Metadata.Name, res)
}

func joinSentences(lines []string) string { return strings.Join(lines, "; ") }

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// Journal records node changes on the nodes, retrying while a node's
// kubelet restarts (timeouts.nodeRestart).
func (e *Env) Journal() *nodechange.Journal {
	t := e.Config.Timeouts.NodeRestart.Duration
	return &nodechange.Journal{Probes: e.Nodes, RestartTimeout: t, Retry: t}
}
