package nfd

import (
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// kataTerms is the seed's rule: SSE4+VMX with kvm+kvm_intel, or SSE4+SVM
// with kvm+kvm_amd.
var kataTerms = []Term{
	{CPUID: []string{"SSE4", "SVM"}, Modules: []string{"kvm", "kvm_amd"}},
	{CPUID: []string{"SSE4", "VMX"}, Modules: []string{"kvm", "kvm_intel"}},
}

func TestFixturesMeanTheSame(t *testing.T) {
	modern, err := ParseNodeFeatureRule(fixture(KataRuleFixture))
	if err != nil {
		t.Fatal(err)
	}
	legacy, err := ParseLegacyNodeFeatureDiscovery(fixture(LegacyKataFixture))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{{Labels: map[string]string{"feature.node.kubernetes.io/runtime.kata": "true"}, Terms: kataTerms}}
	if !reflect.DeepEqual(modern, want) {
		t.Errorf("NodeFeatureRule fixture = %+v, want %+v", modern, want)
	}
	if !reflect.DeepEqual(legacy, want) {
		t.Errorf("legacy NodeFeatureDiscovery fixture = %+v, want %+v", legacy, want)
	}
	k, err := KataRule()
	if err != nil || !reflect.DeepEqual(k, want[0]) {
		t.Errorf("KataRule() = %+v, %v", k, err)
	}
}

func TestControlFixture(t *testing.T) {
	rules, err := ParseNodeFeatureRule(fixture(ControlRuleFixture))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{{Labels: map[string]string{ControlLabel: "true"}, Terms: []Term{{CPUID: []string{"SSE4"}}}}}
	if !reflect.DeepEqual(rules, want) {
		t.Errorf("control = %+v, want %+v", rules, want)
	}
}

func TestParseNodeFeatureRule(t *testing.T) {
	// matchFeatures is ANDed into every matchAny alternative; unprefixed
	// label names get NFD's namespace.
	rules, err := ParseNodeFeatureRule([]byte(`
apiVersion: nfd.k8s-sigs.io/v1alpha1
kind: NodeFeatureRule
metadata: {name: x}
spec:
  rules:
  - name: r
    labels: {plain: "yes", "example.com/x": "1"}
    matchFeatures:
    - feature: cpu.cpuid
      matchExpressions: {SSE4: {op: Exists}}
    matchAny:
    - matchFeatures:
      - feature: kernel.loadedmodule
        matchExpressions: {a: {op: Exists}}
    - matchFeatures:
      - feature: kernel.loadedmodule
        matchExpressions: {b: {op: Exists}}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{{
		Labels: map[string]string{"feature.node.kubernetes.io/plain": "yes", "example.com/x": "1"},
		Terms:  []Term{{CPUID: []string{"SSE4"}, Modules: []string{"a"}}, {CPUID: []string{"SSE4"}, Modules: []string{"b"}}},
	}}
	if !reflect.DeepEqual(rules, want) {
		t.Errorf("got %+v, want %+v", rules, want)
	}
	for name, doc := range map[string]string{
		"other op":      `{op: In, value: ["1"]}`,
		"other feature": `{op: Exists}`,
	} {
		feature := "cpu.cpuid"
		if name == "other feature" {
			feature = "pci.device"
		}
		_, err := ParseNodeFeatureRule([]byte(`
apiVersion: nfd.k8s-sigs.io/v1alpha1
kind: NodeFeatureRule
metadata: {name: x}
spec:
  rules:
  - name: r
    labels: {a: "1"}
    matchFeatures:
    - feature: ` + feature + `
      matchExpressions: {SSE4: ` + doc + `}
`))
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParseNodeFeatureRule([]byte("apiVersion: nfd.k8s-sigs.io/v1alpha1\nkind: NodeFeatureRule\nspec: {rules: [{name: r, labels: {a: b}, taints: []}]}\n")); err == nil {
		t.Error("unknown field accepted")
	}
}

func TestParseLegacyWorkerConfig(t *testing.T) {
	rules, err := ParseLegacyWorkerConfig([]byte(`
sources:
  custom:
  - name: my-feature
    matchOn:
    - cpuId: [SSE4]
  - name: valued
    value: v1
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{Labels: map[string]string{"feature.node.kubernetes.io/custom-my-feature": "true"}, Terms: []Term{{CPUID: []string{"SSE4"}}}},
		{Labels: map[string]string{"feature.node.kubernetes.io/custom-valued": "v1"}},
	}
	if !reflect.DeepEqual(rules, want) {
		t.Errorf("got %+v, want %+v", rules, want)
	}
	if _, err := ParseLegacyWorkerConfig([]byte("sources: {custom: [{name: x, matchOn: [{pciId: {vendor: [\"8086\"]}}]}]}")); err == nil {
		t.Error("pciId accepted")
	}
}

func TestEval(t *testing.T) {
	kata := Rule{Labels: map[string]string{KataLabel: "true"}, Terms: kataTerms}
	host := CPUIDFromCPUInfo(CPUInfoFlags(readTestdata(t, "cpuinfo-flags.txt")))
	for _, c := range []struct {
		name  string
		facts Facts
		want  bool
		why   string
	}{
		{"intel vt-x", Facts{CPUID: []string{"SSE4", "SSE42", "VMX"}, Modules: []string{"kvm_intel", "kvm", "irqbypass"}, ModulesKnown: true}, true, "holds"},
		{"amd-v", Facts{CPUID: []string{"SSE4", "SVM"}, Modules: []string{"kvm", "kvm_amd"}, ModulesKnown: true}, true, "holds"},
		{"vmx with the amd module", Facts{CPUID: []string{"SSE4", "VMX"}, Modules: []string{"kvm", "kvm_amd"}, ModulesKnown: true}, false, "lacks module kvm_intel"},
		{"kvm not loaded", Facts{CPUID: []string{"SSE4", "VMX"}, Modules: []string{"kvm_intel"}, ModulesKnown: true}, false, "lacks module kvm"},
		{"no sse4.1", Facts{CPUID: []string{"SSE42", "SVM"}, Modules: []string{"kvm", "kvm_amd"}, ModulesKnown: true}, false, "lacks cpuid SSE4"},
		{"modules unknown", Facts{CPUID: []string{"SSE4", "VMX"}}, false, "kernel.loadedmodule unavailable"},
		// This project's hosts: AMD without svm (nested), no /proc/modules.
		{"build host", Facts{CPUID: host}, false, "lacks cpuid SVM"},
	} {
		got, why := kata.Eval(c.facts)
		if got != c.want || !strings.Contains(why, c.why) {
			t.Errorf("%s: Eval = %v (%s), want %v (%s)", c.name, got, why, c.want, c.why)
		}
	}
	if ok, _ := (Rule{}).Eval(Facts{}); !ok {
		t.Error("a rule without terms must hold")
	}
}

func TestCPUIDFromCPUInfo(t *testing.T) {
	got := CPUIDFromCPUInfo([]string{"sse4_1", "sse4_2", "pni", "ssse3", "vmx", "svm", "sse4a", "avx512_vnni", "lm", "nonsense"})
	want := []string{"AVX512VNNI", "SSE3", "SSE4", "SSE42", "SSE4A", "SSSE3", "SVM", "VMX"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// The build host's cpuinfo against what NFD v0.17.3 reported there:
	// they differ only by flags one side has no name for.
	mapped := CPUIDFromCPUInfo(CPUInfoFlags(readTestdata(t, "cpuinfo-flags.txt")))
	nfd := strings.Fields(readTestdata(t, "nfd-cpuid.txt"))
	var onlyMapped, onlyNFD []string
	for _, f := range mapped {
		if !slices.Contains(nfd, f) {
			onlyMapped = append(onlyMapped, f)
		}
	}
	for _, f := range nfd {
		if !slices.Contains(mapped, f) {
			onlyNFD = append(onlyNFD, f)
		}
	}
	// cpuinfo "ht" is HTT, which klauspost/cpuid does not report here.
	if !reflect.DeepEqual(onlyMapped, []string{"HTT"}) {
		t.Errorf("mapped but not reported by NFD: %v", onlyMapped)
	}
	// No /proc/cpuinfo flag: OSXSAVE is a CR4 bit, the rest AMD
	// extended-leaf bits Linux does not print.
	if want := []string{"CETSS", "FP256", "MOVU", "OSXSAVE", "PSFD", "STIBP_ALWAYSON"}; !reflect.DeepEqual(onlyNFD, want) {
		t.Errorf("reported by NFD but not mapped: %v, want %v", onlyNFD, want)
	}
}

func TestLoadedModules(t *testing.T) {
	got := LoadedModules("kvm_intel 425984 0 - Live 0x0\nkvm 1384448 1 kvm_intel, Live 0x0\n\n")
	if want := []string{"kvm_intel", "kvm"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v", got)
	}
}

// readTestdata returns a testdata file without its # comment lines.
func readTestdata(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n")
}

func TestEligible(t *testing.T) {
	eligible := map[string]bool{"a": true, "b": false, "c": false}
	if e := Eligible(eligible); len(e) != 1 || e[0] != "a" {
		t.Fatalf("eligible %v", e)
	}
}
