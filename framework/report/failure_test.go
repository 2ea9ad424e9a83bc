package report

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestFailureBrief(t *testing.T) {
	for _, tc := range []struct {
		name, msg string
		want      []string
	}{
		{"empty", "", nil},
		{"one line", "lookup failed", []string{"lookup failed"}},
		{"one line with location", "lookup failed\nmore (/src/x.go:3)", []string{"lookup failed (/src/x.go:3)"}},
		{"node lines after a headline, Gomega after",
			"2 nodes differ from the configuration\n  node kind-worker: cpuCFSQuota: wanted true, found false\nnode kind-worker2: cgroupVersion: wanted v2, found v1\nExpected\n    <int>: 2\nto equal\n    <int>: 0 (s.go:9)",
			[]string{"node kind-worker: cpuCFSQuota: wanted true, found false", "node kind-worker2: cgroupVersion: wanted v2, found v1", "(s.go:9)"}},
		{"more than three nodes",
			"node a: x\nnode b: x\nnode c: x\nnode d: x\nnode e: x",
			[]string{"node a: x", "node b: x", "node c: x", "and 2 more"}},
		{"Eventually with a description",
			"Timed out after 30.001s.\nkubelet configz of kind-worker\nExpected\n    <bool>: false\nto be true",
			[]string{"kubelet configz of kind-worker"}},
		{"unexpected error: the error text",
			"Unexpected error:\n    <*errors.errorString | 0xc000123>: \n    connection refused\n    {s: \"connection refused\"}\noccurred",
			[]string{"connection refused"}},
		{"Succeed's framing: the error text",
			"Expected success, but got an error:\n    <*fmt.wrapError | 0x3e4ae3b97640>: \n    create pod ns/p: pods \"p\" is forbidden: violates PodSecurity\n     (r.go:158)",
			[]string{"create pod ns/p: pods \"p\" is forbidden: violates PodSecurity (r.go:158)"}},
		{"all boilerplate: Gomega's sentence on one line",
			"Timed out after 5s.\nExpected\n    <bool>: false\nto be true (e.go:1)",
			[]string{"Timed out after 5s. Expected <bool>: false to be true (e.go:1)"}},
		{"all boilerplate, long: clipped",
			"Expected\n    <string>: " + strings.Repeat("x", 300) + "\nto equal\n    <string>: y",
			[]string{"Expected <string>: " + strings.Repeat("x", 160-1-len("Expected <string>: ")) + "…"}},
		{"only a location", " (e.go:1)", []string{"(e.go:1)"}},
	} {
		if got := FailureBrief(tc.msg); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: FailureBrief(%q) = %q, want %q", tc.name, tc.msg, got, tc.want)
		}
	}
}

func TestIsBoilerplate(t *testing.T) {
	for line, want := range map[string]bool{
		"Expected": true, "  <int>: 1": true, "to equal": true, "not to have occurred": true,
		"Timed out after 1s.": true, "}": true, "occurred": true, "Unexpected error:": true,
		"Expected success, but got an error:": true,
		"Expected 3 nodes, found 2":           false, "node a: x": false, "pod never became Ready": false,
	} {
		if got := IsBoilerplate(line); got != want {
			t.Errorf("IsBoilerplate(%q) = %v, want %v", line, got, want)
		}
	}
}

func TestSummaryShowsNodeLines(t *testing.T) {
	specs := []Spec{
		{Suite: "cgroups", Name: "CFS quota", State: Failed, Failure: "quota differs on 4 nodes\nnode w1: cpuCFSQuota: wanted true, found false\nnode w2: x\nnode w3: y\nnode w4: z\nExpected\n    <int>: 4\nto equal\n    <int>: 0 (q.go:7)"},
		{Suite: "cgroups", Name: "version", State: Failed, Failure: "Expected\n    <string>: v1\nto equal\n    <string>: v2"},
	}
	var buf bytes.Buffer
	Summary(&buf, specs)
	out := buf.String()
	want := "FAILED cgroups: CFS quota\n" +
		"         node w1: cpuCFSQuota: wanted true, found false\n" +
		"         node w2: x\n" +
		"         node w3: y\n" +
		"         and 1 more\n" +
		"         (q.go:7)\n" +
		"FAILED cgroups: version\n" +
		"         Expected <string>: v1 to equal <string>: v2\n" +
		"nodeconform: 0 passed, 2 failed, 0 skipped\n"
	if !strings.HasSuffix(out, want) {
		t.Fatalf("summary:\n%s\nwant it to end with:\n%s", out, want)
	}
	if strings.Contains(out, "quota differs") || strings.Contains(out, "INTERRUPTED") {
		t.Fatalf("summary shows more than the node lines:\n%s", out)
	}
}

func TestNodesLine(t *testing.T) {
	specs := []Spec{
		{Suite: "cgroups", Name: "version", State: Passed, Evidence: map[string]any{"nodes": []any{
			map[string]any{"node": "vm", "state": "passed", "evidence": map[string]any{"cgroupVersion": float64(2), "kubeletVersion": "v1.37.2", "containerRuntimeVersion": "containerd://2.3.4"}},
			map[string]any{"node": "w1", "state": "passed", "evidence": map[string]any{"cgroupVersion": "v1"}},
		}}},
		{Suite: "cgroups", Name: "hugepages", State: Failed, Evidence: map[string]any{"nodes": []any{
			map[string]any{"node": "vm", "state": "failed", "finding": "no huge pages"},
			map[string]any{"node": "w1", "state": "skipped", "finding": "none declared"},
		}}},
		{Suite: "cluster", Name: "no per-node evidence", State: Passed, Evidence: map[string]any{"nodes": "not a list"}},
	}
	var b strings.Builder
	Nodes(&b, specs)
	want := "nodes: vm (cgroup v2, kubelet v1.37.2, containerd://2.3.4) 1 passed, 1 failed, 0 skipped; w1 (cgroup v1) 1 passed, 0 failed, 1 skipped\n"
	if b.String() != want {
		t.Fatalf("got %q\nwant %q", b.String(), want)
	}
	b.Reset()
	Nodes(&b, specs[2:])
	if b.String() != "" {
		t.Fatalf("no per-node results must print nothing, got %q", b.String())
	}
}
