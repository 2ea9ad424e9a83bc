package runner

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"

	"github.com/nodeconform/nodeconform/framework/access"
	"github.com/nodeconform/nodeconform/framework/report"
)

func valid() Options {
	return Options{ReportDir: "reports", Timeout: time.Hour}
}

func TestValidateDefaults(t *testing.T) {
	o := valid()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(o.Suites, ",") != strings.Join(Suites, ",") || o.Mode != ModeApply {
		t.Fatalf("%+v", o)
	}
	o = valid()
	o.Kubeconfig = "/k"
	if err := o.Validate(); err != nil || o.Mode != ModeVerify {
		t.Fatalf("existing clusters default to verify: %+v %v", o, err)
	}
}

func TestValidateRejects(t *testing.T) {
	cases := map[string]func(*Options){
		"unknown suite":    func(o *Options) { o.Suites = []string{"nope"} },
		"duplicate suite":  func(o *Options) { o.Suites = []string{"cluster", "cluster"} },
		"bad focus":        func(o *Options) { o.Focus = []string{"("} },
		"bad label filter": func(o *Options) { o.LabelFilter = "((" },
		"bad mode":         func(o *Options) { o.Mode = "yolo" },
		"no timeout":       func(o *Options) { o.Timeout = 0 },
		"context alone":    func(o *Options) { o.Context = "c" },
		"no report dir":    func(o *Options) { o.ReportDir = "" },
		"negative procs":   func(o *Options) { o.Procs = -1 },
	}
	for name, mutate := range cases {
		o := valid()
		mutate(&o)
		err := o.Validate()
		var ue UsageError
		if err == nil || !errors.As(err, &ue) {
			t.Errorf("%s: want a usage error, got %v", name, err)
		}
	}
}

func TestSuiteArgs(t *testing.T) {
	o := valid()
	o.Focus, o.Skip, o.LabelFilter = []string{"DNS"}, []string{"slow"}, "!disruptive"
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if o.Procs < 2 {
		t.Errorf("default procs %d: specs would not run in parallel", o.Procs)
	}
	list := o.SuiteArgs("cluster", "/b/cluster.test", 10*time.Minute)
	if list[0] != "run" || list[len(list)-1] != "/b/cluster.test" {
		t.Errorf("want `run [flags] BINARY`, got %v", list)
	}
	args := strings.Join(list, " ")
	if !filepath.IsAbs(o.ReportDir) {
		t.Errorf("report dir %q not made absolute: the suites run elsewhere", o.ReportDir)
	}
	for _, want := range []string{"--procs=", "--focus=DNS", "--skip=slow", "--label-filter=!disruptive", "--junit-report=" + filepath.Join(o.ReportDir, "junit-cluster.xml"), "--json-report=" + filepath.Join(o.ReportDir, "cluster.json"), "--timeout=10m0s", " -v "} {
		if !strings.Contains(args, want) {
			t.Errorf("args lack %s: %s", want, args)
		}
	}
	o.Quiet = true
	if args := strings.Join(o.SuiteArgs("cluster", "/b/cluster.test", time.Minute), " "); !strings.Contains(args, "--succinct") || strings.Contains(args, " -v ") {
		t.Errorf("quiet args: %s", args)
	}
	env := strings.Join(o.Env("kindname"), "\n")
	if !strings.Contains(env, "NODECONFORM_CLUSTER=kindname") || !strings.Contains(env, "NODECONFORM_MODE=") {
		t.Errorf("env: %s", env)
	}
}

func TestBuildEnv(t *testing.T) {
	for in, want := range map[string]string{
		"":                           "GOFLAGS=-trimpath -buildvcs=false",
		"-mod=mod":                   "GOFLAGS=-mod=mod -trimpath -buildvcs=false",
		" -trimpath -buildvcs=true ": "GOFLAGS=-trimpath -buildvcs=false",
	} {
		got := BuildEnv(in)
		if len(got) != 2 || got[0] != "CGO_ENABLED=0" || got[1] != want {
			t.Errorf("BuildEnv(%q) = %q, want [CGO_ENABLED=0 %s]", in, got, want)
		}
	}
}

