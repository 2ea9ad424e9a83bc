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

func TestExecAgain(t *testing.T) {
	notStarted := errors.New("failed to exec in container: failed to load task: context deadline exceeded")
	exited := errors.New("command terminated with exit code 1")
	answer := []byte(`{"ns":{}}` + "\n")
	read, mount := []string{"ns", "--pid", "self"}, []string{"mount-tmpfs", "/prop/a"}
	for _, c := range []struct {
		name    string
		attempt int
		args    []string
		stdout  []byte
		err     error
		want    bool
	}{
		{"answered", 1, read, answer, nil, false},
		{"cut read goes again", 1, read, nil, nil, true},
		{"cut read with only a newline", 2, read, []byte("\n"), nil, true},
		{"cut read, attempts used up", ExecAttempts, read, nil, nil, false},
		{"cut change may have run", 1, mount, nil, nil, false},
		{"not started goes again, even a change", 1, mount, nil, notStarted, true},
		{"not started, attempts used up", ExecAttempts, read, nil, notStarted, false},
		{"the command failed", 1, read, []byte(`{"error":"x"}`), exited, false},
		{"a failed command with no output", 1, read, nil, exited, false},
		// A restarting kubelet, seen here: an exec cut by the restart,
		// then this from the next attempt.
		{"kubelet does not know the pod yet", 2, read, nil, errors.New("unable to upgrade connection: pod does not exist"), true},
		{"kubelet down", 1, mount, nil, errors.New("error dialing backend: dial tcp 172.18.0.3:10250: connect: connection refused"), true},
		{"no such container", 1, read, nil, errors.New("unable to upgrade connection: container not found (\"probe\")"), false},
	} {
		if got := execAgain(c.attempt, c.args, c.stdout, c.err); got != c.want {
			t.Errorf("%s: execAgain = %v, want %v", c.name, got, c.want)
		}
	}
}
