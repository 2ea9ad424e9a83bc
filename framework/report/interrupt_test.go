package report

import (
	"bytes"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"
)

func TestFromGinkgoInterrupted(t *testing.T) {
	it := func(text string, state types.SpecState, msg string) types.SpecReport {
		return types.SpecReport{LeafNodeType: types.NodeTypeIt, LeafNodeText: text, State: state, Failure: types.Failure{Message: msg}}
	}
	interrupted := types.Report{SpecialSuiteFailureReasons: []string{"Interrupted by User"}, SpecReports: types.SpecReports{
		it("passes", types.SpecStatePassed, ""),
		it("runs", types.SpecStateInterrupted, "Interrupted by User"),
		it("next", types.SpecStateSkipped, ""),
		it("own skip", types.SpecStateSkipped, "needs 2 workers"),
	}}
	aborted := types.Report{SpecReports: types.SpecReports{
		it("aborts", types.SpecStateAborted, "no cluster"),
		it("after abort", types.SpecStateSkipped, ""),
	}}
	plain := types.Report{SpecReports: types.SpecReports{it("filtered", types.SpecStateSkipped, "")}}
	reasonOnly := types.Report{SpecialSuiteFailureReasons: []string{"Interrupted by Other Ginkgo Process"}, SpecReports: types.SpecReports{it("not started", types.SpecStateSkipped, "")}}

	specs := FromGinkgo("s", []types.Report{interrupted, aborted, plain, reasonOnly})
	byName := map[string]Spec{}
	for _, s := range specs {
		byName[s.Name] = s
	}
	for name, want := range map[string][2]string{
		"passes":      {Passed, ""},
		"runs":        {Interrupted, ""},
		"next":        {Skipped, SkipInterrupted},
		"own skip":    {Skipped, "needs 2 workers"},
		"aborts":      {Interrupted, ""},
		"after abort": {Skipped, SkipInterrupted},
		"filtered":    {Skipped, skipGeneric},
		"not started": {Skipped, SkipInterrupted},
	} {
		s := byName[name]
		if s.State != want[0] || s.Skip != want[1] {
			t.Errorf("%s: state %q skip %q, want %q %q", name, s.State, s.Skip, want[0], want[1])
		}
	}
	if byName["runs"].Failure != "Interrupted by User" || byName["aborts"].Failure != "no cluster" {
		t.Errorf("interrupted specs lost their message: %+v %+v", byName["runs"], byName["aborts"])
	}
	if !AnyFailed([]Spec{byName["passes"], byName["runs"]}) || AnyFailed([]Spec{byName["passes"], byName["next"]}) {
		t.Error("AnyFailed must be true for an interrupted spec, false for passed and skipped")
	}

	var buf bytes.Buffer
	Summary(&buf, specs)
	out := buf.String()
	for _, want := range []string{
		"SUITE  PASSED  FAILED  SKIPPED  INTERRUPTED\ns      1       0       5        2\n",
		"s: skipped 3× — " + SkipInterrupted,
		"INTERRUPTED s: runs\n         Interrupted by User\n",
		"INTERRUPTED s: aborts\n         no cluster\n",
		"nodeconform: 1 passed, 0 failed, 5 skipped, 2 interrupted\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}

	buf.Reset()
	Summary(&buf, []Spec{byName["passes"]})
	if out := buf.String(); strings.Contains(out, "nterrupted") || strings.Contains(out, "INTERRUPTED") || !strings.HasSuffix(out, "nodeconform: 1 passed, 0 failed, 0 skipped\n") {
		t.Errorf("a run without interruptions mentions them:\n%s", out)
	}
}
