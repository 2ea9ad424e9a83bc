package main

import (
	"os"
	"path/filepath"
	"testing"
)

// Bad input exits 2 with a message naming it; nothing is created.
func TestClusterUpBadInputExits2(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnodes:\n- role: worker\n  imagee: typo\n"), 0o644)
	for _, args := range [][]string{
		{"cluster", "up", "--kind-config", "/no/such/kind.yaml"},
		{"cluster", "up", "--kind-config", bad},
		{"cluster", "up", "--config", "/no/such/config.yaml"},
		{"no-such-command"},
	} {
		if code := execute(args); code != exitUsageEnv {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsageEnv)
		}
	}
}
