package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nodeconform/nodeconform/framework/cost"
	"github.com/onsi/ginkgo/v2/types"
)

func ginkgoReport() []types.Report {
	return []types.Report{{SpecReports: types.SpecReports{
		{LeafNodeType: types.NodeTypeIt, ContainerHierarchyTexts: []string{"Cluster"}, LeafNodeText: "has nodes", State: types.SpecStatePassed, RunTime: 2 * time.Second,
			ReportEntries: types.ReportEntries{{Name: "nodes", Value: types.WrapEntryValue(`[{"Name":"n1"}]`)}}},
		{LeafNodeType: types.NodeTypeIt, ContainerHierarchyTexts: []string{"Cluster"}, LeafNodeText: "reaches pods", State: types.SpecStateSkipped,
			Failure: types.Failure{Message: "needs 2 Ready worker nodes"}},
		{LeafNodeType: types.NodeTypeIt, ContainerHierarchyTexts: []string{"Cluster"}, LeafNodeText: "resolves DNS", State: types.SpecStateFailed,
			Failure: types.Failure{Message: "lookup failed\nmore", Location: types.CodeLocation{FileName: "x.go", LineNumber: 3}}},
		{LeafNodeType: types.NodeTypeBeforeSuite, State: types.SpecStatePassed},
	}}}
}

func TestFromGinkgo(t *testing.T) {
	specs := FromGinkgo("cluster", ginkgoReport())
	if len(specs) != 3 {
		t.Fatalf("want 3 specs (passed setup nodes dropped), got %+v", specs)
	}
	if specs[0].Name != "Cluster has nodes" || specs[0].State != Passed || specs[0].Evidence["nodes"] == nil {
		t.Fatalf("%+v", specs[0])
	}
	if specs[1].State != Skipped || specs[1].Skip != "needs 2 Ready worker nodes" {
		t.Fatalf("%+v", specs[1])
	}
	if specs[2].State != Failed || !strings.Contains(specs[2].Failure, "x.go:3") || !AnyFailed(specs) {
		t.Fatalf("%+v", specs[2])
	}
	var buf bytes.Buffer
	Summary(&buf, specs)
	out := buf.String()
	for _, want := range []string{"cluster", "needs 2 Ready worker nodes", "FAILED cluster: Cluster resolves DNS", "nodeconform: 1 passed, 1 failed, 1 skipped\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
}

func TestDiffFlagsRegression(t *testing.T) {
	before := Results{Specs: []Spec{
		{Suite: "s", Name: "a", State: Passed, Evidence: map[string]any{"v": "1"}},
		{Suite: "s", Name: "b", State: Failed},
		{Suite: "s", Name: "gone", State: Passed},
	}}
	after := Results{Specs: []Spec{
		{Suite: "s", Name: "a", State: Failed, Evidence: map[string]any{"v": "2"}},
		{Suite: "s", Name: "b", State: Passed},
		{Suite: "s", Name: "new", State: Passed},
	}}
	changes := Diff(before, after)
	kinds := map[string]int{}
	for _, c := range changes {
		kinds[c.Kind]++
	}
	if kinds["regression"] != 2 || kinds["fixed"] != 1 || kinds["evidence"] != 1 || kinds["new"] != 1 || Regressions(changes) != 2 {
		t.Fatalf("changes: %+v", changes)
	}
	if len(Diff(before, before)) != 0 {
		t.Fatal("a run differs from itself")
	}
}

func TestWriteLoadAndMergeJUnit(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "results.json")
	if err := Write(p, Results{Cluster: "c", Specs: FromGinkgo("cluster", ginkgoReport())}); err != nil {
		t.Fatal(err)
	}
	r, err := Load(p)
	if err != nil || len(r.Specs) != 3 || r.Cluster != "c" {
		t.Fatalf("%+v %v", r, err)
	}
	os.WriteFile(filepath.Join(dir, "bad.json"), []byte("nope"), 0o644)
	if _, err := Load(filepath.Join(dir, "bad.json")); err == nil {
		t.Fatal("want error for a malformed results file")
	}
	j1 := `<?xml version="1.0"?><testsuites tests="1" failures="0"><testsuite name="a" tests="1"><testcase name="x"></testcase></testsuite></testsuites>`
	j2 := `<?xml version="1.0"?><testsuites tests="2" failures="1"><testsuite name="b" tests="2"><testcase name="y"></testcase><testcase name="z"><failure message="m">f</failure></testcase></testsuite></testsuites>`
	os.WriteFile(filepath.Join(dir, "1.xml"), []byte(j1), 0o644)
	os.WriteFile(filepath.Join(dir, "2.xml"), []byte(j2), 0o644)
	dst := filepath.Join(dir, "junit.xml")
	if err := MergeJUnit([]string{filepath.Join(dir, "1.xml"), filepath.Join(dir, "2.xml")}, nil, dst); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(dst)
	s := string(data)
	if !strings.Contains(s, `tests="3"`) || !strings.Contains(s, `name="a"`) || !strings.Contains(s, `name="b"`) || !strings.Contains(s, `failures="1"`) {
		t.Fatalf("merged junit:\n%s", s)
	}
	// A suite that ended without reporting has no file of its own.
	crash := Spec{Suite: "nfd", Name: "[suite]", State: Failed, Failure: "suite's processes ended before reporting"}
	if err := MergeJUnit([]string{filepath.Join(dir, "1.xml")}, []Spec{crash}, dst); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(dst)
	s = string(data)
	if !strings.Contains(s, `tests="2"`) || !strings.Contains(s, `failures="1"`) || !strings.Contains(s, `name="[suite]" classname="nfd" status="failed"`) || !strings.Contains(s, "ended before reporting") {
		t.Fatalf("merged junit with an unreported failure:\n%s", s)
	}
}

