// Package evidence records what a spec actually read from the cluster —
// node conditions, addresses, answers from inside pods — next to its
// outcome, in Ginkgo's JSON and JUnit reports.
package evidence

import (
	"encoding/json"

	"github.com/onsi/ginkgo/v2"
)

// Record attaches a named piece of evidence to the running spec. Values are
// stored as JSON so reports stay machine readable.
func Record(name string, value any) {
	ginkgo.AddReportEntry(name, JSON(value), ginkgo.ReportEntryVisibilityFailureOrVerbose)
}

// JSON renders v compactly; it never fails a spec over formatting.
func JSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return err.Error()
	}
	return string(b)
}
