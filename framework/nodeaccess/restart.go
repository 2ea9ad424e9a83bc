package nodeaccess

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// restartPoll is how often Restart looks for the new processes: a restart
// of containerd and kubelet takes 1-2 s after the timer fires, and each
// look is one exec of about 0.1 s, so polling every second added about
// half a second to every restart (new PIDs seen 4.3-4.4 s after the
// request on the lab, 2026-12-03).
const restartPoll = 250 * time.Millisecond

// Restart restarts systemd units on a node and waits until every process
// named in comms runs under a new PID and the node is Ready again with a
// fresh heartbeat, or timeout.
//
// The exec session that asks for the restart runs through kubelet and the
// runtime, which may be the units restarted: the restart is scheduled a
// moment later as a transient systemd timer so the session ends first.
func (p *Probes) Restart(ctx context.Context, node string, units, comms []string, timeout time.Duration) error {
	if len(units) == 0 {
		return nil
	}
	// The node may still be coming back from an earlier restart (a
	// revert after Ctrl-C): reach it first, within the same bound.
	var before map[string]int
	var err error
	for reach := time.Now().Add(timeout); ; {
		if before, err = p.pids(ctx, node, comms); err == nil || time.Now().After(reach) || ctx.Err() != nil {
			break
		}
		time.Sleep(2 * time.Second)
		_ = p.refresh(ctx)
	}
	if err != nil {
		return err
	}
	since := time.Now()
	args := append([]string{"systemd-run", "--quiet", "--collect", "--on-active=2",
		"--unit=nodeconform-restart-" + fmt.Sprint(time.Now().UnixNano()), "systemctl", "restart"}, units...)
	if _, err := p.MustHostRetry(ctx, node, timeout, args...); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(restartPoll):
		}
		now, err := p.pids(ctx, node, comms)
		if err != nil {
			last = err.Error() // the runtime may be down for a moment
			continue
		}
		var stale []string
		for _, c := range comms {
			if now[c] == 0 || now[c] == before[c] {
				stale = append(stale, fmt.Sprintf("%s pid %d (was %d)", c, now[c], before[c]))
			}
		}
		if len(stale) > 0 {
			last = strings.Join(stale, ", ")
			continue
		}
		ready, err := p.nodeReady(ctx, node, since)
		if err != nil || !ready {
			last = fmt.Sprintf("node not Ready (%v)", err)
			continue
		}
		return nil
	}
	return fmt.Errorf("node %s: %v not back within %s: %s", node, units, timeout, last)
}

// pids returns the oldest PID of each named process.
func (p *Probes) pids(ctx context.Context, node string, comms []string) (map[string]int, error) {
	procs, err := p.Processes(ctx, node, nil, comms)
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, pr := range procs {
		if _, seen := out[pr.Comm]; !seen {
			out[pr.Comm] = pr.PID
		}
	}
	return out, nil
}

func (p *Probes) nodeReady(ctx context.Context, node string, since time.Time) (bool, error) {
	n, err := p.cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	ready := false
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			ready = c.Status == corev1.ConditionTrue
		}
	}
	if !ready {
		return false, nil
	}
	// The new kubelet proves itself by renewing the node's lease (every
	// 10 s); the Ready condition's heartbeat is only rewritten on changes
	// or every few minutes, so it cannot tell.
	lease, err := p.cs.CoordinationV1().Leases("kube-node-lease").Get(ctx, node, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	return lease.Spec.RenewTime != nil && lease.Spec.RenewTime.After(since), nil
}
