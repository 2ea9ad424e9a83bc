// Package report turns Ginkgo's per-suite reports into what CI and people
// read: one JUnit file, results.json with the evidence of every spec, a
// summary table, and the diff of two runs for pre/post-upgrade checks.
package report

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/onsi/ginkgo/v2/reporters"
	"github.com/onsi/ginkgo/v2/types"

	"github.com/nodeconform/nodeconform/framework/cost"
)

// Spec is one spec's outcome and evidence.
type Spec struct {
	Suite    string            `json:"suite"`
	Name     string            `json:"name"`
	Labels   []string          `json:"labels,omitempty"`
	State    string            `json:"state"`
	Duration float64           `json:"durationSeconds"`
	Failure  string            `json:"failure,omitempty"`
	Skip     string            `json:"skipReason,omitempty"`
	Evidence map[string]any    `json:"evidence,omitempty"`
	Raw      map[string]string `json:"-"`
}

// Results is the content of results.json.
type Results struct {
	Cluster   string    `json:"cluster,omitempty"`
	Mode      string    `json:"mode,omitempty"`
	StartedAt time.Time `json:"startedAt"`
	// SuiteSeconds is each suite's wall time, setup and cleanup included.
	SuiteSeconds map[string]float64 `json:"suiteSeconds,omitempty"`
	// SuiteCost is what each suite asked of the cluster.
	SuiteCost map[string]cost.Figures `json:"suiteCost,omitempty"`
	// RunSeconds is the whole run's wall time, from the start to the
	// reports: the cluster check, the build and the suites.
	RunSeconds float64 `json:"runSeconds,omitempty"`
	// BuildSeconds is the one build of every selected suite's binary,
	// made beside the cluster check at the run's start.
	BuildSeconds float64 `json:"buildSeconds,omitempty"`
	// NamespaceWaitSeconds is the wait, after the last suite, until the
	// run's namespaces were gone (nothing left behind): part of
	// RunSeconds.
	NamespaceWaitSeconds float64 `json:"namespaceWaitSeconds,omitempty"`
	// SideBySide are the suites run at the same time, before the others.
	SideBySide []string `json:"sideBySide,omitempty"`
	Specs      []Spec   `json:"specs"`
}

// Outcome states as written in results.json.
const (
	Passed  = "passed"
	Failed  = "failed"
	Skipped = "skipped"
	// Interrupted: the spec was stopped (Ctrl-C, SIGTERM, a timeout or an
	// Abort) before it could pass or fail; it proved nothing.
	Interrupted = "interrupted"
)

// SkipInterrupted is the skip reason of a spec Ginkgo did not start because
// its suite's run was interrupted.
const SkipInterrupted = "not run: the run was interrupted"

// skipGeneric is the skip reason of a skipped spec with no message of its own.
const skipGeneric = "filtered out (focus, skip or label filter) or skipped by an earlier failure"

// runInterrupted reports whether a suite's run was interrupted: Ginkgo says
// so in SpecialSuiteFailureReasons ("Interrupted by User", "Interrupted by
// Other Ginkgo Process"), or a spec of it was interrupted or aborted.
func runInterrupted(r types.Report) bool {
	for _, reason := range r.SpecialSuiteFailureReasons {
		if strings.Contains(reason, "Interrupted") {
			return true
		}
	}
	for _, sr := range r.SpecReports {
		if sr.State.Is(types.SpecStateInterrupted | types.SpecStateAborted) {
			return true
		}
	}
	return false
}

