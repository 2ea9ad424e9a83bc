package verdict

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/onsi/gomega"
)

func TestEachJudgesEveryNodeOnItsOwn(t *testing.T) {
	var running, most atomic.Int32
	res := Each(context.Background(), Input{
		Nodes:       []string{"w2", "cp", "w1", "broken", "nohuge"},
		Unreachable: map[string]string{"broken": "FailedCreatePodSandBox: runc create failed"},
		Parallel:    2,
	}, func(ctx context.Context, g gomega.Gomega, node string) any {
		n := running.Add(1)
		defer running.Add(-1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		time.Sleep(10 * time.Millisecond)
		if node == "nohuge" {
			SkipNode("no 2Mi huge pages")
		}
		g.Expect(node).NotTo(gomega.Equal("w2"), "cpuCFSQuota: wanted true, found false")
		return map[string]string{"read": node}
	})
	if most.Load() > 2 {
		t.Errorf("%d checks ran at once, bound 2", most.Load())
	}
	got := map[string]Result{}
	for _, r := range res {
		got[r.Node] = r
	}
	if res[0].Node != "broken" || len(res) != 5 {
		t.Errorf("results not sorted by node or missing: %+v", res)
	}
	if got["cp"].State != Passed || got["w1"].State != Passed || got["w1"].Evidence == nil {
		t.Errorf("healthy nodes: %+v %+v", got["cp"], got["w1"])
	}
	if got["nohuge"].State != Skipped || got["nohuge"].Finding != "no 2Mi huge pages" {
		t.Errorf("skipped node: %+v", got["nohuge"])
	}
	lines := Lines(res)
	if len(lines) != 2 {
		t.Fatalf("lines %v", lines)
	}
	if lines[0] != "node broken: cannot be examined: FailedCreatePodSandBox: runc create failed" {
		t.Errorf("unreachable line %q", lines[0])
	}
	if !strings.HasPrefix(lines[1], "node w2: cpuCFSQuota: wanted true, found false Expected") || strings.Contains(lines[1], "\n") {
		t.Errorf("failure line %q", lines[1])
	}
}

func TestEachStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := Each(ctx, Input{Nodes: []string{"a", "b"}, Parallel: 1}, func(ctx context.Context, g gomega.Gomega, node string) any {
		<-ctx.Done()
		return nil
	})
	for _, r := range res {
		if r.State != Failed {
			t.Errorf("%+v", r)
		}
	}
}

func TestFindingLeavesOutAddresses(t *testing.T) {
	rs := Each(context.Background(), Input{Nodes: []string{"a"}, Parallel: 1}, func(_ context.Context, g gomega.Gomega, _ string) any {
		g.Expect(errors.New("/system.slice/containerd.service is not a pod cgroup")).NotTo(gomega.HaveOccurred())
		return nil
	})
	got := rs[0].Finding
	if got != "/system.slice/containerd.service is not a pod cgroup" {
		t.Errorf("finding %q", got)
	}
	for in, want := range map[string]string{
		// NotTo(HaveOccurred(), description), a joined error of two lines.
		"pids of pod p\nUnexpected error:\n    <*errors.joinError | 0x3e4ae3b97640>: \n    first\n    second\n    {errs: [...]}\noccurred": "pids of pod p: first second",
		// Succeed() without a description.
		"Expected success, but got an error:\n    <*errors.errorString | 0x1>: \n    admission changed it\n    {s: \"admission changed it\"}": "admission changed it",
		// Not an error's framing: folded as it is.
		"Expected\n    <int>: 1\nto equal\n    <int>: 2": "Expected <int>: 1 to equal <int>: 2",
	} {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
	if got := oneLine("Expected\n    <[]string | len:2, cap:2>: [\"a\", \"b\"]\nto contain"); got != `Expected <[]string | len:2, cap:2>: ["a", "b"] to contain` {
		t.Errorf("a slice's length is kept: %q", got)
	}
}

func TestFailNodeWithKeepsEvidence(t *testing.T) {
	rs := Each(context.Background(), Input{Nodes: []string{"a", "b"}, Parallel: 2}, func(_ context.Context, _ gomega.Gomega, n string) any {
		state := map[string]string{"kubeletVersion": "v1.36.3"}
		if n == "a" {
			FailNodeWith("kubeletVersion: wanted v1.37, found v1.36.3", state)
		}
		FailNode("no evidence")
		return state
	})
	if rs[0].State != Failed || rs[0].Evidence == nil || rs[0].Evidence.(map[string]string)["kubeletVersion"] != "v1.36.3" {
		t.Errorf("FailNodeWith: %+v", rs[0])
	}
	if rs[1].State != Failed || rs[1].Evidence != nil {
		t.Errorf("FailNode: %+v", rs[1])
	}
}

func TestFindingNamesTheNodeOnce(t *testing.T) {
	rs := Each(context.Background(), Input{Nodes: []string{"w2"}}, func(_ context.Context, g gomega.Gomega, n string) any {
		g.Expect(fmt.Errorf("node %s: cgroup-of: no process", n)).NotTo(gomega.HaveOccurred())
		return nil
	})
	if got := Lines(rs); len(got) != 1 || got[0] != "node w2: cgroup-of: no process" {
		t.Errorf("lines %q", got)
	}
}

// A note travels with the node's failure, and an empty one changes
// nothing.
func TestNotedFailureCarriesTheNote(t *testing.T) {
	rs := Each(context.Background(), Input{Nodes: []string{"a", "b"}, Parallel: 2}, func(_ context.Context, g gomega.Gomega, n string) any {
		note := map[string]string{"a": "container s added by admission"}[n]
		Noted(g, note).Expect(1).To(gomega.Equal(2), "pod p not OOMKilled")
		return nil
	})
	if rs[0].State != Failed || !strings.Contains(rs[0].Finding, "pod p not OOMKilled") || !strings.HasSuffix(rs[0].Finding, "(container s added by admission)") {
		t.Errorf("noted: %+v", rs[0])
	}
	if rs[1].State != Failed || strings.Contains(rs[1].Finding, "(") {
		t.Errorf("no note: %+v", rs[1])
	}
}
