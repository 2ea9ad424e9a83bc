package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nodeconform/nodeconform/framework/report"
)

// Bad input exits 2 with a message naming it; nothing is created.
func TestClusterUpBadInputExits2(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: worker\n  imagee: typo\n"), 0o644)
	for _, args := range [][]string{
		{"cluster", "up", "--kind-config", "/no/such/kind.yaml"},
		{"cluster", "up", "--kind-config", bad},
		{"cluster", "up", "--config", "/no/such/config.yaml"},
		{"no-such-command"},
	} {
		if code := execute(args); code != exitUsageEnv {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsageEnv)
		}
	}
}

// diff exits 1 on regressions and lost coverage (unless --allow-skips), on
// drift only with --fail-on-drift, and 2 on unreadable input.
func TestDiffExitCodes(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, r report.Results) string {
		p := filepath.Join(dir, name)
		if err := report.Write(p, r); err != nil {
			t.Fatal(err)
		}
		return p
	}
	st := func(v string) map[string]any {
		return map[string]any{report.StateEvidence: map[string]map[string]string{"kind-worker": {"cgroupVersion": v}}}
	}
	base := write("base.json", report.Results{Specs: []report.Spec{{Suite: "s", Name: "a", State: report.Passed, Evidence: st("v2")}}})
	same := write("same.json", report.Results{Specs: []report.Spec{{Suite: "s", Name: "a", State: report.Passed, Evidence: st("v2")}}})
	drift := write("drift.json", report.Results{Specs: []report.Spec{{Suite: "s", Name: "a", State: report.Passed, Evidence: st("v1")}}})
	skipped := write("skipped.json", report.Results{Specs: []report.Spec{{Suite: "s", Name: "a", State: report.Skipped, Skip: "x"}}})
	failed := write("failed.json", report.Results{Specs: []report.Spec{{Suite: "s", Name: "a", State: report.Failed, Evidence: st("v2")}}})
	for _, tc := range []struct {
		args []string
		want int
	}{
		{[]string{base, same}, exitOK},
		{[]string{base, drift}, exitOK},
		{[]string{"--fail-on-drift", base, drift}, exitFailed},
		{[]string{"--json", "--fail-on-drift", base, same}, exitOK},
		{[]string{base, skipped}, exitFailed},
		{[]string{"--allow-skips", base, skipped}, exitOK},
		{[]string{"--allow-skips", base, failed}, exitFailed},
		{[]string{base, filepath.Join(dir, "none.json")}, exitUsageEnv},
	} {
		if code := execute(append([]string{"diff"}, tc.args...)); code != tc.want {
			t.Errorf("diff %v: exit %d, want %d", tc.args, code, tc.want)
		}
	}
}

func TestProfileBadInputExits2(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := "apiVersion: nodeconform.io/v1alpha1\nkind: NodeProfile\nmetadata: {name: x}\nspec:\n  groups:\n  - name: all\n    nodeSelector: {matchLabels: {kubernetes.io/os: linux}}\n    node: {cpuCFSQuota: true}\n"
	cases := map[string][]string{
		"missing file":    {"profile", "check", "--offline", filepath.Join(dir, "absent.yaml")},
		"malformed":       {"profile", "check", "--offline", write("malformed.yaml", "apiVersion: [")},
		"unknown field":   {"profile", "check", "--offline", write("unknown.yaml", strings.Replace(good, "cpuCFSQuota", "cpuCFSQuotta", 1))},
		"bad selector":    {"profile", "check", "--offline", write("selector.yaml", strings.Replace(good, "{matchLabels: {kubernetes.io/os: linux}}", "{matchExpressions: [{key: a, operator: Near}]}", 1))},
		"run bad profile": {"run", "--profile", write("run.yaml", strings.Replace(good, "kind: NodeProfile", "kind: Profile", 1))},
		"run bad --nodes": {"run", "--nodes", "a in (", "--profile", write("ok.yaml", good)},
	}
	for name, args := range cases {
		if code := execute(args); code != exitUsageEnv {
			t.Errorf("%s: exit %d, want %d", name, code, exitUsageEnv)
		}
	}
	if code := execute([]string{"profile", "check", "--offline", write("good.yaml", good)}); code != exitOK {
		t.Errorf("good profile: exit %d", code)
	}
}