// FromGinkgo converts the spec reports of one suite. Setup and cleanup
// nodes are kept only when they failed (a failed BeforeSuite explains why
// no spec ran). Interrupted and aborted specs get State Interrupted with
// their failure message; in a suite whose run was interrupted, skipped specs
// without a reason of their own get SkipInterrupted (Ginkgo does not tell
// them apart from specs a filter left out, which then carry it too).
func FromGinkgo(suite string, reports []types.Report) []Spec {
	var out []Spec
	// A setup that failed on process 1 fails every other process with
	// "SynchronizedBeforeSuite failed on Ginkgo parallel process #1" (in
	// color): that echo is left out when process 1's own failure, the one
	// with the cause, is there.
	ownSetupFailure := false
	for _, r := range reports {
		for _, sr := range r.SpecReports {
			if sr.LeafNodeType == types.NodeTypeSynchronizedBeforeSuite && sr.State.Is(types.SpecStateFailureStates) && !isSetupEcho(sr) {
				ownSetupFailure = true
			}
		}
	}
	for _, r := range reports {
		interrupted := runInterrupted(r)
		for _, sr := range r.SpecReports {
			if sr.LeafNodeType != types.NodeTypeIt && !sr.State.Is(types.SpecStateFailureStates) {
				continue
			}
			if ownSetupFailure && sr.LeafNodeType == types.NodeTypeSynchronizedBeforeSuite && isSetupEcho(sr) {
				continue
			}
			s := Spec{Suite: suite, Name: sr.FullText(), Labels: sr.Labels(), Duration: sr.RunTime.Seconds()}
			if s.Name == "" {
				s.Name = "[" + sr.LeafNodeType.String() + "]"
			}
			switch {
			case sr.State == types.SpecStatePassed:
				s.State = Passed
			case sr.State == types.SpecStateSkipped || sr.State == types.SpecStatePending:
				s.State = Skipped
				s.Skip = strings.TrimSpace(sr.Failure.Message)
				if s.Skip == "" {
					s.Skip = skipGeneric
					if interrupted {
						s.Skip = SkipInterrupted
					}
				}
			default:
				s.State = Failed
				if sr.State.Is(types.SpecStateInterrupted | types.SpecStateAborted) {
					s.State = Interrupted
				}
				s.Failure = ansi.ReplaceAllString(sr.Failure.Message, "")
				if sr.Failure.Location.FileName != "" {
					s.Failure += fmt.Sprintf(" (%s:%d)", sr.Failure.Location.FileName, sr.Failure.Location.LineNumber)
				}
			}
			for _, e := range sr.ReportEntries {
				if s.Evidence == nil {
					s.Evidence = map[string]any{}
				}
				var v any
				if err := json.Unmarshal([]byte(e.Value.Representation), &v); err != nil {
					v = e.Value.Representation
				}
				s.Evidence[e.Name] = v
			}
			out = append(out, s)
		}
	}
	return out
}

// ansi matches the color escapes Ginkgo writes into some of its own
// failure messages.
var ansi = regexp.MustCompile("\x1b\\[[0-9;]*m")

// isSetupEcho reports whether sr is a process's report of another
// process's failed SynchronizedBeforeSuite.
func isSetupEcho(sr types.SpecReport) bool {
	return strings.Contains(ansi.ReplaceAllString(sr.Failure.Message, ""), "SynchronizedBeforeSuite failed on Ginkgo parallel process #")
}

// LoadGinkgoJSON reads a Ginkgo --json-report file.
func LoadGinkgoJSON(path string) ([]types.Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var reports []types.Report
	if err := json.Unmarshal(data, &reports); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return reports, nil
}

// Write stores results as indented JSON.
func Write(path string, r Results) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// Load reads a results.json.
func Load(path string) (Results, error) {
	var r Results
	data, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%s is not a nodeconform results.json: %w", path, err)
	}
	return r, nil
}

// MergeJUnit concatenates the test suites of several JUnit files into one,
// with unreported: failures no suite's own file holds (a suite that ended
// without reporting), each a test suite of one failed test case, so that a
// reader of the JUnit alone sees them.
func MergeJUnit(paths []string, unreported []Spec, dst string) error {
	var all reporters.JUnitTestSuites
	for _, s := range unreported {
		all.TestSuites = append(all.TestSuites, reporters.JUnitTestSuite{Name: s.Suite, Tests: 1, Failures: 1,
			TestCases: []reporters.JUnitTestCase{{Name: s.Name, Classname: s.Suite, Status: "failed",
				Failure: &reporters.JUnitFailure{Message: s.Failure, Type: "failed", Description: s.Failure}}}})
		all.Tests++
		all.Failures++
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var s reporters.JUnitTestSuites
		if err := xml.Unmarshal(data, &s); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		all.TestSuites = append(all.TestSuites, s.TestSuites...)
		all.Tests += s.Tests
		all.Disabled += s.Disabled
		all.Errors += s.Errors
		all.Failures += s.Failures
		all.Time += s.Time
	}
	data, err := xml.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(dst, append([]byte(xml.Header), data...), 0o644)
}

// Counts tallies outcomes per suite.
type Counts struct{ Passed, Failed, Skipped, Interrupted int }

func (c *Counts) add(state string) {
	switch state {
	case Passed:
		c.Passed++
	case Failed:
		c.Failed++
	case Interrupted:
		c.Interrupted++
	default:
		c.Skipped++
	}
}

// Timings prints each suite's wall time, in run order.
func Timings(w io.Writer, specs []Spec, seconds map[string]float64) {
	if len(seconds) == 0 {
		return
	}
	var parts []string
	for _, suite := range suiteOrder(specs) {
		if t, ok := seconds[suite]; ok {
			parts = append(parts, fmt.Sprintf("%s %s", suite, time.Duration(t*float64(time.Second)).Round(100*time.Millisecond)))
		}
	}
	fmt.Fprintf(w, "wall time: %s\n", strings.Join(parts, ", "))
}

