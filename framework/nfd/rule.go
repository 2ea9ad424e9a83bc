package nfd

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"
)

// FeatureLabelNs is the label namespace nfd-master gives label names that
// have none ("foo" becomes "feature.node.kubernetes.io/foo"); names with a
// namespace, like the seed's "feature.node.kubernetes.io/runtime.kata", are
// published as written.
const FeatureLabelNs = "feature.node.kubernetes.io"

// Feature names of NFD v0.17 that the kata rule reads.
const (
	// FeatureCPUID is cpu.cpuid: the CPUID instruction's feature flags as
	// github.com/klauspost/cpuid names them (SSE4, SSE42, VMX, SVM, ...).
	FeatureCPUID = "cpu.cpuid"
	// FeatureLoadedModule is kernel.loadedmodule: the first column of
	// /proc/modules read inside the nfd-worker container. When that file
	// cannot be read the feature is absent, and every rule term on it is
	// false (NFD logs "failed to get loaded kernel modules").
	FeatureLoadedModule = "kernel.loadedmodule"
)

// Term is one alternative of a rule: it holds when every CPUID flag and
// every loaded module it names is present.
type Term struct {
	CPUID   []string `json:"cpuid,omitempty"`
	Modules []string `json:"modules,omitempty"`
}

// Rule is the internal form of a labelling rule restricted to presence
// tests on cpu.cpuid and kernel.loadedmodule: Labels are set on a node when
// any of Terms holds. A rule without terms always holds, as in NFD.
type Rule struct {
	// Labels are full label names (namespace included) and values.
	Labels map[string]string `json:"labels"`
	Terms  []Term            `json:"terms"`
}

// Canonical returns the rule with flags, modules and terms sorted and
// duplicates removed, so equal rules compare equal.
func (r Rule) Canonical() Rule {
	out := Rule{Labels: maps.Clone(r.Labels)}
	for _, t := range r.Terms {
		out.Terms = append(out.Terms, Term{CPUID: sortedSet(t.CPUID), Modules: sortedSet(t.Modules)})
	}
	slices.SortFunc(out.Terms, func(a, b Term) int { return strings.Compare(a.key(), b.key()) })
	out.Terms = slices.CompactFunc(out.Terms, func(a, b Term) bool { return a.key() == b.key() })
	return out
}

func (t Term) key() string {
	return strings.Join(t.CPUID, ",") + "|" + strings.Join(t.Modules, ",")
}

func (t Term) String() string {
	parts := []string{}
	for _, f := range t.CPUID {
		parts = append(parts, "cpuid "+f)
	}
	for _, m := range t.Modules {
		parts = append(parts, "module "+m)
	}
	return strings.Join(parts, " + ")
}

func sortedSet(in []string) []string {
	out := slices.Clone(in)
	slices.Sort(out)
	return slices.Compact(out)
}

// Facts is the ground truth of one node that the kata rule depends on.
type Facts struct {
	// CPUID are the CPU's feature flags by NFD's names (see
	// CPUIDFromCPUInfo for /proc/cpuinfo flags).
	CPUID []string
	// Modules are the loaded kernel modules; meaningful only when
	// ModulesKnown.
	Modules []string
	// ModulesKnown is false when the loaded modules could not be read
	// (no /proc/modules, as on kernels without loadable modules). NFD then
	// has no kernel.loadedmodule feature.
	ModulesKnown bool
}

// Eval reports whether NFD would set the rule's labels on a node with
// these facts, and why, term by term.
func (r Rule) Eval(f Facts) (bool, string) {
	if len(r.Terms) == 0 {
		return true, "rule has no terms"
	}
	cpu := setOf(f.CPUID)
	mods := setOf(f.Modules)
	var why []string
	for _, t := range r.Terms {
		var missing []string
		for _, c := range t.CPUID {
			if !cpu[c] {
				missing = append(missing, "cpuid "+c)
			}
		}
		if len(t.Modules) > 0 && !f.ModulesKnown {
			missing = append(missing, FeatureLoadedModule+" unavailable (loaded modules unknown)")
		} else {
			for _, m := range t.Modules {
				if !mods[m] {
					missing = append(missing, "module "+m)
				}
			}
		}
		if len(missing) == 0 {
			return true, fmt.Sprintf("[%s] holds", t)
		}
		why = append(why, fmt.Sprintf("[%s] lacks %s", t, strings.Join(missing, ", ")))
	}
	return false, strings.Join(why, "; ")
}

