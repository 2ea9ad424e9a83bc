// Package verdict judges a property on every selected node and gives each
// node its own result: a spec's failure lists each failing node with what
// was wanted and found, and one node that cannot be examined is a finding
// on that node, never a reason to skip the others.
package verdict

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/onsi/ginkgo/v2"
	"github.com/onsi/gomega"

	"github.com/nodeconform/nodeconform/framework/evidence"
)

// Result is one node's verdict on one property.
type Result struct {
	Node string `json:"node"`
	// State is passed, failed or skipped.
	State string `json:"state"`
	// Finding is why it failed or was skipped, one sentence.
	Finding  string `json:"finding,omitempty"`
	Evidence any    `json:"evidence,omitempty"`
}

// States of a node's Result.
const (
	Passed  = "passed"
	Failed  = "failed"
	Skipped = "skipped"
)

// Input says which nodes to judge and how.
type Input struct {
	// Nodes to judge, by name.
	Nodes []string
	// Unreachable maps a node to why it cannot be examined; such nodes
	// fail without the check running on them.
	Unreachable map[string]string
	// Parallel bounds how many nodes are checked at once (0 or less: 1).
	Parallel int
}

// Check is the per-node work. It asserts with g (any failure ends this
// node's check only) and returns the node's evidence; SkipNode skips it.
type Check func(ctx context.Context, g gomega.Gomega, node string) any

type failure struct {
	msg      string
	evidence any
}
type skip struct{ reason string }

// SkipNode ends the running node's check as skipped (the property does not
// apply there: no huge pages, no allowlisted sysctl).
func SkipNode(reason string) { panic(skip{reason}) }

// FailNode ends the running node's check as failed with msg, a sentence
// naming the property, the wanted and the found value.
func FailNode(msg string) { panic(failure{msg: msg}) }

// FailNodeWith is FailNode keeping what was read on the node as its
// evidence (a failed node's state is what its reader needs most).
func FailNodeWith(msg string, evidence any) { panic(failure{msg: msg, evidence: evidence}) }

// Noted is a Gomega for a node's check whose failures end the check as
// the g Each passes does, with note appended: what the reader must know
// to judge the failure, such as a pod admission changed ("" returns g).
// Only for that g, in Each's check: not inside a polled func(g Gomega),
// whose failures must stay the poll's.
func Noted(g gomega.Gomega, note string) gomega.Gomega {
	if note == "" {
		return g
	}
	return gomega.NewGomega(func(message string, _ ...int) { panic(failure{msg: oneLine(message) + " (" + note + ")"}) })
}

// Each runs check on every node of in, in parallel within the bound, and
// returns the results sorted by node.
func Each(ctx context.Context, in Input, check Check) []Result {
	par := in.Parallel
	if par < 1 {
		par = 1
	}
	sem := make(chan struct{}, par)
	results := make([]Result, len(in.Nodes))
	var wg sync.WaitGroup
	for i, node := range in.Nodes {
		if why, ok := in.Unreachable[node]; ok {
			results[i] = Result{Node: node, State: Failed, Finding: "cannot be examined: " + why}
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				results[i] = Result{Node: node, State: Failed, Finding: "not checked: " + ctx.Err().Error()}
				return
			}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				results[i] = Result{Node: node, State: Failed, Finding: "not checked: " + ctx.Err().Error()}
				return
			}
			results[i] = run(ctx, node, check)
		}()
	}
	wg.Wait()
	sort.Slice(results, func(a, b int) bool { return results[a].Node < results[b].Node })
	return results
}

func run(ctx context.Context, node string, check Check) (r Result) {
	r = Result{Node: node, State: Passed}
	g := gomega.NewGomega(func(message string, _ ...int) { panic(failure{msg: message}) })
	defer func() {
		switch x := recover().(type) {
		case nil:
		case failure:
			r.State, r.Finding, r.Evidence = Failed, oneLine(x.msg), x.evidence
		case skip:
			r.State, r.Finding = Skipped, x.reason
		default:
			// A global Expect or a bug inside the check: still this node's.
			r.State, r.Finding = Failed, oneLine(fmt.Sprint(x))
		}
		// Errors of node access name their node already; Lines names it.
		r.Finding = strings.TrimPrefix(r.Finding, "node "+node+": ")
	}()
	r.Evidence = check(ctx, g, node)
	return r
}

// oneLine folds Gomega's multi-line text into one sentence: a person reads
// "node X: ..." once, in the summary and in JUnit. The address Gomega
// prints after a pointer's type ("<*errors.errorString | 0x88c11fb6930>")
// is left out: it means nothing to the reader and differs on every run,
// so two runs failing alike would differ in their evidence (diff).
//
// Gomega's framing of an error ("Unexpected error: <*T | 0x…>: text
// {struct dump} occurred", "Expected success, but got an error: …") is
// reduced to the error's text, after the description when there is one.
func oneLine(s string) string {
	if desc, text, ok := gomegaError(s); ok {
		s = text
		if desc != "" {
			s = desc + ": " + text
		}
	}
	return strings.Join(strings.Fields(gomegaAddress.ReplaceAllString(s, "<$1>")), " ")
}

// gomegaError splits Gomega's text for a failed error assertion into the
// assertion's description and the error's own text.
func gomegaError(s string) (desc, text string, ok bool) {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if t := strings.TrimSpace(l); t != "Unexpected error:" && t != "Expected success, but got an error:" {
			continue
		}
		if i+1 >= len(lines) || !strings.HasPrefix(strings.TrimSpace(lines[i+1]), "<") {
			return "", "", false
		}
		var msg []string
		for _, m := range lines[i+2:] {
			t := strings.TrimSpace(m)
			if t == "occurred" || strings.HasPrefix(t, "{") {
				break
			}
			msg = append(msg, t)
		}
		if len(msg) == 0 {
			return "", "", false
		}
		return strings.TrimSpace(strings.Join(lines[:i], " ")), strings.Join(msg, " "), true
	}
	return "", "", false
}

// gomegaAddress matches Gomega's "<type | 0x…>" for a pointer.
var gomegaAddress = regexp.MustCompile(`<([^<>|\n]+) \| 0x[0-9a-f]+>`)

// Lines are the failure lines of results, one per failing node, each
// starting with "node <name>: ".
func Lines(results []Result) []string {
	var out []string
	for _, r := range results {
		if r.State == Failed {
			out = append(out, fmt.Sprintf("node %s: %s", r.Node, r.Finding))
		}
	}
	return out
}

// Expect records every node's result as the spec's "nodes" evidence and
// fails the spec with one line per failing node. When no node passed and
// some were skipped, the spec is skipped with their reasons.
func Expect(property string, results []Result) {
	ginkgo.GinkgoHelper()
	evidence.Record("nodes", results)
	lines := Lines(results)
	if len(lines) > 0 {
		ginkgo.Fail(fmt.Sprintf("%s: %d of %d nodes fail\n%s", property, len(lines), len(results), strings.Join(lines, "\n")))
	}
	passed := 0
	var skipped []string
	for _, r := range results {
		switch r.State {
		case Passed:
			passed++
		case Skipped:
			skipped = append(skipped, fmt.Sprintf("node %s: %s", r.Node, r.Finding))
		}
	}
	if len(results) == 0 {
		ginkgo.Fail(property + ": no node selected")
	}
	if passed == 0 {
		ginkgo.Skip(strings.Join(skipped, "; "))
	}
}