// RunTimings prints the run's wall time, its one build of the suite
// binaries and which suites ran side by side (their wall times overlap,
// so the suites' times add up to more than the run's).
func RunTimings(w io.Writer, res Results) {
	if res.RunSeconds == 0 {
		return
	}
	round := func(s float64) time.Duration {
		return time.Duration(s * float64(time.Second)).Round(100 * time.Millisecond)
	}
	line := fmt.Sprintf("run: %s in all; suite binaries built in %s beside the cluster check; the run's namespaces gone %s after the last suite", round(res.RunSeconds), round(res.BuildSeconds), round(res.NamespaceWaitSeconds))
	if len(res.SideBySide) > 0 {
		line += "; side by side: " + strings.Join(res.SideBySide, ", ")
	}
	fmt.Fprintln(w, line)
}

// suiteOrder lists the suites of specs once each, in run order.
func suiteOrder(specs []Spec) []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range specs {
		if !seen[s.Suite] {
			seen[s.Suite] = true
			out = append(out, s.Suite)
		}
	}
	return out
}

// AddSuitePhases adds the suite's setup, specs and teardown times, read
// from its Ginkgo reports, to f: setup as the slowest process had it
// (the others wait for it), the specs summed, and teardown as the
// slowest process ran its own teardown code.
func AddSuitePhases(f *cost.Figures, reports []types.Report) {
	var setup, teardown time.Duration
	var specs time.Duration
	var n int64
	for _, r := range reports {
		for _, sr := range r.SpecReports {
			switch sr.LeafNodeType {
			case types.NodeTypeSynchronizedBeforeSuite, types.NodeTypeBeforeSuite:
				setup = max(setup, sr.RunTime)
			case types.NodeTypeSynchronizedAfterSuite, types.NodeTypeAfterSuite:
				teardown = max(teardown, ownTime(sr))
			case types.NodeTypeIt:
				if sr.State != types.SpecStateSkipped || sr.RunTime > 0 {
					specs += sr.RunTime
					n++
				}
			}
		}
	}
	f.AddPhase(cost.PhaseSetup, 1, setup.Seconds())
	f.AddPhase(cost.PhaseSpecs, n, specs.Seconds())
	f.AddPhase(cost.PhaseTeardown, 1, teardown.Seconds())
}

// ownTime is the time a synchronized suite node spent in its own code:
// the sum of its node bodies' durations. Its run time also counts process
// 1's wait for every other process to finish its specs before the
// teardown that runs once (70 s of a 71 s sysctl teardown beside three
// other suites). Reports without node events fall back to the run time.
func ownTime(sr types.SpecReport) time.Duration {
	var own time.Duration
	ends := 0
	for _, ev := range sr.SpecEvents {
		if ev.SpecEventType == types.SpecEventNodeEnd {
			own += ev.Duration
			ends++
		}
	}
	if ends == 0 {
		return sr.RunTime
	}
	return own
}

// phaseOrder is the order PhaseTimings prints the phases in.
var phaseOrder = []string{cost.PhaseSetup, cost.PhaseProbeStart, cost.PhaseSpecs, cost.PhasePodReady, cost.PhaseExec, cost.PhaseExecRetried, cost.PhaseSessionOpen, cost.PhaseLogRead, cost.PhaseNamespaceGone, cost.PhaseTeardown}

// PhaseTimings prints, per suite, its wall time and where it went
// (count, total and mean of each kind of step).
func PhaseTimings(w io.Writer, specs []Spec, seconds map[string]float64, costs map[string]cost.Figures) {
	for _, suite := range suiteOrder(specs) {
		c, ok := costs[suite]
		if !ok {
			continue
		}
		fmt.Fprintf(w, "timings %s: wall %.1fs\n", suite, seconds[suite])
		for _, k := range phaseOrder {
			p, ok := c.Phases[k]
			if !ok || p.Count == 0 {
				continue
			}
			fmt.Fprintf(w, "  %-26s %4d× %7.1fs  (mean %.2fs)\n", k, p.Count, p.Seconds, p.Seconds/float64(p.Count))
		}
	}
}

// Costs prints what each suite asked of the cluster, in run order.
func Costs(w io.Writer, specs []Spec, costs map[string]cost.Figures) {
	if len(costs) == 0 {
		return
	}
	var parts []string
	for _, suite := range suiteOrder(specs) {
		if c, ok := costs[suite]; ok {
			parts = append(parts, fmt.Sprintf("%s %d nodes %d pods %d requests (%d writes)", suite, c.Nodes, c.PodsCreated, c.APIRequests, c.APIWrites))
		}
	}
	fmt.Fprintf(w, "cost: %s\n", strings.Join(parts, "; "))
}

