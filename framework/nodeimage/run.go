package nodeimage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// cmdError carries the output of a failed command, as kind's errors do.
type cmdError struct {
	cmd    string
	err    error
	output string
}

func (e *cmdError) Error() string {
	return fmt.Sprintf("%s: %v\n%s", e.cmd, e.err, e.output)
}

func (e *cmdError) Unwrap() error { return e.err }

type runOpt func(*exec.Cmd)

func withDir(d string) runOpt    { return func(c *exec.Cmd) { c.Dir = d } }
func withEnv(e ...string) runOpt { return func(c *exec.Cmd) { c.Env = append(os.Environ(), e...) } }
func withStdin(r io.Reader) runOpt {
	return func(c *exec.Cmd) { c.Stdin = r }
}

// withProgress also sends stderr to w (a progress.Step counting the
// packages `go build -v` names); nil is no-op.
func withProgress(w io.Writer) runOpt {
	return func(c *exec.Cmd) {
		if w != nil {
			c.Stderr = io.MultiWriter(c.Stderr, w)
		}
	}
}

// run executes a command and returns its stdout; on failure the error holds
// the tail of stdout and stderr.
func run(ctx context.Context, name string, args []string, opts ...runOpt) (string, error) {
	c := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	for _, o := range opts {
		o(c)
	}
	if err := c.Run(); err != nil {
		all := out.String() + errb.String()
		if len(all) > 4000 {
			all = "..." + all[len(all)-4000:]
		}
		return "", &cmdError{cmd: name + " " + strings.Join(args, " "), err: err, output: all}
	}
	return out.String(), nil
}

func docker(ctx context.Context, args ...string) (string, error) {
	return run(ctx, "docker", args)
}

// imageLabel returns a label of a local image, or "" when the image is absent.
func imageLabel(ctx context.Context, image, label string) (string, error) {
	out, err := docker(ctx, "image", "inspect", "--format", fmt.Sprintf("{{index .Config.Labels %q}}", label), image)
	if err != nil {
		return "", err
	}
	v := strings.TrimSpace(out)
	if v == "<no value>" {
		v = ""
	}
	return v, nil
}
