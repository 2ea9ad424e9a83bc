package report

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// roundTrip stores and reloads results, so evidence has the types Diff
// sees in practice (what json.Unmarshal makes of results.json).
func roundTrip(t *testing.T, r Results) Results {
	t.Helper()
	p := filepath.Join(t.TempDir(), "results.json")
	if err := Write(p, r); err != nil {
		t.Fatal(err)
	}
	out, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func kinds(changes []Change) map[string]int {
	k := map[string]int{}
	for _, c := range changes {
		k[c.Kind]++
	}
	return k
}

func TestDiffLostCoverage(t *testing.T) {
	before := Results{Specs: []Spec{
		{Suite: "s", Name: "a", State: Passed},
		{Suite: "s", Name: "b", State: Passed},
		{Suite: "s", Name: "c", State: Failed},
		{Suite: "s", Name: "d", State: Passed},
	}}
	after := Results{Specs: []Spec{
		{Suite: "s", Name: "a", State: Skipped, Skip: SkipInterrupted},
		{Suite: "s", Name: "b", State: Passed},
		{Suite: "s", Name: "c", State: Skipped},
		{Suite: "s", Name: "d", State: Interrupted, Failure: "Interrupted by User"},
	}}
	changes := Diff(before, after)
	want := []Change{
		{Suite: "s", Spec: "a", Kind: KindLostCoverage, Before: Passed, After: Skipped, Detail: SkipInterrupted},
		{Suite: "s", Spec: "c", Kind: KindState, Before: Failed, After: Skipped},
		{Suite: "s", Spec: "d", Kind: KindRegression, Before: Passed, After: Interrupted, Detail: "Interrupted by User"},
	}
	if !reflect.DeepEqual(changes, want) {
		t.Fatalf("changes:\n%+v\nwant:\n%+v", changes, want)
	}
	if n := Regressions(changes); n != 2 {
		t.Errorf("Regressions = %d, want 2 (lost coverage counts by default)", n)
	}
	if f := Failures(changes, DiffOptions{AllowSkips: true}); len(f) != 1 || f[0].Spec != "d" {
		t.Errorf("with AllowSkips: %+v, want only the interrupted spec", f)
	}
}

func TestDiffDrift(t *testing.T) {
	state := func(nodes map[string]map[string]string) map[string]any {
		return map[string]any{StateEvidence: nodes, "pods": []string{"p1"}}
	}
	before := roundTrip(t, Results{Specs: []Spec{
		{Suite: "sysctl", Name: "allowlist", State: Passed, Evidence: state(map[string]map[string]string{
			"kind-worker":   {"allowedUnsafeSysctls": "kernel.msg*,net.*", "cgroupVersion": "v2"},
			"kind-worker2":  {"allowedUnsafeSysctls": "", "cgroupVersion": "v2", "swap": "off"},
			"kind-worker-3": {"cgroupVersion": "v2"},
		})},
		{Suite: "sysctl", Name: "unparsed", State: Passed, Evidence: map[string]any{StateEvidence: "v2"}},
		{Suite: "sysctl", Name: "gone", State: Passed, Evidence: state(map[string]map[string]string{"n": {"f": "1"}})},
	}})
	after := roundTrip(t, Results{Specs: []Spec{
		{Suite: "sysctl", Name: "allowlist", State: Passed, Evidence: state(map[string]map[string]string{
			"kind-worker":  {"allowedUnsafeSysctls": "net.*", "cgroupVersion": "v2", "encapsulation": "kubelet=runtime≠systemd"},
			"kind-worker2": {"allowedUnsafeSysctls": "", "cgroupVersion": "v2"},
			"kind-worker4": {"cgroupVersion": "v2"},
		})},
		{Suite: "sysctl", Name: "unparsed", State: Passed, Evidence: map[string]any{StateEvidence: "v1"}},
	}})
	changes := Diff(before, after)
	d := func(node, field, b, a string) Change {
		return Change{Suite: "sysctl", Spec: "allowlist", Kind: KindDrift, Node: node, Field: field, Before: b, After: a}
	}
	want := []Change{
		d("kind-worker", "allowedUnsafeSysctls", "kernel.msg*,net.*", "net.*"),
		d("kind-worker", "encapsulation", "absent", "kubelet=runtime≠systemd"),
		d("kind-worker-3", NodeField, "present", "absent"),
		d("kind-worker2", "swap", "off", "absent"),
		d("kind-worker4", NodeField, "absent", "present"),
		{Suite: "sysctl", Spec: "gone", Kind: KindRegression, Before: Passed, After: "absent"},
		// Not a per-node state: compared as a whole, like any evidence.
		{Suite: "sysctl", Spec: "unparsed", Kind: KindEvidence, Before: `"v2"`, After: `"v1"`, Detail: StateEvidence},
	}
	if !reflect.DeepEqual(changes, want) {
		t.Fatalf("changes:\n%+v\nwant:\n%+v", changes, want)
	}
	if f := Failures(changes, DiffOptions{}); len(f) != 1 || f[0].Kind != KindRegression {
		t.Errorf("drift fails a diff by default: %+v", f)
	}
	if f := Failures(changes, DiffOptions{FailOnDrift: true}); kinds(f)[KindDrift] != 5 || len(f) != 6 {
		t.Errorf("with FailOnDrift: %+v", f)
	}
	if len(Diff(before, before)) != 0 {
		t.Fatal("a run differs from itself")
	}

	// Other evidence is still compared; a state in one run only is evidence, not drift.
	b2 := Results{Specs: []Spec{{Suite: "s", Name: "x", State: Passed, Evidence: map[string]any{"pods": "1"}}}}
	a2 := roundTrip(t, Results{Specs: []Spec{{Suite: "s", Name: "x", State: Passed, Evidence: map[string]any{"pods": "2", StateEvidence: map[string]map[string]string{"n": {"f": "v"}}}}}})
	if k := kinds(Diff(b2, a2)); k[KindEvidence] != 2 || k[KindDrift] != 0 || len(k) != 1 {
		t.Errorf("kinds %v, want 2 evidence changes", k)
	}
}

func TestPrintDiffAndJSON(t *testing.T) {
	changes := []Change{
		{Suite: "cgroups", Spec: "version", Kind: KindDrift, Node: "kind-worker", Field: "cgroupVersion", Before: "v1", After: "v2"},
		{Suite: "cgroups", Spec: "limits", Kind: KindEvidence, Detail: "cpu.max", Before: `"` + strings.Repeat("1", 100) + `"`, After: `"max 100000"`},
		{Suite: "s", Spec: "a", Kind: KindLostCoverage, Before: Passed, After: Skipped, Detail: "needs 2 workers"},
	}
	var buf bytes.Buffer
	PrintDiff(&buf, changes)
	out := buf.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 {
		t.Fatalf("want header, 3 rows and the clip note:\n%s", out)
	}
	for i, want := range [][]string{
		{"SPEC", "KIND", "NODE", "FIELD", "BEFORE", "AFTER", "DETAIL"},
		{"cgroups: version", "drift", "kind-worker", "cgroupVersion", "v1", "v2", "-"},
		{"cgroups: limits", "evidence", "-", "cpu.max", "…", `"max`, "100000\"", "-"},
		{"s: a", "lost-coverage", "-", "-", "passed", "skipped", "needs 2 workers"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	if strings.Index(lines[1], "drift") != strings.Index(lines[0], "KIND") {
		t.Errorf("columns not aligned:\n%s", out)
	}
	if !strings.Contains(lines[4], "--json") {
		t.Errorf("no note about clipped values:\n%s", out)
	}
	buf.Reset()
	PrintDiff(&buf, nil)
	if buf.String() != "no differences\n" {
		t.Errorf("empty diff: %q", buf.String())
	}

	data, _ := json.Marshal(changes[:1])
	if string(data) != `[{"suite":"cgroups","spec":"version","kind":"drift","node":"kind-worker","field":"cgroupVersion","before":"v1","after":"v2"}]` {
		t.Errorf("json: %s", data)
	}
	if data, _ := json.Marshal(changes[2]); strings.Contains(string(data), "node") || strings.Contains(string(data), "field") {
		t.Errorf("node and field must be omitted when empty: %s", data)
	}
}