func setOf(in []string) map[string]bool {
	m := make(map[string]bool, len(in))
	for _, s := range in {
		m[s] = true
	}
	return m
}

// nodeFeatureRule is the part of nfd.k8s-sigs.io/v1alpha1 NodeFeatureRule
// that Rule can express; other fields are rejected by strict decoding.
type nodeFeatureRule struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Rules []struct {
			Name          string            `json:"name"`
			Labels        map[string]string `json:"labels"`
			MatchFeatures []featureTerm     `json:"matchFeatures"`
			MatchAny      []struct {
				MatchFeatures []featureTerm `json:"matchFeatures"`
			} `json:"matchAny"`
		} `json:"rules"`
	} `json:"spec"`
}

type featureTerm struct {
	Feature          string `json:"feature"`
	MatchExpressions map[string]struct {
		Op    string   `json:"op"`
		Value []string `json:"value,omitempty"`
	} `json:"matchExpressions"`
}

// ParseNodeFeatureRule turns a NodeFeatureRule manifest into rules, one per
// spec.rules entry. It accepts only what Rule expresses: Exists tests on
// cpu.cpuid and kernel.loadedmodule under matchFeatures and matchAny, and
// static labels. Label names get NFD's default namespace when they have none.
func ParseNodeFeatureRule(data []byte) ([]Rule, error) {
	var obj nodeFeatureRule
	if err := yaml.UnmarshalStrict(data, &obj); err != nil {
		return nil, fmt.Errorf("NodeFeatureRule: %w", err)
	}
	if obj.APIVersion != "nfd.k8s-sigs.io/v1alpha1" || obj.Kind != "NodeFeatureRule" {
		return nil, fmt.Errorf("not an nfd.k8s-sigs.io/v1alpha1 NodeFeatureRule: %s %s", obj.APIVersion, obj.Kind)
	}
	var out []Rule
	for _, r := range obj.Spec.Rules {
		if len(r.Labels) == 0 {
			return nil, fmt.Errorf("NodeFeatureRule %s rule %q: no labels", obj.Metadata.Name, r.Name)
		}
		rule := Rule{Labels: map[string]string{}}
		for k, v := range r.Labels {
			rule.Labels[withDefaultNs(k)] = v
		}
		all, err := termOf(r.MatchFeatures)
		if err != nil {
			return nil, fmt.Errorf("NodeFeatureRule %s rule %q: %w", obj.Metadata.Name, r.Name, err)
		}
		if len(r.MatchAny) == 0 {
			if len(r.MatchFeatures) > 0 {
				rule.Terms = []Term{all}
			}
		}
		// matchFeatures is ANDed with each matchAny alternative.
		for _, alt := range r.MatchAny {
			t, err := termOf(alt.MatchFeatures)
			if err != nil {
				return nil, fmt.Errorf("NodeFeatureRule %s rule %q: %w", obj.Metadata.Name, r.Name, err)
			}
			rule.Terms = append(rule.Terms, Term{
				CPUID:   append(slices.Clone(all.CPUID), t.CPUID...),
				Modules: append(slices.Clone(all.Modules), t.Modules...),
			})
		}
		out = append(out, rule.Canonical())
	}
	return out, nil
}

