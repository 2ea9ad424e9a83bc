// Command sessioncheck stalls a node's probe session (SIGSTOP on its
// process, so the stream stays open and answers nothing) and times the
// next node command. A manual run, not part of CI: see the README.
package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"time"

	kindcmd "sigs.k8s.io/kind/pkg/cmd"

	"github.com/nodeconform/nodeconform/framework/e2e"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "sessioncheck:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	data, err := e2e.Up(ctx, e2e.SettingsFromEnv(), kindcmd.NewLogger(), e2e.WithNodeAccess())
	if err != nil {
		return err
	}
	e, err := e2e.Connect(data)
	if err != nil {
		return err
	}
	defer func() { _ = e2e.RemoveLeftovers(context.Background(), e) }()
	node := e.Nodes.Nodes()[0]
	if _, err := e.Nodes.MustHost(ctx, node, "true"); err != nil {
		return err
	}
	procs, err := e.Nodes.Processes(ctx, node, nil, []string{"nodeconform-pro"})
	if err != nil {
		return err
	}
	pid := 0
	for _, p := range procs {
		if len(p.Cmdline) == 2 && p.Cmdline[1] == "session" {
			pid = p.PID
		}
	}
	if pid == 0 {
		return fmt.Errorf("no session process on %s: %+v", node, procs)
	}
	fmt.Printf("session process on %s: pid %d\n", node, pid)
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = e.Nodes.Host(c, node, "kill", "-CONT", strconv.Itoa(pid))
	}()
	// The kill's own reply cannot come back: its session is stopped.
	stall, cancelStall := context.WithTimeout(ctx, 3*time.Second)
	start := time.Now()
	_, err = e.Nodes.Host(stall, node, "kill", "-STOP", strconv.Itoa(pid))
	cancelStall()
	fmt.Printf("kill -STOP: %v after %s\n", err, time.Since(start).Round(time.Millisecond))
	for i := 1; i <= 3; i++ {
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		start = time.Now()
		out, err := e.Nodes.MustHost(c, node, "echo", "next")
		cancel()
		fmt.Printf("command %d after the stall: %q, %v, in %s\n", i, out, err, time.Since(start).Round(time.Millisecond))
	}
	return nil
}
