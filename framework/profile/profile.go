// Package profile is a cluster's declared node-level intent: node groups
// chosen by label selector, each stating what its nodes must be
// (encapsulation, the kubelet's unsafe-sysctl allowlist, cgroup version,
// driver and root, swap, pids limit, CFS quota, huge pages, the NFD kata
// label), plus the RuntimeClasses the cluster must have. The suites judge
// the state they find against it: drift is a failure naming node, field,
// wanted and found. Modelled on OpenShift's PerformanceProfile (groups by
// nodeSelector) and kube-bench's declarative checks; the code is ours.
package profile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// APIVersion and Kind every profile file carries.
const (
	APIVersion = "nodeconform.io/v1alpha1"
	Kind       = "NodeProfile"
)

// Profile is one cluster's intent.
type Profile struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Metadata   Metadata `json:"metadata"`
	Spec       Spec     `json:"spec"`
}

// Metadata names the profile (reports carry the name).
type Metadata struct {
	Name string `json:"name"`
}

// Spec is the profile's content.
type Spec struct {
	// Defaults apply to every group; a group's own value wins.
	Defaults NodeIntent `json:"defaults,omitempty"`
	// Groups of nodes, each chosen by its nodeSelector. A node may belong
	// to one group only; nodes in no group are not judged against the
	// profile (the report lists them).
	Groups []Group `json:"groups"`
	// RuntimeClasses the cluster must have, as declared.
	RuntimeClasses []RuntimeClass `json:"runtimeClasses,omitempty"`
	// Settings override nodeconform's configuration (timeouts,
	// thresholds; the keys of framework/config/defaults.yaml) for this
	// cluster, key by key, like --config.
	Settings map[string]any `json:"settings,omitempty"`
}

// Group is a set of nodes meant to be alike.
type Group struct {
	Name         string               `json:"name"`
	NodeSelector metav1.LabelSelector `json:"nodeSelector"`
	// Node is what every node of the group must be. A field left out is
	// not judged.
	Node NodeIntent `json:"node"`
}

// NodeIntent is what a node must be; nil fields are not judged.
type NodeIntent struct {
	// Encapsulation of kubelet and the runtime in their own mount
	// namespace (kubens.service): "on" or "off".
	Encapsulation *string `json:"encapsulation,omitempty"`
	// AllowedUnsafeSysctls is the kubelet's allowlist, as an exact set
	// (order does not matter; [] allows nothing).
	AllowedUnsafeSysctls *[]string `json:"allowedUnsafeSysctls,omitempty"`
	// CgroupVersion of the node: "v1" or "v2".
	CgroupVersion *string `json:"cgroupVersion,omitempty"`
	// CgroupDriver of the kubelet: "systemd" or "cgroupfs".
	CgroupDriver *string `json:"cgroupDriver,omitempty"`
	// CgroupRoot is the kubelet's cgroupRoot ("/" when unset).
	CgroupRoot *string `json:"cgroupRoot,omitempty"`
	// CgroupsPerQOS is the kubelet's cgroupsPerQOS.
	CgroupsPerQOS *bool `json:"cgroupsPerQOS,omitempty"`
	// SwapOn: whether the node has active swap (/proc/swaps).
	SwapOn *bool `json:"swapOn,omitempty"`
	// SwapBehavior is the kubelet's memorySwap.swapBehavior ("NoSwap"
	// when unset, as the kubelet reads it).
	SwapBehavior *string `json:"swapBehavior,omitempty"`
	// FailSwapOn is the kubelet's failSwapOn.
	FailSwapOn *bool `json:"failSwapOn,omitempty"`
	// PodPidsLimit is the kubelet's podPidsLimit (-1: unlimited).
	PodPidsLimit *int64 `json:"podPidsLimit,omitempty"`
	// CPUCFSQuota is the kubelet's cpuCFSQuota.
	CPUCFSQuota *bool `json:"cpuCFSQuota,omitempty"`
	// SingleProcessOOMKill is the kubelet's OOM kill mode as it runs: true
	// kills one process, false the whole container (cgroup v2's
	// memory.oom.group). Unset, the kubelet takes false on v2; on v1 it is
	// always true.
	SingleProcessOOMKill *bool `json:"singleProcessOOMKill,omitempty"`
	// HugePages2Mi is the node's hugepages-2Mi capacity ("0": none).
	HugePages2Mi *resource.Quantity `json:"hugePages2Mi,omitempty"`
	// KataLabel is the NFD label feature.node.kubernetes.io/runtime.kata:
	// "present", "absent", or "groundTruth" (exactly where the node's cpu
	// flags and modules make it eligible; judged by the nfd suite).
	KataLabel *string `json:"kataLabel,omitempty"`
	// KubeletVersion is the node's kubelet version
	// (status.nodeInfo.kubeletVersion), whole ("v1.37.2") or as a prefix
	// of dot-separated parts ("v1.37" matches v1.37.2 and v1.37.0-gke.1,
	// not v1.370): an upgrade that left a node behind fails it.
	KubeletVersion *string `json:"kubeletVersion,omitempty"`
	// ContainerRuntimeVersion is status.nodeInfo.containerRuntimeVersion,
	// matched as KubeletVersion is ("containerd://2" matches
	// containerd://2.3.4).
	ContainerRuntimeVersion *string `json:"containerRuntimeVersion,omitempty"`
}

