package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// clusterLock serialises suites that target the same cluster from
// different processes (`go test ./suites/...` runs packages in parallel,
// the runner runs some suites side by side): a suite that restarts
// kubelet must not run beside one that execs into pods. Suites that
// change nothing another suite would see hold it shared, beside each
// other; every other suite holds it alone.
type clusterLock struct{ f *os.File }

// lockCluster takes a lock named after the cluster, shared or exclusive,
// waiting at most timeout. The lock also goes away when the process dies.
func lockCluster(ctx context.Context, id string, timeout time.Duration, shared bool) (*clusterLock, error) {
	dir := filepath.Join(os.TempDir(), "nodeconform-locks")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(id))
	path := filepath.Join(dir, hex.EncodeToString(sum[:8])+".lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_EX
	if shared {
		how = syscall.LOCK_SH
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if err == nil {
			// Names the holder for a run that waits too long; shared
			// holders would overwrite each other's line.
			if !shared {
				_ = f.Truncate(0)
				fmt.Fprintf(f, "pid %d\n", os.Getpid())
			}
			return &clusterLock{f: f}, nil
		}
		if time.Now().After(deadline) {
			holder, _ := os.ReadFile(path)
			f.Close()
			return nil, fmt.Errorf("another nodeconform run holds cluster %s (%s, %s) for more than %s", id, path, holder, timeout)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (l *clusterLock) release() {
	if l != nil && l.f != nil {
		_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
		l.f.Close()
	}
}
