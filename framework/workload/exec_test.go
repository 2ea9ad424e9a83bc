package workload

import (
	"errors"
	"testing"
)

func TestExecNotStarted(t *testing.T) {
	for _, c := range []struct {
		err  string
		want bool
	}{
		{"Internal error occurred: error executing command in container: failed to exec in container: failed to load task: context deadline exceeded", true},
		{"command terminated with exit code 1", false},
		{"Internal error occurred: error executing command in container: failed to exec in container: failed to start exec \"abc\": OCI runtime exec failed", false},
		{"pods \"x\" not found", false},
	} {
		if got := ExecNotStarted(errors.New(c.err)); got != c.want {
			t.Errorf("ExecNotStarted(%q) = %v, want %v", c.err, got, c.want)
		}
	}
	if ExecNotStarted(nil) {
		t.Error("ExecNotStarted(nil) = true")
	}
}
