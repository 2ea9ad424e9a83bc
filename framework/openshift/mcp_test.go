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

func TestKataConfigStatus(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{
		"conditions": []any{map[string]any{"type": "InProgress", "status": "False"}},
		"kataNodes":  map[string]any{"nodeCount": int64(2), "readyNodeCount": int64(2)},
	}}}
	if done, err := KataConfigStatusOf(u).Done(); !done || err != nil {
		t.Fatalf("installed on 2/2: done=%v err=%v", done, err)
	}
	unstructured.SetNestedField(u.Object, int64(1), "status", "kataNodes", "readyNodeCount")
	if done, _ := KataConfigStatusOf(u).Done(); done {
		t.Fatal("1/2 ready is not done")
	}
	unstructured.SetNestedSlice(u.Object, []any{map[string]any{"name": "worker-0"}}, "status", "kataNodes", "failedToInstall")
	if _, err := KataConfigStatusOf(u).Done(); err == nil {
		t.Fatal("a failed node is an error")
	}
	// No node selected (checkNodeEligibility and no eligible node): fail fast.
	empty := &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{
		"conditions": []any{map[string]any{"type": "InProgress", "status": "False"}}}}}
	if done, err := KataConfigStatusOf(empty).Done(); done || err == nil {
		t.Fatal("finished on zero nodes is an error, not success")
	}
}

func TestKataInstalledNodes(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{"status": map[string]any{
		"kataNodes": map[string]any{"installed": []any{"worker-0", "worker-2"}}}}}
	if got := KataInstalledNodes(u); len(got) != 2 || got[1] != "worker-2" {
		t.Fatalf("got %v", got)
	}
}
