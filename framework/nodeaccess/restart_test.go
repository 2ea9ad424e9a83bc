package nodeaccess

import (
	"errors"
	"testing"
)

func TestScheduled(t *testing.T) {
	cut := errors.New("error dialing backend: connection refused")
	before := map[string]int{"containerd": 100, "kubelet": 200}
	for _, c := range []struct {
		name        string
		r           HostResult
		execErr     error
		now         map[string]int
		pidErr      error
		done, fatal bool
	}{
		{name: "taken", r: HostResult{ExitCode: 0}, done: true},
		{name: "an earlier attempt's answer was lost (systemd 252)", r: HostResult{ExitCode: 1, Stderr: "Failed to start transient timer unit: Unit nodeconform-restart-1.timer was already loaded or has a fragment file."}, done: true},
		{name: "an earlier attempt's answer was lost (newer systemd)", r: HostResult{ExitCode: 1, Stderr: "Failed to start transient timer unit: Unit nodeconform-restart-1.timer already exists."}, done: true},
		{name: "no systemd-run", r: HostResult{ExitCode: 127, Stderr: "systemd-run: not found"}, fatal: true},
		{name: "cut, node not reachable yet", execErr: cut, pidErr: cut},
		{name: "cut, same processes: not fired", execErr: cut, now: map[string]int{"containerd": 100, "kubelet": 200}},
		{name: "cut, one process restarted: fired", execErr: cut, now: map[string]int{"containerd": 300, "kubelet": 200}, done: true},
		{name: "cut, a process not running yet", execErr: cut, now: map[string]int{"containerd": 100, "kubelet": 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			done, fatal := scheduled(c.r, c.execErr, before, c.now, c.pidErr)
			if done != c.done || (fatal != nil) != c.fatal {
				t.Errorf("scheduled = %v, %v; want done %v, fatal %v", done, fatal, c.done, c.fatal)
			}
		})
	}
}
