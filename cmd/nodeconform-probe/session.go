package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"

	"github.com/nodeconform/nodeconform/framework/probeapi"
)

// runFunc runs the probe with args and returns what it printed and its
// exit code; err says it could not be run at all.
type runFunc func(args []string) (stdout, stderr []byte, exit int, err error)

// runSelf runs this binary as a child. A child rather than a call: some
// subcommands enter the node's namespaces (host) or exit the process,
// which must not happen to the session serving the others.
func runSelf(args []string) ([]byte, []byte, int, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("/proc/self/exe", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return stdout.Bytes(), stderr.Bytes(), exit.ExitCode(), nil
	}
	return stdout.Bytes(), stderr.Bytes(), 0, err
}

// session serves requests read from in until in ends, each in its own
// child at once (the framework sends a node's independent reads together),
// and writes each reply as one line to out when its child ends. It answers
// every request it read before it returns.
func session(in io.Reader, out io.Writer, run runFunc) error {
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	write := func(v any) error {
		mu.Lock()
		defer mu.Unlock()
		return enc.Encode(v)
	}
	if err := write(probeapi.SessionHello{Session: probeapi.SessionVersion}); err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var req probeapi.SessionRequest
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			return fmt.Errorf("session: malformed request %q: %w", sc.Text(), err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := probeapi.SessionReply{ID: req.ID}
			if len(req.Args) == 0 || req.Args[0] == "session" {
				r.Error = fmt.Sprintf("session: refused request %v", req.Args)
			} else {
				stdout, stderr, exit, err := run(req.Args)
				r.Stdout, r.Stderr, r.ExitCode = string(stdout), string(stderr), exit
				if err != nil {
					r.Error = err.Error()
				}
			}
			// A reply that cannot be written has no reader left.
			_ = write(r)
		}()
	}
	return sc.Err()
}

func serveSession() error {
	return session(os.Stdin, os.Stdout, runSelf)
}