func TestScheduleRunsConcurrentSuitesFirst(t *testing.T) {
	o := Options{Suites: []string{"encapsulation", "sysctl", "cgroups", "cluster"}}
	side, alone := o.schedule()
	if strings.Join(side, ",") != "sysctl,cluster" || strings.Join(alone, ",") != "encapsulation,cgroups" {
		t.Fatalf("side %v, alone %v", side, alone)
	}
	o.Sequential = true
	side, alone = o.schedule()
	if len(side) != 0 || strings.Join(alone, ",") != "encapsulation,sysctl,cgroups,cluster" {
		t.Fatalf("--sequential: side %v, alone %v", side, alone)
	}
}

// NodeAccess must name exactly the suites registered WithNodeAccess: a
// suite missing from it would deploy a probe of its own beside the run's
// (slower, not wrong); one listed without needing it would start one for
// nothing.
func TestNodeAccessMatchesTheSuites(t *testing.T) {
	for _, s := range Suites {
		src, err := os.ReadFile(filepath.Join("..", "..", "suites", s, s+"_suite_test.go"))
		if err != nil {
			t.Fatal(err)
		}
		if uses := strings.Contains(string(src), "e2e.WithNodeAccess()"); uses != NodeAccess[s] {
			t.Errorf("suite %s: WithNodeAccess %v, runner.NodeAccess %v", s, uses, NodeAccess[s])
		}
	}
	if (&Options{Suites: []string{"cluster"}}).needsProbe() {
		t.Error("the cluster suite alone needs no probe")
	}
	if !(&Options{Suites: []string{"cluster", "cgroups"}}).needsProbe() {
		t.Error("a run with cgroups needs the probe")
	}
}

func TestSuiteSpecsReportsUnreportedFailures(t *testing.T) {
	passed := types.Report{SuiteSucceeded: true, SpecReports: types.SpecReports{
		{LeafNodeType: types.NodeTypeIt, LeafNodeText: "works", State: types.SpecStatePassed}}}
	failed := types.Report{SpecReports: types.SpecReports{
		{LeafNodeType: types.NodeTypeIt, LeafNodeText: "breaks", State: types.SpecStateFailed}}}
	exit1 := errors.New("exit status 1")
	suiteFailure := func(specs []report.Spec) string {
		for _, s := range specs {
			if s.Name == "[suite]" && s.State == report.Failed {
				return s.Failure
			}
		}
		return ""
	}
	cases := []struct {
		name    string
		reports []types.Report
		loadErr error
		runErr  error
		want    string // in the [suite] failure; "" for none
	}{
		{name: "passed", reports: []types.Report{passed}},
		{name: "a spec failed", reports: []types.Report{failed}, runErr: exit1},
		{name: "no report", loadErr: errors.New("no such file"), runErr: exit1, want: "no report"},
		// Ginkgo's CLI after its processes refused the configuration.
		{name: "empty report", reports: []types.Report{}, runErr: exit1, want: "ended before reporting"},
		{name: "failed with every spec passed", reports: []types.Report{passed}, runErr: exit1, want: "no spec did"},
	}
	for _, c := range cases {
		got := suiteFailure(suiteSpecs("cluster", c.reports, c.loadErr, c.runErr, "in cluster.log"))
		switch {
		case c.want == "" && got != "":
			t.Errorf("%s: unexpected [suite] failure %q", c.name, got)
		case c.want != "" && !strings.Contains(got, c.want):
			t.Errorf("%s: [suite] failure %q, want it to say %q", c.name, got, c.want)
		case c.want != "" && !strings.Contains(got, "cluster.log"):
			t.Errorf("%s: %q does not say where the output is", c.name, got)
		}
	}
}

// The permission table's probe suites are the runner's: a suite that
// starts using the probe needs its DaemonSet and exec rights checked.
func TestProbeSuitesMatchNodeAccess(t *testing.T) {
	for _, s := range Suites {
		if NodeAccess[s] != slices.Contains(access.ProbeSuites, s) {
			t.Errorf("suite %s: runner.NodeAccess %v, access.ProbeSuites %v", s, NodeAccess[s], access.ProbeSuites)
		}
	}
	for _, s := range access.ProbeSuites {
		if !slices.Contains(Suites, s) {
			t.Errorf("access.ProbeSuites names %s, not a suite", s)
		}
	}
}
