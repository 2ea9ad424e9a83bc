// Package progress keeps a long step from sitting silent: while it runs,
// a line every interval says what it is, how far it got (a count the step
// feeds, such as Go packages compiled) and how long it has taken.
package progress

import (
	"sync"
	"sync/atomic"
	"time"

	"sigs.k8s.io/kind/pkg/log"
)

// Interval between progress lines.
var Interval = 15 * time.Second

// Step is a running step.
type Step struct {
	// Count is what the step has done so far, in Unit.
	Count atomic.Int64
	Unit  string
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

// Start prints a progress line for what every Interval until Stop.
func Start(logger log.Logger, what, unit string) *Step {
	s := &Step{Unit: unit, stop: make(chan struct{}), done: make(chan struct{})}
	start := time.Now()
	go func() {
		defer close(s.done)
		t := time.NewTicker(Interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				line := "   … " + what + ": " + time.Since(start).Round(time.Second).String() + " elapsed"
				if n := s.Count.Load(); n > 0 && s.Unit != "" {
					line += ", " + itoa(n) + " " + s.Unit
				}
				logger.V(0).Info(line)
			}
		}
	}()
	return s
}

// Stop ends the progress lines; stopping again is a no-op, so a deferred
// Stop can back up the one on the success path.
func (s *Step) Stop() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
}

// Write counts lines written to it (go build -v prints one per package),
// so a Step can be a command's stderr.
func (s *Step) Write(p []byte) (int, error) {
	for _, b := range p {
		if b == '\n' {
			s.Count.Add(1)
		}
	}
	return len(p), nil
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return string(b[i:])
}
