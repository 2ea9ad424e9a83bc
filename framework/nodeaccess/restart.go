package nodeaccess

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nodeconform/nodeconform/framework/workload"
)

// restartPoll is how often Restart looks for the new processes: a restart
// of containerd and kubelet takes 1-2 s after the timer fires, and each
// look is one exec of about 0.1 s, so polling every second added about
// half a second to every restart (new PIDs seen 4.3-4.4 s after the
// request on the lab, 2026-12-03).
const restartPoll = 250 * time.Millisecond

// restartDelay is how long after the request the restart fires. The
// request's exec session runs through the kubelet and runtime being
// restarted and should end first; its answer takes well under that here.
// A session cut anyway is not an error: schedule tells a restart that
// fired from one never asked for. Measured on the lab (2026-12-03, the
// journal's timer and service starts): with 2 s the restarted processes
// were seen 4.3-4.4 s after the request; with 1 s the service started
// 1.2-1.4 s after its timer, with 250 ms (systemd's own accuracy on top)
// about 0.3 s after; with 1 ms 16 ms after, cutting sessions, and the
// encapsulation suite still passed with one restart per request.
const restartDelay = "250ms"

// restartAccuracy is the restart timer's AccuracySec.
const restartAccuracy = "10ms"

// restartLook bounds each exec of a restart's request and of the looks
// that follow: an exec that reaches the kubelet as it stops can hang until
// the API server gives up on it (a look that landed there answered
// "Timeout occurred" after 30 s, 2026-12-03), where the next look, a
// moment later, is answered at once. A look takes about 0.1 s on kind
// nodes; the bound leaves room for an emulated VM.
const restartLook = 10 * time.Second

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
		if before, err = p.pids(ctx, node, comms); err == nil || workload.Refused(err) || time.Now().After(reach) || ctx.Err() != nil {
			break
		}
		time.Sleep(2 * time.Second)
		_ = p.refresh(ctx)
	}
	if err != nil {
		return err
	}
	since := time.Now()
	if err := p.schedule(ctx, node, units, comms, before, timeout); err != nil {
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
		now, err := p.pidsWithin(ctx, node, comms)
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
		lookCtx, cancel := context.WithTimeout(ctx, restartLook)
		ready, err := p.nodeReady(lookCtx, node, since)
		cancel()
		if err != nil || !ready {
			last = fmt.Sprintf("node not Ready (%v)", err)
			continue
		}
		return nil
	}
	return fmt.Errorf("node %s: %v not back within %s: %s", node, units, timeout, last)
}

// pidsWithin is pids bounded by restartLook.
func (p *Probes) pidsWithin(ctx context.Context, node string, comms []string) (map[string]int, error) {
	ctx, cancel := context.WithTimeout(ctx, restartLook)
	defer cancel()
	return p.pids(ctx, node, comms)
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
	if !workload.NodeIsReady(n) {
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

// schedule asks systemd on the node to restart units after restartDelay.
// The request is idempotent, so that it can be retried when its exec
// session is cut (by the restart itself, or by a runtime still coming
// back): every attempt names the same transient unit, systemd refuses a
// second one while the first is pending, and after a cut session the
// request is made again only once the node answers and none of comms runs
// under a new PID (the restart has not fired).
func (p *Probes) schedule(ctx context.Context, node string, units, comms []string, before map[string]int, timeout time.Duration) error {
	unit := "nodeconform-restart-" + fmt.Sprint(time.Now().UnixNano())
	// AccuracySec: systemd otherwise lets a timer elapse anywhere in a
	// minute after its time, to coalesce wake-ups. It fired 0.3 s after
	// its time while one-shot execs kept systemd busy, and 37 s after
	// once node commands went over probe sessions (2026-12-05).
	args := append([]string{"systemd-run", "--quiet", "--collect", "--on-active=" + restartDelay,
		"--timer-property=AccuracySec=" + restartAccuracy,
		"--unit=" + unit, "systemctl", "restart"}, units...)
	deadline := time.Now().Add(timeout)
	var last error
	for cut := false; ; {
		ask := !cut
		if cut {
			now, err := p.pidsWithin(ctx, node, comms)
			if err == nil && fired(before, now) {
				return nil
			}
			ask, last = err == nil, err
		}
		if ask {
			askCtx, cancel := context.WithTimeout(ctx, restartLook)
			r, err := p.Host(askCtx, node, args...)
			cancel()
			done, fatal := scheduled(r, err)
			switch {
			case fatal != nil:
				return fmt.Errorf("node %s: %q: %w", node, strings.Join(args, " "), fatal)
			case done:
				return nil
			}
			cut, last = true, err
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return fmt.Errorf("node %s: restart of %v not scheduled within %s: %v", node, units, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(restartPoll):
		}
	}
}

// scheduled judges one request for a restart: done when systemd took it,
// or refused it as already loaded (an earlier request's answer was lost);
// fatal when the command ran and failed otherwise. Neither: the exec
// session was cut, and whether the restart was asked for is unknown.
func scheduled(r HostResult, execErr error) (done bool, fatal error) {
	switch out := r.Stderr + r.Stdout; {
	case execErr != nil:
		return false, nil
	case r.ExitCode == 0, strings.Contains(out, "already exists"), strings.Contains(out, "already loaded"):
		return true, nil
	default:
		return false, fmt.Errorf("exited %d: %s", r.ExitCode, out)
	}
}

// fired reports whether any process runs under a PID it did not have
// before the restart was asked for.
func fired(before, now map[string]int) bool {
	for comm, pid := range now {
		if pid != 0 && pid != before[comm] {
			return true
		}
	}
	return false
}
