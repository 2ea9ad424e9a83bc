package e2e

import (
	"sync"

	"github.com/onsi/gomega/format"
)

var registerErrorFormat sync.Once

// errorsOnce has Gomega print an error's text once. Gomega prints an
// error as its Error() text followed by a dump of its fields, which for
// the errors our helpers build (fmt.Errorf around a pod's description)
// is the same text again, truncated past 4000 characters with a paragraph
// of advice: a failing node's line in the summary and in JUnit doubled in
// length and said nothing more. The type stays in the message.
func errorsOnce() {
	registerErrorFormat.Do(func() {
		format.RegisterCustomFormatter(errorFields)
	})
}

// errorFields is the custom formatter: an error's fields are left out
// (Object has printed its Error() already); anything else is Gomega's.
func errorFields(value any) (string, bool) {
	if _, ok := value.(error); ok {
		return "", true
	}
	return "", false
}