// RuntimeClass is a RuntimeClass the cluster must have.
type RuntimeClass struct {
	Name    string `json:"name"`
	Handler string `json:"handler"`
	// Overhead is overhead.podFixed; absent or empty means none.
	Overhead map[string]resource.Quantity `json:"overhead,omitempty"`
	// NodeSelector is scheduling.nodeSelector.
	NodeSelector map[string]string `json:"nodeSelector,omitempty"`
	// Isolated: pods of this class must not share the node's kernel
	// (true fails a runc-backed class instead of reporting it).
	Isolated *bool `json:"isolated,omitempty"`
	// Required: a run fails where the RuntimeClass is missing or no node
	// offers its handler, instead of skipping the class's specs.
	Required *bool `json:"required,omitempty"`
}

// Field names, as they appear in profiles, states and drift messages.
const (
	FieldEncapsulation        = "encapsulation"
	FieldAllowedUnsafeSysctls = "allowedUnsafeSysctls"
	FieldCgroupVersion        = "cgroupVersion"
	FieldCgroupDriver         = "cgroupDriver"
	FieldCgroupRoot           = "cgroupRoot"
	FieldCgroupsPerQOS        = "cgroupsPerQOS"
	FieldSwapOn               = "swapOn"
	FieldSwapBehavior         = "swapBehavior"
	FieldFailSwapOn           = "failSwapOn"
	FieldPodPidsLimit         = "podPidsLimit"
	FieldCPUCFSQuota          = "cpuCFSQuota"
	FieldSingleProcessOOMKill = "singleProcessOOMKill"
	FieldHugePages2Mi         = "hugePages2Mi"
	FieldKataLabel            = "kataLabel"
	FieldKubeletVersion       = "kubeletVersion"
	FieldRuntimeVersion       = "containerRuntimeVersion"
)

// Fields of each suite: the suite that owns a field judges it.
var Fields = map[string][]string{
	"sysctl":        {FieldAllowedUnsafeSysctls},
	"cgroups":       {FieldCgroupVersion, FieldCgroupDriver, FieldCgroupRoot, FieldCgroupsPerQOS, FieldSwapOn, FieldSwapBehavior, FieldFailSwapOn, FieldPodPidsLimit, FieldCPUCFSQuota, FieldSingleProcessOOMKill, FieldHugePages2Mi},
	"encapsulation": {FieldEncapsulation},
	"nfd":           {FieldKataLabel},
	"cluster":       {FieldKubeletVersion, FieldRuntimeVersion},
}

// AllFields in a stable order.
func AllFields() []string {
	var out []string
	for _, s := range []string{"cluster", "encapsulation", "sysctl", "cgroups", "nfd"} {
		out = append(out, Fields[s]...)
	}
	return out
}

// KataGroundTruth is the kataLabel value judged against each node's
// eligibility rather than a fixed answer.
const KataGroundTruth = "groundTruth"

// State is a node's configuration as canonical strings per field: what a
// profile declares and what a node shows compare as equal strings.
type State map[string]string

