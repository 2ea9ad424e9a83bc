package report

import (
	"fmt"
	"regexp"
	"strings"
	"unicode"
)

// MaxNodeLines is how many per-node lines FailureBrief shows before
// "and N more".
const MaxNodeLines = 3

// maxJoined bounds the one line FailureBrief makes of Gomega's framing.
const maxJoined = 160

// locationSuffix is the " (file.go:line)" FromGinkgo appends to a failure.
var locationSuffix = regexp.MustCompile(`\s\(([^()\n]+:\d+)\)\s*$`)

// gomegaExact and gomegaPrefixes are lines of Gomega's failure text that
// carry no meaning of their own: "Expected" / "<int>: 1" / "to equal",
// "Unexpected error:" / "<*errors.errorString | 0x…>:" / "occurred",
// "Expected success, but got an error:" (Succeed's framing of an error),
// "Timed out after 30.001s.", and the like.
var (
	gomegaExact    = []string{"Expected", "Unexpected error:", "occurred", "Expected success, but got an error:"}
	gomegaPrefixes = []string{"<", "to ", "not to ", "Timed out after ", "Context was cancelled", "Told to stop trying", "The function passed to "}
)

// FailureBrief returns the lines of a failure message worth showing a
// person who reads it once:
//
//   - the per-node lines, those starting with "node " once trimmed (suites
//     write one per failing node: "node kind-worker2: cpuCFSQuota: wanted
//     true, found false"), the first MaxNodeLines of them and then
//     "and N more" when there are more; any headline and Gomega text around
//     them are left out;
//   - when there are none, one line: the first that is not Gomega
//     boilerplate (see IsBoilerplate), or else (a message of nothing but
//     Gomega's framing) its first four non-empty lines joined by spaces,
//     "Expected <string>: v1 to equal <string>: v2", clipped to
//     maxJoined characters.
//
// The " (file.go:line)" FromGinkgo appends to a failure is kept: at the end
// of a one-line brief, on a line of its own after a longer one.
func FailureBrief(msg string) []string {
	loc := ""
	if m := locationSuffix.FindStringSubmatchIndex(msg); m != nil {
		loc = "(" + msg[m[2]:m[3]] + ")"
		msg = msg[:m[0]]
	}
	var nodes, firsts []string
	informative := ""
	for _, l := range strings.Split(msg, "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if len(firsts) < 4 {
			firsts = append(firsts, l)
		}
		if strings.HasPrefix(l, "node ") {
			nodes = append(nodes, l)
		} else if informative == "" && !IsBoilerplate(l) {
			informative = l
		}
	}
	if len(nodes) > 0 {
		out := nodes
		if len(nodes) > MaxNodeLines {
			out = append(nodes[:MaxNodeLines:MaxNodeLines], fmt.Sprintf("and %d more", len(nodes)-MaxNodeLines))
		}
		if loc != "" {
			out = append(out, loc)
		}
		return out
	}
	line := informative
	if line == "" {
		line = strings.Join(firsts, " ")
		if r := []rune(line); len(r) > maxJoined {
			line = string(r[:maxJoined-1]) + "…"
		}
	}
	switch {
	case line == "" && loc == "":
		return nil
	case line == "":
		return []string{loc}
	case loc != "":
		return []string{line + " " + loc}
	}
	return []string{line}
}

// IsBoilerplate reports whether a (trimmed) line of a failure message is
// Gomega's framing rather than what went wrong: "Expected",
// "Unexpected error:", "Expected success, but got an error:", "occurred",
// a formatted value "<type>: value", a
// matcher connective ("to equal", "not to have occurred"), "Timed out
// after …", "Context was cancelled …", "Told to stop trying …",
// "The function passed to Eventually …", or a line without a letter
// ("{", "}", "0").
func IsBoilerplate(line string) bool {
	line = strings.TrimSpace(line)
	for _, e := range gomegaExact {
		if line == e {
			return true
		}
	}
	for _, p := range gomegaPrefixes {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return strings.IndexFunc(line, unicode.IsLetter) < 0
}