func termOf(matchers []featureTerm) (Term, error) {
	var t Term
	for _, m := range matchers {
		for name, e := range m.MatchExpressions {
			if e.Op != "Exists" || len(e.Value) > 0 {
				return Term{}, fmt.Errorf("%s %s: only {op: Exists} is supported, got %s %v", m.Feature, name, e.Op, e.Value)
			}
			switch strings.ToLower(m.Feature) {
			case FeatureCPUID:
				t.CPUID = append(t.CPUID, name)
			case FeatureLoadedModule:
				t.Modules = append(t.Modules, name)
			default:
				return Term{}, fmt.Errorf("feature %s is not supported (only %s and %s)", m.Feature, FeatureCPUID, FeatureLoadedModule)
			}
		}
	}
	return t, nil
}

func withDefaultNs(name string) string {
	if strings.Contains(name, "/") {
		return name
	}
	return FeatureLabelNs + "/" + name
}

// nodeFeatureDiscovery is the part of the OpenShift NFD operator's
// nfd.openshift.io/v1 NodeFeatureDiscovery that carries worker rules.
type nodeFeatureDiscovery struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		WorkerConfig struct {
			ConfigData string `json:"configData"`
		} `json:"workerConfig"`
	} `json:"spec"`
}

// legacyWorkerConfig is nfd-worker's configuration with the custom source
// in the legacy rule format (NFD before v0.15).
type legacyWorkerConfig struct {
	Sources struct {
		Custom []struct {
			Name    string  `json:"name"`
			Value   *string `json:"value,omitempty"`
			MatchOn []struct {
				CPUID      []string `json:"cpuId"`
				LoadedKMod []string `json:"loadedKMod"`
			} `json:"matchOn"`
		} `json:"custom"`
	} `json:"sources"`
}

// ParseLegacyNodeFeatureDiscovery turns the custom rules in the legacy
// matchOn format, found in a NodeFeatureDiscovery CR's
// spec.workerConfig.configData, into rules. Legacy semantics (NFD v0.10 to
// v0.14): matchOn entries are ORed, the matchers within one entry ANDed,
// list items are presence tests; the value is "true" unless given; a name
// without a namespace becomes "custom-<name>" in NFD's label namespace.
// Other legacy matchers (pciId, usbId, kConfig, nodename) are rejected.
func ParseLegacyNodeFeatureDiscovery(data []byte) ([]Rule, error) {
	var cr nodeFeatureDiscovery
	if err := yaml.Unmarshal(data, &cr); err != nil {
		return nil, fmt.Errorf("NodeFeatureDiscovery: %w", err)
	}
	if cr.APIVersion != "nfd.openshift.io/v1" || cr.Kind != "NodeFeatureDiscovery" {
		return nil, fmt.Errorf("not an nfd.openshift.io/v1 NodeFeatureDiscovery: %s %s", cr.APIVersion, cr.Kind)
	}
	return ParseLegacyWorkerConfig([]byte(cr.Spec.WorkerConfig.ConfigData))
}

// ParseLegacyWorkerConfig is ParseLegacyNodeFeatureDiscovery for the
// nfd-worker configuration itself.
func ParseLegacyWorkerConfig(data []byte) ([]Rule, error) {
	var conf legacyWorkerConfig
	if err := yaml.UnmarshalStrict(data, &conf); err != nil {
		return nil, fmt.Errorf("legacy nfd-worker config: %w", err)
	}
	var out []Rule
	for _, c := range conf.Sources.Custom {
		name := c.Name
		if !strings.Contains(name, "/") {
			name = FeatureLabelNs + "/custom-" + name
		}
		value := "true"
		if c.Value != nil {
			value = *c.Value
		}
		rule := Rule{Labels: map[string]string{name: value}}
		for _, m := range c.MatchOn {
			var t Term
			for _, f := range m.CPUID {
				if strings.Contains(f, "=") {
					return nil, fmt.Errorf("custom rule %q: cpuId %q: CPUID flags have no values", c.Name, f)
				}
				t.CPUID = append(t.CPUID, f)
			}
			for _, k := range m.LoadedKMod {
				if strings.Contains(k, "=") {
					return nil, fmt.Errorf("custom rule %q: loadedKMod %q: modules have no values", c.Name, k)
				}
				t.Modules = append(t.Modules, k)
			}
			rule.Terms = append(rule.Terms, t)
		}
		out = append(out, rule.Canonical())
	}
	return out, nil
}