// State renders the intent's set fields canonically.
func (n NodeIntent) State() State {
	s := State{}
	str := func(f string, p *string) {
		if p != nil {
			s[f] = *p
		}
	}
	boolean := func(f string, p *bool) {
		if p != nil {
			s[f] = strconv.FormatBool(*p)
		}
	}
	str(FieldEncapsulation, n.Encapsulation)
	if n.AllowedUnsafeSysctls != nil {
		s[FieldAllowedUnsafeSysctls] = CanonicalList(*n.AllowedUnsafeSysctls)
	}
	str(FieldCgroupVersion, n.CgroupVersion)
	str(FieldCgroupDriver, n.CgroupDriver)
	if n.CgroupRoot != nil {
		s[FieldCgroupRoot] = CanonicalCgroupRoot(*n.CgroupRoot)
	}
	boolean(FieldCgroupsPerQOS, n.CgroupsPerQOS)
	boolean(FieldSwapOn, n.SwapOn)
	if n.SwapBehavior != nil {
		s[FieldSwapBehavior] = CanonicalSwapBehavior(*n.SwapBehavior)
	}
	boolean(FieldFailSwapOn, n.FailSwapOn)
	if n.PodPidsLimit != nil {
		s[FieldPodPidsLimit] = strconv.FormatInt(*n.PodPidsLimit, 10)
	}
	boolean(FieldCPUCFSQuota, n.CPUCFSQuota)
	boolean(FieldSingleProcessOOMKill, n.SingleProcessOOMKill)
	if n.HugePages2Mi != nil {
		s[FieldHugePages2Mi] = CanonicalQuantity(*n.HugePages2Mi)
	}
	str(FieldKataLabel, n.KataLabel)
	str(FieldKubeletVersion, n.KubeletVersion)
	str(FieldRuntimeVersion, n.ContainerRuntimeVersion)
	return s
}

// IntentFromState is the inverse of NodeIntent.State, for capture.
func IntentFromState(s State) (NodeIntent, error) {
	var n NodeIntent
	var errs []error
	str := func(f string) *string {
		if v, ok := s[f]; ok {
			return &v
		}
		return nil
	}
	boolean := func(f string) *bool {
		v, ok := s[f]
		if !ok {
			return nil
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a boolean", f, v))
			return nil
		}
		return &b
	}
	n.Encapsulation = str(FieldEncapsulation)
	if v, ok := s[FieldAllowedUnsafeSysctls]; ok {
		list := SplitList(v)
		n.AllowedUnsafeSysctls = &list
	}
	n.CgroupVersion, n.CgroupDriver, n.CgroupRoot = str(FieldCgroupVersion), str(FieldCgroupDriver), str(FieldCgroupRoot)
	n.CgroupsPerQOS, n.SwapOn, n.FailSwapOn, n.CPUCFSQuota = boolean(FieldCgroupsPerQOS), boolean(FieldSwapOn), boolean(FieldFailSwapOn), boolean(FieldCPUCFSQuota)
	n.SingleProcessOOMKill = boolean(FieldSingleProcessOOMKill)
	n.SwapBehavior = str(FieldSwapBehavior)
	if v, ok := s[FieldPodPidsLimit]; ok {
		i, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not an integer", FieldPodPidsLimit, v))
		} else {
			n.PodPidsLimit = &i
		}
	}
	if v, ok := s[FieldHugePages2Mi]; ok {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", FieldHugePages2Mi, err))
		} else {
			n.HugePages2Mi = &q
		}
	}
	n.KataLabel = str(FieldKataLabel)
	n.KubeletVersion, n.ContainerRuntimeVersion = str(FieldKubeletVersion), str(FieldRuntimeVersion)
	return n, errors.Join(errs...)
}

