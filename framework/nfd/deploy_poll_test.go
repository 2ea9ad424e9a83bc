package nfd

import (
	"context"
	"errors"
	"testing"
	"time"
)

// A permanent error ends the wait at once; any other is retried until
// the timeout.
func TestPollStopsOnPermanent(t *testing.T) {
	start := time.Now()
	err := poll(context.Background(), time.Minute, func() (bool, error) { return false, permanent{errors.New("cannot start")} })
	if err == nil || err.Error() != "cannot start" || time.Since(start) > 5*time.Second {
		t.Fatalf("got %v after %s", err, time.Since(start))
	}
	calls := 0
	err = poll(context.Background(), 500*time.Millisecond, func() (bool, error) { calls++; return false, errors.New("transient") })
	if err == nil || err.Error() != "transient" || calls < 2 {
		t.Fatalf("got %v after %d calls", err, calls)
	}
}