// Fixture names in fixtures/nfd.
const (
	// KataRuleFixture is the seed's kata rule as a NodeFeatureRule.
	KataRuleFixture = "nodefeaturerule-kata.yaml"
	// ControlRuleFixture is the positive control (cpuid SSE4 alone).
	ControlRuleFixture = "nodefeaturerule-control.yaml"
	// LegacyKataFixture is the seed's NodeFeatureDiscovery CR, verbatim.
	LegacyKataFixture = "nodefeaturediscovery-kata-legacy.yaml"
)

// KataLabel is the label the seed's rule sets on eligible nodes.
const KataLabel = FeatureLabelNs + "/runtime.kata"

// ControlLabel is the label of the positive control rule.
const ControlLabel = FeatureLabelNs + "/nodeconform-control"

// KataRule returns the kata rule of the embedded NodeFeatureRule fixture.
func KataRule() (Rule, error) {
	rules, err := ParseNodeFeatureRule(fixture(KataRuleFixture))
	if err != nil {
		return Rule{}, err
	}
	if len(rules) != 1 || rules[0].Labels[KataLabel] != "true" {
		return Rule{}, fmt.Errorf("fixture %s: want one rule setting %s=true, got %+v", KataRuleFixture, KataLabel, rules)
	}
	return rules[0], nil
}

// cpuinfoToCPUID maps /proc/cpuinfo flag names to NFD's where they differ
// by more than case and underscores.
var cpuinfoToCPUID = map[string]string{
	"3dnow":     "AMD3DNOW",
	"3dnowext":  "AMD3DNOWEXT",
	"abm":       "LZCNT",
	"aes":       "AESNI",
	"cx8":       "CMPXCHG8",
	"fma":       "FMA3",
	"fpu":       "X87",
	"ht":        "HTT",
	"lahf_lm":   "LAHF",
	"pclmulqdq": "CLMUL",
	"pni":       "SSE3",
	"sep":       "SYSEE",
	"sha_ni":    "SHA",
	"sse4_1":    "SSE4",
	"sse4_2":    "SSE42",
	"topoext":   "TOPEXT",
}

var knownCPUID = setOf(strings.Fields(cpuidNames))

// CPUIDFromCPUInfo maps the flags of a /proc/cpuinfo "flags" line to the
// names NFD's cpu.cpuid uses (sse4_1 is SSE4, sse4_2 SSE42, pni SSE3, vmx
// VMX, svm SVM, ...). Flags NFD has no name for are dropped; the result is
// sorted. NFD reads the CPUID instruction, not /proc/cpuinfo, so the two
// can differ where the kernel hides a flag (e.g. vmx disabled by firmware)
// or NFD requires OS support (AVX needs OSXSAVE; OSXSAVE has no cpuinfo
// flag at all).
func CPUIDFromCPUInfo(flags []string) []string {
	var out []string
	for _, f := range flags {
		f = strings.ToLower(strings.TrimSpace(f))
		if n, ok := cpuinfoToCPUID[f]; ok {
			out = append(out, n)
			continue
		}
		up := strings.ToUpper(f)
		switch {
		case knownCPUID[up]:
			out = append(out, up)
		case knownCPUID[strings.ReplaceAll(up, "_", "")]:
			out = append(out, strings.ReplaceAll(up, "_", ""))
		}
	}
	return sortedSet(out)
}

// CPUInfoFlags returns the flags of the first processor in a /proc/cpuinfo
// text ("flags" on x86).
func CPUInfoFlags(cpuinfo string) []string {
	for _, line := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "flags" {
			return strings.Fields(v)
		}
	}
	return nil
}

// LoadedModules parses /proc/modules (module name first on each line).
func LoadedModules(procModules string) []string {
	var out []string
	for _, line := range strings.Split(procModules, "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			out = append(out, f[0])
		}
	}
	return out
}
