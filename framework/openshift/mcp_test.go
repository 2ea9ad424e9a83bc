package openshift

import (
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func pool(updated, updating, degraded string, machines, updatedN, ready int64) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"metadata": map[string]any{"name": "worker"},
		"status": map[string]any{
			"machineCount": machines, "updatedMachineCount": updatedN, "readyMachineCount": ready,
			"conditions": []any{
				map[string]any{"type": "Updated", "status": updated},
				map[string]any{"type": "Updating", "status": updating},
				map[string]any{"type": "Degraded", "status": degraded},
			},
		},
	}}
}

func TestPoolDone(t *testing.T) {
	if done, err := PoolStatusOf(pool("True", "False", "False", 3, 3, 3)).Done(); !done || err != nil {
		t.Fatalf("rolled-out pool: %v %v", done, err)
	}
	if done, _ := PoolStatusOf(pool("False", "True", "False", 3, 1, 2)).Done(); done {
		t.Fatal("updating pool reported done")
	}
	if done, _ := PoolStatusOf(pool("True", "False", "False", 3, 2, 3)).Done(); done {
		t.Fatal("pool with a machine not updated reported done")
	}
	if _, err := PoolStatusOf(pool("False", "False", "True", 3, 3, 3)).Done(); err == nil {
		t.Fatal("degraded pool must be an error")
	}
}