// CanonicalList sorts and de-duplicates a list and joins it with commas
// ("" for none).
func CanonicalList(l []string) string {
	seen := map[string]bool{}
	var out []string
	for _, x := range l {
		x = strings.TrimSpace(x)
		if x != "" && !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// SplitList is the inverse of CanonicalList.
func SplitList(s string) []string {
	out := []string{}
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// CanonicalCgroupRoot writes the kubelet's default ("") as "/".
func CanonicalCgroupRoot(r string) string {
	if r == "" {
		return "/"
	}
	return r
}

// CanonicalSwapBehavior writes the kubelet's default ("") as NoSwap.
func CanonicalSwapBehavior(b string) string {
	if b == "" {
		return "NoSwap"
	}
	return b
}

// CanonicalQuantity writes a quantity so that equal amounts compare equal
// ("2Gi" and "2048Mi" alike).
func CanonicalQuantity(q resource.Quantity) string {
	return strconv.FormatInt(q.Value(), 10)
}

// Parse decodes a profile strictly (unknown fields are errors) and
// validates it without a cluster.
func Parse(data []byte) (*Profile, error) {
	var p Profile
	if err := yaml.UnmarshalStrict(data, &p); err != nil {
		return nil, err
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	// Judging reads each group's own intent: fold the defaults in once.
	def := p.Spec.Defaults.State()
	for i := range p.Spec.Groups {
		g := &p.Spec.Groups[i]
		merged := State{}
		for k, v := range def {
			merged[k] = v
		}
		for k, v := range g.Node.State() {
			merged[k] = v
		}
		n, err := IntentFromState(merged)
		if err != nil {
			return nil, fmt.Errorf("spec.groups[%d] (%s): %w", i, g.Name, err)
		}
		g.Node = n
	}
	p.Spec.Defaults = NodeIntent{}
	return &p, nil
}

// Load reads and parses a profile file; errors name the file.
func Load(path string) (*Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("profile: %w", err)
	}
	p, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("profile %s: %w", path, err)
	}
	return p, nil
}

// Validate checks what can be checked without a cluster.
func (p *Profile) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if p.APIVersion != APIVersion {
		bad("apiVersion must be %s, got %q", APIVersion, p.APIVersion)
	}
	if p.Kind != Kind {
		bad("kind must be %s, got %q", Kind, p.Kind)
	}
	if len(p.Spec.Groups) == 0 {
		bad("spec.groups: at least one group is needed")
	}
	errs = append(errs, validateIntent("spec.defaults", p.Spec.Defaults)...)
	names := map[string]bool{}
	for i, g := range p.Spec.Groups {
		at := fmt.Sprintf("spec.groups[%d]", i)
		if g.Name == "" {
			bad("%s.name is empty", at)
		} else if names[g.Name] {
			bad("%s.name %q is used twice", at, g.Name)
		}
		names[g.Name] = true
		if len(g.NodeSelector.MatchLabels) == 0 && len(g.NodeSelector.MatchExpressions) == 0 {
			bad("%s (%s).nodeSelector is empty: name the nodes' labels (a group for every node selects on kubernetes.io/os: linux)", at, g.Name)
		} else if _, err := metav1.LabelSelectorAsSelector(&g.NodeSelector); err != nil {
			bad("%s (%s).nodeSelector: %v", at, g.Name, err)
		}
		errs = append(errs, validateIntent(at+".node", g.Node)...)
	}
	rcs := map[string]bool{}
	for i, rc := range p.Spec.RuntimeClasses {
		at := fmt.Sprintf("spec.runtimeClasses[%d]", i)
		if rc.Name == "" || rc.Handler == "" {
			bad("%s: name and handler are required", at)
		}
		if rcs[rc.Name] {
			bad("%s: RuntimeClass %q declared twice", at, rc.Name)
		}
		rcs[rc.Name] = true
	}
	return errors.Join(errs...)
}

func validateIntent(at string, n NodeIntent) []error {
	var errs []error
	oneOf := func(f string, p *string, allowed ...string) {
		if p != nil && !contains(allowed, *p) {
			errs = append(errs, fmt.Errorf("%s.%s must be one of %s, got %q", at, f, strings.Join(allowed, ", "), *p))
		}
	}
	oneOf(FieldEncapsulation, n.Encapsulation, "on", "off")
	oneOf(FieldCgroupVersion, n.CgroupVersion, "v1", "v2")
	oneOf(FieldCgroupDriver, n.CgroupDriver, "systemd", "cgroupfs")
	oneOf(FieldSwapBehavior, n.SwapBehavior, "NoSwap", "LimitedSwap")
	oneOf(FieldKataLabel, n.KataLabel, "present", "absent", KataGroundTruth)
	if n.AllowedUnsafeSysctls != nil {
		for _, e := range *n.AllowedUnsafeSysctls {
			if !WithinNamespacedGroups(e) {
				errs = append(errs, fmt.Errorf("%s.%s: %q is outside the namespaced groups %s; a kubelet with it refuses to start", at, FieldAllowedUnsafeSysctls, e, strings.Join(UnsafeNamespacedGroups, ", ")))
			}
		}
	}
	if n.CgroupRoot != nil && !strings.HasPrefix(*n.CgroupRoot, "/") {
		errs = append(errs, fmt.Errorf("%s.%s must be an absolute cgroup path, got %q", at, FieldCgroupRoot, *n.CgroupRoot))
	}
	return errs
}

// UnsafeNamespacedGroups are the only unsafe sysctls a kubelet accepts in
// its allowlist (anything else is not namespaced).
var UnsafeNamespacedGroups = []string{"kernel.shm*", "kernel.msg*", "kernel.sem", "fs.mqueue.*", "net.*"}

// WithinNamespacedGroups reports whether an allowlist entry (a name or a
// prefix with a trailing *) stays inside the namespaced groups.
func WithinNamespacedGroups(entry string) bool {
	for _, g := range UnsafeNamespacedGroups {
		gp, isPrefix := strings.CutSuffix(g, "*")
		if !isPrefix {
			if entry == g {
				return true
			}
			continue
		}
		if strings.HasPrefix(strings.TrimSuffix(entry, "*"), gp) {
			return true
		}
	}
	return false
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// Encode writes a profile as YAML.
func Encode(p *Profile) ([]byte, error) {
	data, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	out, err := yaml.JSONToYAML(data)
	if err != nil {
		return nil, err
	}
	return bytes.TrimSpace(out), nil
}

// NodeLabels is what Resolve needs of a node.
type NodeLabels struct {
	Name   string
	Labels map[string]string
}

// Membership maps node name to its group; Unprofiled lists nodes in no
// group.
type Membership struct {
	Group      map[string]*Group
	Unprofiled []string
}

// Resolve assigns nodes to groups. A group whose selector matches no node
// and a node claimed by two groups are errors naming them.
func (p *Profile) Resolve(nodes []NodeLabels) (Membership, error) {
	m := Membership{Group: map[string]*Group{}}
	var errs []error
	for i := range p.Spec.Groups {
		g := &p.Spec.Groups[i]
		sel, err := metav1.LabelSelectorAsSelector(&g.NodeSelector)
		if err != nil {
			errs = append(errs, fmt.Errorf("group %s: %w", g.Name, err))
			continue
		}
		matched := 0
		for _, n := range nodes {
			if !sel.Matches(labels.Set(n.Labels)) {
				continue
			}
			matched++
			if other, ok := m.Group[n.Name]; ok {
				errs = append(errs, fmt.Errorf("node %s is claimed by groups %s and %s: a node belongs to one group", n.Name, other.Name, g.Name))
				continue
			}
			m.Group[n.Name] = g
		}
		if matched == 0 {
			errs = append(errs, fmt.Errorf("group %s: nodeSelector %s matches no node of the cluster", g.Name, sel))
		}
	}
	for _, n := range nodes {
		if _, ok := m.Group[n.Name]; !ok {
			m.Unprofiled = append(m.Unprofiled, n.Name)
		}
	}
	sort.Strings(m.Unprofiled)
	return m, errors.Join(errs...)
}

// Drift is one field of one node that differs from the profile.
type Drift struct {
	Node  string `json:"node"`
	Group string `json:"group"`
	Field string `json:"field"`
	Want  string `json:"wanted"`
	Found string `json:"found"`
}

// String is the sentence a person reads.
func (d Drift) String() string {
	return "node " + d.Node + ": " + d.Sentence()
}

// Sentence is String without the node, for per-node reports.
func (d Drift) Sentence() string {
	return fmt.Sprintf("%s: wanted %s, found %s (profile group %s)", d.Field, show(d.Want), show(d.Found), d.Group)
}

func show(v string) string {
	if v == "" {
		return `""`
	}
	return v
}

// Compare returns the drift of a node's observed state from its group's
// intent, limited to fields (nil: every field). A field the intent sets
// but the observation lacks is drift with found "(not observed)"; the
// kata label's ground-truth form is left to the nfd suite.
func Compare(node string, g *Group, observed State, fields []string) []Drift {
	want := g.Node.State()
	if fields == nil {
		fields = AllFields()
	}
	var out []Drift
	for _, f := range fields {
		w, ok := want[f]
		if !ok || (f == FieldKataLabel && w == KataGroundTruth) {
			continue
		}
		got, seen := observed[f]
		if !seen {
			got = "(not observed)"
		}
		if got != w && !(versionField[f] && VersionMatches(w, got)) {
			out = append(out, Drift{Node: node, Group: g.Name, Field: f, Want: w, Found: got})
		}
	}
	return out
}

// versionField are the fields whose declared value may be a version's
// leading parts.
var versionField = map[string]bool{FieldKubeletVersion: true, FieldRuntimeVersion: true}

// VersionMatches reports whether version is want or begins with want
// followed by ".", "-" or "+": "v1.37" matches "v1.37.2" and
// "v1.37.0-gke.1", not "v1.370.0".
func VersionMatches(want, version string) bool {
	if version == want {
		return true
	}
	rest, ok := strings.CutPrefix(version, want)
	return ok && want != "" && rest != "" && strings.ContainsRune(".-+", rune(rest[0]))
}
