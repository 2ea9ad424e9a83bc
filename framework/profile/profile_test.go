package profile

import (
	"strings"
	"testing"
)

const good = `
apiVersion: nodeconform.io/v1alpha1
kind: NodeProfile
metadata: {name: lab}
spec:
  groups:
  - name: control-plane
    nodeSelector:
      matchLabels: {node-role.kubernetes.io/control-plane: ""}
    node:
      encapsulation: "off"
      allowedUnsafeSysctls: []
      cgroupVersion: v1
      podPidsLimit: 4096
      hugePages2Mi: "0"
  - name: sysctl-workers
    nodeSelector:
      matchExpressions:
      - {key: nodeconform.io/worker, operator: In, values: ["1"]}
    node:
      allowedUnsafeSysctls: ["net.*", "kernel.msg*", "kernel.sem"]
      cpuCFSQuota: true
  runtimeClasses:
  - name: kata
    handler: kata
    overhead: {cpu: 500m, memory: 500Mi}
`

func TestParseGood(t *testing.T) {
	p, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Spec.Groups[1].Node.State()[FieldAllowedUnsafeSysctls]; got != "kernel.msg*,kernel.sem,net.*" {
		t.Errorf("canonical allowlist %q", got)
	}
	if got := p.Spec.Groups[0].Node.State()[FieldAllowedUnsafeSysctls]; got != "" {
		t.Errorf("empty allowlist must be declared as empty, got %q", got)
	}
	if _, ok := p.Spec.Groups[1].Node.State()[FieldEncapsulation]; ok {
		t.Error("an unset field must not be judged")
	}
}

func TestParseErrorsNameTheInput(t *testing.T) {
	cases := map[string]struct{ from, to, want string }{
		"unknown field":       {"cpuCFSQuota: true", "cpuCFSQuotta: true", `unknown field "cpuCFSQuotta"`},
		"bad selector":        {"operator: In", "operator: Within", `"Within" is not a valid label selector operator`},
		"bad enum":            {`encapsulation: "off"`, `encapsulation: "maybe"`, `encapsulation must be one of on, off, got "maybe"`},
		"bad allowlist":       {`"kernel.sem"]`, `"kernel.sem", "vm.swappiness"]`, `"vm.swappiness" is outside the namespaced groups`},
		"wrong kind":          {"kind: NodeProfile", "kind: Profile", "kind must be NodeProfile"},
		"wrong version":       {"nodeconform.io/v1alpha1", "nodeconform.io/v9", "apiVersion must be nodeconform.io/v1alpha1"},
		"empty selector":      {"matchLabels: {node-role.kubernetes.io/control-plane: \"\"}", "matchLabels: {}", "nodeSelector is empty"},
		"duplicate group":     {"name: sysctl-workers", "name: control-plane", `name "control-plane" is used twice`},
		"malformed yaml":      {"metadata: {name: lab}", "metadata: {name: lab", "did not find expected"},
		"bad quantity":        {`hugePages2Mi: "0"`, `hugePages2Mi: "lots"`, "quantities must match"},
		"relative cgroupRoot": {"cpuCFSQuota: true", "cgroupRoot: kubelet", "cgroupRoot must be an absolute cgroup path"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			in := strings.Replace(good, c.from, c.to, 1)
			if in == good {
				t.Fatalf("fixture has no %q", c.from)
			}
			_, err := Parse([]byte(in))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("want error containing %q, got %v", c.want, err)
			}
		})
	}
}

func nodes() []NodeLabels {
	return []NodeLabels{
		{"cp", map[string]string{"node-role.kubernetes.io/control-plane": "", "kubernetes.io/hostname": "cp"}},
		{"w1", map[string]string{"nodeconform.io/worker": "1", "kubernetes.io/hostname": "w1"}},
		{"w2", map[string]string{"nodeconform.io/worker": "2", "kubernetes.io/hostname": "w2"}},
	}
}

