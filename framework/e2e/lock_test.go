package e2e

import (
	"context"
	"testing"
	"time"
)

func TestClusterLockExcludes(t *testing.T) {
	ctx := context.Background()
	id := "test/" + t.Name() + time.Now().String()
	l1, err := lockCluster(ctx, id, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockCluster(ctx, id, 1500*time.Millisecond); err == nil {
		t.Fatal("second holder must wait and time out")
	}
	l1.release()
	l2, err := lockCluster(ctx, id, time.Second)
	if err != nil {
		t.Fatalf("lock not released: %v", err)
	}
	l2.release()
}
