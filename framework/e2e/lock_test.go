package e2e

import (
	"context"
	"testing"
	"time"
)

func TestClusterLockExcludes(t *testing.T) {
	ctx := context.Background()
	id := "test/" + t.Name() + time.Now().String()
	l1, err := lockCluster(ctx, id, time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockCluster(ctx, id, 1500*time.Millisecond, false); err == nil {
		t.Fatal("second holder must wait and time out")
	}
	l1.release()
	l2, err := lockCluster(ctx, id, time.Second, false)
	if err != nil {
		t.Fatalf("lock not released: %v", err)
	}
	l2.release()
}

func TestClusterLockShared(t *testing.T) {
	ctx := context.Background()
	id := "test/" + t.Name() + time.Now().String()
	s1, err := lockCluster(ctx, id, time.Second, true)
	if err != nil {
		t.Fatal(err)
	}
	s2, err := lockCluster(ctx, id, time.Second, true)
	if err != nil {
		t.Fatalf("two shared holders must not wait for each other: %v", err)
	}
	if _, err := lockCluster(ctx, id, 1500*time.Millisecond, false); err == nil {
		t.Fatal("an exclusive holder must wait for the shared ones")
	}
	s1.release()
	s2.release()
	x, err := lockCluster(ctx, id, time.Second, false)
	if err != nil {
		t.Fatalf("shared locks not released: %v", err)
	}
	if _, err := lockCluster(ctx, id, 1500*time.Millisecond, true); err == nil {
		t.Fatal("a shared holder must wait for the exclusive one")
	}
	x.release()
}