// Summary prints a table per suite, the skip reasons, each failed or
// interrupted spec with FailureBrief of its failure, and a closing line
// "nodeconform: N passed, N failed, N skipped" (", N interrupted" appended
// when there are any). The table has an INTERRUPTED column only then too.
func Summary(w io.Writer, specs []Spec) {
	bySuite := map[string]*Counts{}
	var suites []string
	reasons := map[string]map[string]int{}
	total := Counts{}
	for _, s := range specs {
		c, ok := bySuite[s.Suite]
		if !ok {
			c = &Counts{}
			bySuite[s.Suite] = c
			suites = append(suites, s.Suite)
		}
		c.add(s.State)
		total.add(s.State)
		if s.State != Passed && s.State != Failed && s.State != Interrupted {
			if reasons[s.Suite] == nil {
				reasons[s.Suite] = map[string]int{}
			}
			reasons[s.Suite][firstLine(s.Skip)]++
		}
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if total.Interrupted > 0 {
		fmt.Fprintln(tw, "SUITE\tPASSED\tFAILED\tSKIPPED\tINTERRUPTED")
	} else {
		fmt.Fprintln(tw, "SUITE\tPASSED\tFAILED\tSKIPPED")
	}
	for _, s := range suites {
		c := bySuite[s]
		if total.Interrupted > 0 {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", s, c.Passed, c.Failed, c.Skipped, c.Interrupted)
		} else {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\n", s, c.Passed, c.Failed, c.Skipped)
		}
	}
	tw.Flush()
	for _, s := range suites {
		var rs []string
		for r, n := range reasons[s] {
			rs = append(rs, fmt.Sprintf("  %s: skipped %d× — %s", s, n, r))
		}
		sort.Strings(rs)
		for _, r := range rs {
			fmt.Fprintln(w, r)
		}
	}
	for _, s := range specs {
		word := "FAILED"
		switch s.State {
		case Failed:
		case Interrupted:
			word = "INTERRUPTED"
		default:
			continue
		}
		fmt.Fprintf(w, "%s %s: %s\n", word, s.Suite, s.Name)
		for _, l := range FailureBrief(s.Failure) {
			fmt.Fprintf(w, "         %s\n", l)
		}
	}
	// A plain closing line CI systems and people can read at a glance.
	fmt.Fprintf(w, "nodeconform: %d passed, %d failed, %d skipped", total.Passed, total.Failed, total.Skipped)
	if total.Interrupted > 0 {
		fmt.Fprintf(w, ", %d interrupted", total.Interrupted)
	}
	fmt.Fprintln(w)
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// AnyFailed reports whether any spec failed or was interrupted.
func AnyFailed(specs []Spec) bool {
	for _, s := range specs {
		if s.State == Failed || s.State == Interrupted {
			return true
		}
	}
	return false
}

// Nodes prints one line per node judged node by node ("nodes:" then each
// node's passed, failed and skipped verdicts and its cgroup version,
// kubelet version and container runtime where a spec recorded them),
// from the per-node results the specs recorded:
// which node a run proved something on, without opening results.json.
func Nodes(w io.Writer, specs []Spec) {
	type tally struct {
		Counts
		cgroup, kubelet, runtime string
	}
	by := map[string]*tally{}
	for _, s := range specs {
		list, _ := s.Evidence["nodes"].([]any)
		for _, item := range list {
			m, _ := item.(map[string]any)
			name, _ := m["node"].(string)
			state, _ := m["state"].(string)
			if name == "" || state == "" {
				continue
			}
			t := by[name]
			if t == nil {
				t = &tally{}
				by[name] = t
			}
			t.add(state)
			if ev, ok := m["evidence"].(map[string]any); ok {
				if t.cgroup == "" {
					switch v := ev["cgroupVersion"].(type) {
					case float64:
						t.cgroup = fmt.Sprintf("v%d", int(v))
					case string:
						t.cgroup = v
					}
				}
				if v, _ := ev["kubeletVersion"].(string); v != "" && t.kubelet == "" {
					t.kubelet = v
				}
				if v, _ := ev["containerRuntimeVersion"].(string); v != "" && t.runtime == "" {
					t.runtime = v
				}
			}
		}
	}
	if len(by) == 0 {
		return
	}
	names := make([]string, 0, len(by))
	for n := range by {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		t := by[n]
		var about []string
		if t.cgroup != "" {
			about = append(about, "cgroup "+t.cgroup)
		}
		if t.kubelet != "" {
			about = append(about, "kubelet "+t.kubelet)
		}
		if t.runtime != "" {
			about = append(about, t.runtime)
		}
		label := n
		if len(about) > 0 {
			label += " (" + strings.Join(about, ", ") + ")"
		}
		parts = append(parts, fmt.Sprintf("%s %d passed, %d failed, %d skipped", label, t.Passed, t.Failed, t.Skipped))
	}
	fmt.Fprintf(w, "nodes: %s\n", strings.Join(parts, "; "))
}
