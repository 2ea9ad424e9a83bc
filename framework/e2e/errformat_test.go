package e2e

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/onsi/gomega"
)

func TestErrorsOnce(t *testing.T) {
	errorsOnce()
	text := "pod ns/p not Ready within 2m0s: " + strings.Repeat("event Warning Failed: not a shared mount; ", 200)
	var msg string
	g := gomega.NewGomega(func(message string, _ ...int) { msg = message })
	g.Expect(fmt.Errorf("wrapped: %w", errors.New(text))).NotTo(gomega.HaveOccurred(), "the propagation pod")
	if n := strings.Count(msg, "pod ns/p not Ready"); n != 1 {
		t.Errorf("the error's text appears %d times in the failure, want once:\n%s", n, msg)
	}
	if strings.Contains(msg, "truncated") {
		t.Errorf("the failure was truncated:\n%.300s", msg)
	}
	if !strings.Contains(msg, "the propagation pod") || !strings.Contains(msg, "*fmt.wrapError") {
		t.Errorf("the failure lost its description or the error's type:\n%.300s", msg)
	}
	// Values that are not errors keep Gomega's representation.
	g.Expect(struct{ A int }{1}).To(gomega.Equal(struct{ A int }{2}))
	if !strings.Contains(msg, "A: 1") {
		t.Errorf("a struct lost its fields:\n%s", msg)
	}
}