func TestResolve(t *testing.T) {
	p, err := Parse([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	m, err := p.Resolve(nodes())
	if err != nil {
		t.Fatal(err)
	}
	if m.Group["cp"].Name != "control-plane" || m.Group["w1"].Name != "sysctl-workers" {
		t.Errorf("membership %v", m.Group)
	}
	if len(m.Unprofiled) != 1 || m.Unprofiled[0] != "w2" {
		t.Errorf("unprofiled %v", m.Unprofiled)
	}
}

func TestResolveErrors(t *testing.T) {
	none := strings.Replace(good, `values: ["1"]`, `values: ["9"]`, 1)
	p, err := Parse([]byte(none))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resolve(nodes()); err == nil || !strings.Contains(err.Error(), "group sysctl-workers: nodeSelector nodeconform.io/worker in (9) matches no node") {
		t.Errorf("selector matching nothing: %v", err)
	}
	two := strings.Replace(good, `values: ["1"]`, `values: ["1"]}
      - {key: kubernetes.io/hostname, operator: Exists`, 1)
	two = strings.Replace(two, `matchLabels: {node-role.kubernetes.io/control-plane: ""}`, `matchLabels: {kubernetes.io/hostname: w1}`, 1)
	p, err = Parse([]byte(two))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Resolve(nodes()); err == nil || !strings.Contains(err.Error(), "node w1 is claimed by groups control-plane and sysctl-workers") {
		t.Errorf("two groups for one node: %v", err)
	}
}

func TestCompareNamesNodeFieldWantedFound(t *testing.T) {
	p, _ := Parse([]byte(good))
	g := &p.Spec.Groups[1]
	obs := State{FieldAllowedUnsafeSysctls: "kernel.msg*,kernel.sem,kernel.shm*,net.*", FieldCPUCFSQuota: "true", FieldEncapsulation: "on"}
	d := Compare("w1", g, obs, Fields["sysctl"])
	if len(d) != 1 {
		t.Fatalf("drift %v", d)
	}
	want := "node w1: allowedUnsafeSysctls: wanted kernel.msg*,kernel.sem,net.*, found kernel.msg*,kernel.sem,kernel.shm*,net.* (profile group sysctl-workers)"
	if d[0].String() != want {
		t.Errorf("got %q\nwant %q", d[0], want)
	}
	if d := Compare("w1", g, obs, Fields["cgroups"]); len(d) != 0 {
		t.Errorf("cgroups fields: %v", d)
	}
	if d := Compare("w1", g, State{}, Fields["cgroups"]); len(d) != 1 || d[0].Found != "(not observed)" {
		t.Errorf("unobserved field: %v", d)
	}
	// A shrunk allowlist is drift too.
	if d := Compare("w1", g, State{FieldAllowedUnsafeSysctls: "net.*"}, Fields["sysctl"]); len(d) != 1 {
		t.Errorf("shrunk allowlist: %v", d)
	}
}

func TestCaptureRoundTrip(t *testing.T) {
	obs := []Observed{
		{"cp", nodes()[0].Labels, State{FieldAllowedUnsafeSysctls: "", FieldCgroupVersion: "v1", FieldPodPidsLimit: "4096", FieldCPUCFSQuota: "true", FieldHugePages2Mi: "0"}},
		{"w1", nodes()[1].Labels, State{FieldAllowedUnsafeSysctls: "net.*", FieldCgroupVersion: "v1", FieldPodPidsLimit: "4096", FieldCPUCFSQuota: "true", FieldHugePages2Mi: "0"}},
		{"w2", nodes()[2].Labels, State{FieldAllowedUnsafeSysctls: "", FieldCgroupVersion: "v1", FieldPodPidsLimit: "4096", FieldCPUCFSQuota: "true", FieldHugePages2Mi: "0"}},
	}
	p, err := Capture("lab", obs)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Parse(out)
	if err != nil {
		t.Fatalf("captured profile does not parse: %v\n%s", err, out)
	}
	var ns []NodeLabels
	for _, o := range obs {
		ns = append(ns, NodeLabels{o.Name, o.Labels})
	}
	m, err := back.Resolve(ns)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(m.Unprofiled) != 0 {
		t.Errorf("unprofiled %v", m.Unprofiled)
	}
	for _, o := range obs {
		if d := Compare(o.Name, m.Group[o.Name], o.State, nil); len(d) != 0 {
			t.Errorf("captured profile drifts from its own source: %v\n%s", d, out)
		}
	}
	if m.Group["w1"] == m.Group["w2"] {
		t.Error("w1 and w2 differ but share a group")
	}
	if m.Group["cp"] != m.Group["w2"] {
		t.Errorf("cp and w2 are alike but got groups %s and %s", m.Group["cp"].Name, m.Group["w2"].Name)
	}
	if !strings.Contains(string(out), "nodeconform.io/worker: \"1\"") {
		t.Errorf("w1's group should select on its own label:\n%s", out)
	}
}

// A group selected by hostname names the kubelet's label values, which
// differ from node names where a cloud provider or an admin set them; a
// node no selector can tell apart is an error, not a node left out.
func TestCaptureSelectsByHostnameLabel(t *testing.T) {
	st := func(allow string) State {
		return State{FieldAllowedUnsafeSysctls: allow, FieldCgroupVersion: "v1", FieldPodPidsLimit: "4096", FieldCPUCFSQuota: "true", FieldHugePages2Mi: "0"}
	}
	obs := func(w2Labels map[string]string) []Observed {
		return []Observed{
			{"cp", nodes()[0].Labels, st("")},
			{"w1", nodes()[1].Labels, st("net.*")},
			{"w2", w2Labels, st("")},
		}
	}
	p, err := Capture("lab", obs(map[string]string{"nodeconform.io/worker": "2", "kubernetes.io/hostname": "w2.corp.example"}))
	if err != nil {
		t.Fatal(err)
	}
	out, _ := Encode(p)
	if !strings.Contains(string(out), "w2.corp.example") {
		t.Errorf("w2 should be selected by its hostname label's value:\n%s", out)
	}
	_, err = Capture("lab", obs(map[string]string{"nodeconform.io/worker": "2"}))
	if err == nil || !strings.Contains(err.Error(), "node w2 was captured into group") {
		t.Errorf("a node without a hostname label and no label of its own: %v", err)
	}
	// No member has the label: the group matches nothing, and both nodes
	// are still named.
	noHost := obs(map[string]string{"nodeconform.io/worker": "2"})
	noHost[0].Labels = map[string]string{"node-role.kubernetes.io/control-plane": ""}
	_, err = Capture("lab", noHost)
	if err == nil || !strings.Contains(err.Error(), "node cp was captured") || !strings.Contains(err.Error(), "node w2 was captured") {
		t.Errorf("a group no member's label selects: %v", err)
	}
}

func TestDefaultsFoldIntoGroups(t *testing.T) {
	in := strings.Replace(good, "spec:\n", "spec:\n  defaults: {cgroupDriver: systemd, podPidsLimit: 1024}\n", 1)
	p, err := Parse([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	cp, w := p.Spec.Groups[0].Node.State(), p.Spec.Groups[1].Node.State()
	if cp[FieldCgroupDriver] != "systemd" || w[FieldCgroupDriver] != "systemd" {
		t.Errorf("default not applied: %v %v", cp, w)
	}
	if cp[FieldPodPidsLimit] != "4096" || w[FieldPodPidsLimit] != "1024" {
		t.Errorf("group value must win over the default: %v %v", cp, w)
	}
	if _, err := Parse([]byte(strings.Replace(in, "cgroupDriver: systemd", "cgroupDriver: upstart", 1))); err == nil || !strings.Contains(err.Error(), "spec.defaults.cgroupDriver") {
		t.Errorf("bad default: %v", err)
	}
}

func TestVersionMatches(t *testing.T) {
	for _, c := range []struct {
		want, version string
		ok            bool
	}{
		{"v1.37.2", "v1.37.2", true},
		{"v1.37", "v1.37.2", true},
		{"v1.37", "v1.37.0-gke.1200", true},
		{"v1.37", "v1.370.0", false},
		{"v1.37", "v1.36.3", false},
		{"v1.37.2", "v1.37", false},
		{"containerd://2", "containerd://2.3.4", true},
		{"containerd://2", "containerd://1.7.20", false},
		{"", "v1.37.2", false},
	} {
		if got := VersionMatches(c.want, c.version); got != c.ok {
			t.Errorf("VersionMatches(%q, %q) = %v", c.want, c.version, got)
		}
	}
}

// A node an upgrade left behind drifts; a declared prefix passes the
// others, a version field left out is not judged.
func TestCompareVersions(t *testing.T) {
	kubelet, runtime := "v1.37", "containerd://2"
	g := &Group{Name: "workers", Node: NodeIntent{KubeletVersion: &kubelet, ContainerRuntimeVersion: &runtime}}
	if d := Compare("w1", g, State{FieldKubeletVersion: "v1.37.2", FieldRuntimeVersion: "containerd://2.3.4"}, Fields["cluster"]); len(d) != 0 {
		t.Errorf("upgraded node drifts: %v", d)
	}
	d := Compare("w2", g, State{FieldKubeletVersion: "v1.36.3", FieldRuntimeVersion: "containerd://1.7.20"}, Fields["cluster"])
	if len(d) != 2 || d[0].Sentence() != "kubeletVersion: wanted v1.37, found v1.36.3 (profile group workers)" {
		t.Errorf("node left behind: %v", d)
	}
	back, err := IntentFromState(g.Node.State())
	if err != nil || *back.KubeletVersion != kubelet || *back.ContainerRuntimeVersion != runtime {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	if d := Compare("w2", &Group{Name: "none"}, State{FieldKubeletVersion: "v1.36.3"}, Fields["cluster"]); len(d) != 0 {
		t.Errorf("undeclared versions judged: %v", d)
	}
}
