package nodeaccess

import (
	"errors"
	"testing"
)

func TestScheduled(t *testing.T) {
	cut := errors.New("error dialing backend: connection refused")
	for _, c := range []struct {
		name        string
		r           HostResult
		execErr     error
		done, fatal bool
	}{
		{name: "taken", r: HostResult{ExitCode: 0}, done: true},
		{name: "an earlier request's answer was lost (systemd 252)", r: HostResult{ExitCode: 1, Stderr: "Failed to start transient timer unit: Unit nodeconform-restart-1.timer was already loaded or has a fragment file."}, done: true},
		{name: "an earlier request's answer was lost (newer systemd)", r: HostResult{ExitCode: 1, Stderr: "Failed to start transient timer unit: Unit nodeconform-restart-1.timer already exists."}, done: true},
		{name: "no systemd-run", r: HostResult{ExitCode: 127, Stderr: "systemd-run: not found"}, fatal: true},
		{name: "session cut: unknown", execErr: cut},
	} {
		t.Run(c.name, func(t *testing.T) {
			done, fatal := scheduled(c.r, c.execErr)
			if done != c.done || (fatal != nil) != c.fatal {
				t.Errorf("scheduled = %v, %v; want done %v, fatal %v", done, fatal, c.done, c.fatal)
			}
		})
	}
}

func TestFired(t *testing.T) {
	before := map[string]int{"containerd": 100, "kubelet": 200}
	for _, c := range []struct {
		name string
		now  map[string]int
		want bool
	}{
		{"same processes: not fired", map[string]int{"containerd": 100, "kubelet": 200}, false},
		{"one process restarted: fired", map[string]int{"containerd": 300, "kubelet": 200}, true},
		{"a process not running yet, the other old", map[string]int{"containerd": 100, "kubelet": 0}, false},
		{"nothing seen", nil, false},
	} {
		if got := fired(before, c.now); got != c.want {
			t.Errorf("%s: fired = %v, want %v", c.name, got, c.want)
		}
	}
}