func TestCostsInRunOrder(t *testing.T) {
	specs := []Spec{{Suite: "sysctl"}, {Suite: "sysctl"}, {Suite: "cgroups"}}
	var b strings.Builder
	Costs(&b, specs, map[string]cost.Figures{
		"cgroups": {Nodes: 3, PodsCreated: 21, APIRequests: 800, APIWrites: 120},
		"sysctl":  {Nodes: 3, PodsCreated: 9, APIRequests: 300, APIWrites: 40},
	})
	want := "cost: sysctl 3 nodes 9 pods 300 requests (40 writes); cgroups 3 nodes 21 pods 800 requests (120 writes)\n"
	if b.String() != want {
		t.Errorf("Costs =\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	Costs(&b, specs, nil)
	if b.Len() != 0 {
		t.Errorf("no costs must print nothing, got %q", b.String())
	}
}

func TestAddSuitePhasesAndPrint(t *testing.T) {
	s := time.Second
	reports := []types.Report{
		{SpecReports: types.SpecReports{
			{LeafNodeType: types.NodeTypeSynchronizedBeforeSuite, RunTime: 3 * s},
			{LeafNodeType: types.NodeTypeIt, LeafNodeText: "a", State: types.SpecStatePassed, RunTime: 2 * s},
			{LeafNodeType: types.NodeTypeIt, LeafNodeText: "filtered", State: types.SpecStateSkipped},
			// Process 1 waited 60 s for process 2's specs before its
			// own teardown body: only the bodies' 7 s are teardown.
			{LeafNodeType: types.NodeTypeSynchronizedAfterSuite, RunTime: 67 * s, SpecEvents: types.SpecEvents{
				{SpecEventType: types.SpecEventNodeStart},
				{SpecEventType: types.SpecEventNodeEnd, Duration: s / 2},
				{SpecEventType: types.SpecEventNodeStart},
				{SpecEventType: types.SpecEventNodeEnd, Duration: 13 * s / 2},
			}},
		}},
		{SpecReports: types.SpecReports{
			{LeafNodeType: types.NodeTypeSynchronizedBeforeSuite, RunTime: 2 * s},
			{LeafNodeType: types.NodeTypeIt, LeafNodeText: "b", State: types.SpecStateFailed, RunTime: 4 * s},
			{LeafNodeType: types.NodeTypeSynchronizedAfterSuite, RunTime: 1 * s},
		}},
	}
	var f cost.Figures
	f.AddPhase(cost.PhaseExec, 4, 1)
	AddSuitePhases(&f, reports)
	want := map[string]cost.Phase{cost.PhaseSetup: {Count: 1, Seconds: 3}, cost.PhaseSpecs: {Count: 2, Seconds: 6}, cost.PhaseTeardown: {Count: 1, Seconds: 7}, cost.PhaseExec: {Count: 4, Seconds: 1}}
	for k, w := range want {
		if f.Phases[k] != w {
			t.Errorf("%s = %+v, want %+v", k, f.Phases[k], w)
		}
	}
	var b bytes.Buffer
	PhaseTimings(&b, []Spec{{Suite: "sysctl"}}, map[string]float64{"sysctl": 20}, map[string]cost.Figures{"sysctl": f})
	out := b.String()
	for _, line := range []string{"timings sysctl: wall 20.0s", "suite setup", "exec round trip               4×     1.0s  (mean 0.25s)", "suite teardown"} {
		if !strings.Contains(out, line) {
			t.Errorf("want %q in:\n%s", line, out)
		}
	}
	if strings.Index(out, "suite setup") > strings.Index(out, "suite teardown") {
		t.Errorf("phases out of order:\n%s", out)
	}
	if strings.Contains(out, cost.PhaseExecRetried) {
		t.Errorf("a phase that never happened is printed:\n%s", out)
	}
	// A retried exec shows, after the round trips.
	f.AddPhase(cost.PhaseExecRetried, 2, 3)
	b.Reset()
	PhaseTimings(&b, []Spec{{Suite: "sysctl"}}, map[string]float64{"sysctl": 20}, map[string]cost.Figures{"sysctl": f})
	out = b.String()
	if i := strings.Index(out, "exec retried                  2×     3.0s"); i < strings.Index(out, "exec round trip") {
		t.Errorf("want the retried execs after the round trips in:\n%s", out)
	}
}

// A setup that failed on process 1 is reported once, with its cause; the
// other processes' colored echo of it is left out.
func TestSetupFailureOnceWithItsCause(t *testing.T) {
	setup := func(msg string) types.SpecReport {
		return types.SpecReport{LeafNodeType: types.NodeTypeSynchronizedBeforeSuite, State: types.SpecStateFailed,
			Failure: types.Failure{Message: msg}}
	}
	specs := FromGinkgo("primitives", []types.Report{
		{SpecReports: types.SpecReports{setup("cluster setup\nprobe DaemonSet in ns cannot create its pods: denied")}},
		{SpecReports: types.SpecReports{setup("\x1b[1m\x1b[38;5;9mSynchronizedBeforeSuite failed on Ginkgo parallel process #1\x1b[0m\n  The first SynchronizedBeforeSuite function running on Ginkgo parallel process\n  #1 failed.  This suite will now abort.")}},
	})
	if len(specs) != 1 || !strings.Contains(specs[0].Failure, "cannot create its pods") {
		t.Fatalf("want one failure with the cause, got %+v", specs)
	}
	// Alone (process 1's report missing), the echo is kept, without color.
	specs = FromGinkgo("primitives", []types.Report{{SpecReports: types.SpecReports{setup("\x1b[1mSynchronizedBeforeSuite failed on Ginkgo parallel process #1\x1b[0m")}}})
	if len(specs) != 1 || strings.Contains(specs[0].Failure, "\x1b") {
		t.Fatalf("want the echo without escapes, got %+v", specs)
	}
}
