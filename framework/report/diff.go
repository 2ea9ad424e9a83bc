package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
)

// Kinds of Change.
const (
	KindRegression   = "regression"    // passed before; failed, interrupted or absent now
	KindLostCoverage = "lost-coverage" // passed before; skipped now
	KindFixed        = "fixed"         // failed before; passed now
	KindState        = "state"         // any other change of outcome
	KindMissing      = "missing"       // gone now, and had not passed before
	KindNew          = "new"           // only in the second run
	KindEvidence     = "evidence"      // an evidence entry differs (Detail names it)
	KindDrift        = "drift"         // a node's normalised value differs (Node, Field)
)

// StateEvidence is the evidence entry that holds a spec's normalised
// per-node state, map[node]map[field]string in JSON, compared by Diff node
// by node and field by field.
const StateEvidence = "state"

// NodeField is the Field of a drift change for a node present in one run
// only; its Before and After are "present" or "absent".
const NodeField = "(node)"

// Change is one difference between two runs.
type Change struct {
	Suite  string `json:"suite"`
	Spec   string `json:"spec"`
	Kind   string `json:"kind"` // one of the Kind constants
	Node   string `json:"node,omitempty"`
	Field  string `json:"field,omitempty"`
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// DiffOptions says which changes fail a diff.
type DiffOptions struct {
	// AllowSkips: a spec that passed before and is skipped now
	// (lost-coverage) is not a regression.
	AllowSkips bool
	// FailOnDrift: per-node state drift fails the diff.
	FailOnDrift bool
}

// Diff compares two runs. A spec that passed before and fails, is
// interrupted or is gone after is a regression; one that passed and is
// skipped after is lost coverage. For specs in both runs the evidence is
// compared: StateEvidence node by node and field by field (drift), when it
// is a per-node state in both runs, every other entry as a whole (evidence).
func Diff(before, after Results) []Change {
	key := func(s Spec) string { return s.Suite + "\x00" + s.Name }
	b := map[string]Spec{}
	for _, s := range before.Specs {
		b[key(s)] = s
	}
	a := map[string]Spec{}
	for _, s := range after.Specs {
		a[key(s)] = s
	}
	var out []Change
	for k, bs := range b {
		as, ok := a[k]
		if !ok {
			kind := KindMissing
			if bs.State == Passed {
				kind = KindRegression
			}
			out = append(out, Change{Suite: bs.Suite, Spec: bs.Name, Kind: kind, Before: bs.State, After: "absent"})
			continue
		}
		if bs.State != as.State {
			kind := KindState
			detail := strings.Join(FailureBrief(as.Failure), "; ")
			switch {
			case bs.State == Passed && (as.State == Failed || as.State == Interrupted):
				kind = KindRegression
			case bs.State == Passed && as.State == Skipped:
				kind = KindLostCoverage
				detail = firstLine(as.Skip)
			case bs.State == Failed && as.State == Passed:
				kind = KindFixed
			}
			out = append(out, Change{Suite: bs.Suite, Spec: bs.Name, Kind: kind, Before: bs.State, After: as.State, Detail: detail})
		}
		bState, bOK := nodeState(bs.Evidence[StateEvidence])
		aState, aOK := nodeState(as.Evidence[StateEvidence])
		if bOK && aOK {
			out = append(out, drift(bs, bState, aState)...)
		}
		for _, name := range evidenceNames(bs, as) {
			if name == StateEvidence && bOK && aOK {
				continue
			}
			bv, av := canon(bs.Evidence[name]), canon(as.Evidence[name])
			if bv != av {
				out = append(out, Change{Suite: bs.Suite, Spec: bs.Name, Kind: KindEvidence, Detail: name, Before: bv, After: av})
			}
		}
	}
	for k, as := range a {
		if _, ok := b[k]; !ok {
			out = append(out, Change{Suite: as.Suite, Spec: as.Name, Kind: KindNew, After: as.State})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		x, y := out[i], out[j]
		for _, p := range [][2]string{{x.Suite, y.Suite}, {x.Spec, y.Spec}, {x.Kind, y.Kind}, {x.Node, y.Node}, {x.Field, y.Field}, {x.Detail, y.Detail}} {
			if p[0] != p[1] {
				return p[0] < p[1]
			}
		}
		return false
	})
	return out
}

// nodeState reads a StateEvidence value: an object of objects,
// node -> field -> value. Values that are not strings are kept as JSON.
func nodeState(v any) (map[string]map[string]string, bool) {
	nodes, ok := v.(map[string]any)
	if !ok {
		return nil, false
	}
	out := map[string]map[string]string{}
	for node, fv := range nodes {
		fields, ok := fv.(map[string]any)
		if !ok {
			return nil, false
		}
		out[node] = map[string]string{}
		for f, val := range fields {
			if s, ok := val.(string); ok {
				out[node][f] = s
			} else {
				out[node][f] = canon(val)
			}
		}
	}
	return out, true
}

// drift compares two per-node states of one spec.
func drift(s Spec, before, after map[string]map[string]string) []Change {
	var out []Change
	for _, node := range unionKeys(before, after) {
		bf, inB := before[node]
		af, inA := after[node]
		if !inB || !inA {
			c := Change{Suite: s.Suite, Spec: s.Name, Kind: KindDrift, Node: node, Field: NodeField, Before: "present", After: "absent"}
			if !inB {
				c.Before, c.After = "absent", "present"
			}
			out = append(out, c)
			continue
		}
		for _, f := range unionKeys(bf, af) {
			bv, inBV := bf[f]
			av, inAV := af[f]
			if inBV && inAV && bv == av {
				continue
			}
			if !inBV {
				bv = "absent"
			}
			if !inAV {
				av = "absent"
			}
			out = append(out, Change{Suite: s.Suite, Spec: s.Name, Kind: KindDrift, Node: node, Field: f, Before: bv, After: av})
		}
	}
	return out
}

func unionKeys[V any](a, b map[string]V) []string {
	seen := map[string]bool{}
	for k := range a {
		seen[k] = true
	}
	for k := range b {
		seen[k] = true
	}
	out := make([]string, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Failures returns the changes that fail a diff under o: regressions, lost
// coverage unless o.AllowSkips, drift when o.FailOnDrift.
func Failures(changes []Change, o DiffOptions) []Change {
	var out []Change
	for _, c := range changes {
		switch {
		case c.Kind == KindRegression,
			c.Kind == KindLostCoverage && !o.AllowSkips,
			c.Kind == KindDrift && o.FailOnDrift:
			out = append(out, c)
		}
	}
	return out
}

// Regressions counts the changes that fail a diff with the default
// options: regressions and lost coverage.
func Regressions(changes []Change) int {
	return len(Failures(changes, DiffOptions{}))
}

// cellWidth bounds a table cell; --json has the full values.
const cellWidth = 60

// PrintDiff writes the changes as a table: SPEC (suite: spec), KIND, NODE,
// FIELD (the evidence name for evidence changes), BEFORE, AFTER, DETAIL;
// "-" for an empty cell, long cells but SPEC clipped.
func PrintDiff(w io.Writer, changes []Change) {
	if len(changes) == 0 {
		fmt.Fprintln(w, "no differences")
		return
	}
	clipped := false
	cell := func(s string) string {
		s = strings.Join(strings.Fields(s), " ")
		if s == "" {
			return "-"
		}
		if r := []rune(s); len(r) > cellWidth {
			clipped = true
			return string(r[:cellWidth-1]) + "…"
		}
		return s
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SPEC\tKIND\tNODE\tFIELD\tBEFORE\tAFTER\tDETAIL")
	for _, c := range changes {
		field, detail := c.Field, c.Detail
		if c.Kind == KindEvidence && field == "" {
			field, detail = c.Detail, ""
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Suite+": "+c.Spec, c.Kind, cell(c.Node), cell(field), cell(c.Before), cell(c.After), cell(detail))
	}
	tw.Flush()
	if clipped {
		fmt.Fprintln(w, "(long values clipped; --json prints them whole)")
	}
}

func evidenceNames(a, b Spec) []string {
	seen := map[string]bool{}
	for k := range a.Evidence {
		seen[k] = true
	}
	for k := range b.Evidence {
		seen[k] = true
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func canon(v any) string {
	if v == nil {
		return ""
	}
	b, _ := json.Marshal(v)
	return string(b)
}
