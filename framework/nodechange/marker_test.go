package nodechange

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func useMarkerDir(t *testing.T, dir string) {
	old := markerDir
	markerDir = dir
	t.Cleanup(func() { markerDir = old })
}

func TestMayHaveWritten(t *testing.T) {
	useMarkerDir(t, filepath.Join(t.TempDir(), "runs"))
	if MayHaveWritten("r1") {
		t.Fatal("a run that recorded nothing may have written")
	}
	if err := markWritten("r1"); err != nil {
		t.Fatal(err)
	}
	if !MayHaveWritten("r1") {
		t.Fatal("a run that began to record reads as having written nothing")
	}
	if MayHaveWritten("r2") {
		t.Fatal("another run's marker counts for r2")
	}
	ForgetRun("r1")
	if MayHaveWritten("r1") {
		t.Fatal("the marker outlives ForgetRun")
	}
}

func TestRecordFailsWithoutMarker(t *testing.T) {
	// A file where the marker directory should be: no marker can be made,
	// so Record must refuse before it reaches any node.
	file := filepath.Join(t.TempDir(), "runs")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	useMarkerDir(t, filepath.Join(file, "x"))
	// Journal has no probes: reaching a node would panic.
	if err := (Journal{}).Record(context.Background(), Entry{Node: "n", Run: "r1", Name: "x"}); err == nil {
		t.Fatal("Record succeeded without a marker")
	}
}
