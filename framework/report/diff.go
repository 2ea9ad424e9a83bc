package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
)

// Change is one difference between two runs.
type Change struct {
	Suite  string `json:"suite"`
	Spec   string `json:"spec"`
	Kind   string `json:"kind"` // regression, fixed, state, missing, new, evidence
	Before string `json:"before,omitempty"`
	After  string `json:"after,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// Diff compares two runs. A spec that passed before and fails (or is gone)
// after is a regression.
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
			kind := "missing"
			if bs.State == Passed {
				kind = "regression"
			}
			out = append(out, Change{Suite: bs.Suite, Spec: bs.Name, Kind: kind, Before: bs.State, After: "absent"})
			continue
		}
		if bs.State != as.State {
			kind := "state"
			switch {
			case bs.State == Passed && as.State == Failed:
				kind = "regression"
			case bs.State == Failed && as.State == Passed:
				kind = "fixed"
			}
			out = append(out, Change{Suite: bs.Suite, Spec: bs.Name, Kind: kind, Before: bs.State, After: as.State, Detail: firstLine(as.Failure)})
		}
		for _, name := range evidenceNames(bs, as) {
			bv, av := canon(bs.Evidence[name]), canon(as.Evidence[name])
			if bv != av {
				out = append(out, Change{Suite: bs.Suite, Spec: bs.Name, Kind: "evidence", Detail: name, Before: bv, After: av})
			}
		}
	}
	for k, as := range a {
		if _, ok := b[k]; !ok {
			out = append(out, Change{Suite: as.Suite, Spec: as.Name, Kind: "new", After: as.State})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Suite != out[j].Suite {
			return out[i].Suite < out[j].Suite
		}
		if out[i].Spec != out[j].Spec {
			return out[i].Spec < out[j].Spec
		}
		return out[i].Kind+out[i].Detail < out[j].Kind+out[j].Detail
	})
	return out
}

// Regressions counts regression changes.
func Regressions(changes []Change) int {
	n := 0
	for _, c := range changes {
		if c.Kind == "regression" {
			n++
		}
	}
	return n
}

// PrintDiff writes one line per change.
func PrintDiff(w io.Writer, changes []Change) {
	if len(changes) == 0 {
		fmt.Fprintln(w, "no differences")
		return
	}
	for _, c := range changes {
		switch c.Kind {
		case "evidence":
			fmt.Fprintf(w, "evidence   %s: %s [%s]\n  before: %s\n  after:  %s\n", c.Suite, c.Spec, c.Detail, clip(c.Before), clip(c.After))
		default:
			fmt.Fprintf(w, "%-10s %s: %s (%s -> %s) %s\n", c.Kind, c.Suite, c.Spec, c.Before, c.After, c.Detail)
		}
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

func clip(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}
