package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestDefaults(t *testing.T) {
	c := Default()
	if c.Timeouts.APIReachable.Duration != 15*time.Second || c.Cluster.Name != "nodeconform" {
		t.Fatalf("unexpected defaults: %+v", c)
	}
}

func TestLoadOverrides(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	os.WriteFile(p, []byte("timeouts:\n  podReady: 7s\n"), 0o644)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Timeouts.PodReady.Duration != 7*time.Second || c.Timeouts.NodeReady.Duration != 3*time.Minute {
		t.Fatalf("override not merged: %+v", c.Timeouts)
	}
}

func TestLoadRejectsUnknownKeysAndBadDurations(t *testing.T) {
	dir := t.TempDir()
	for name, body := range map[string]string{
		"unknown": "timeouts:\n  podReadyy: 7s\n",
		"badDur":  "timeouts:\n  podReady: soon\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(body), 0o644)
		_, err := Load(p)
		if err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: want error naming the file, got %v", name, err)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("want error for a missing file")
	}
}

func TestRuntimeClassesReplacedNotMerged(t *testing.T) {
	c := Default()
	if k, ok := c.Class("kata"); !ok || k.Handler != "kata" || k.Overhead["memory"] != "500Mi" {
		t.Fatalf("default kata class: %+v %v", k, ok)
	}
	if g, ok := c.Class("gvisor"); !ok || g.Handler != "runsc" || !g.Isolated {
		t.Fatalf("default gvisor class: %+v %v", g, ok)
	}
	if err := c.Override([]byte("runtimeClass:\n  classes:\n  - name: kata-qemu\n    handler: kata-qemu\n")); err != nil {
		t.Fatal(err)
	}
	if len(c.RuntimeClass.Classes) != 1 {
		t.Fatalf("classes %+v", c.RuntimeClass.Classes)
	}
	// Decoded over the default list, it would inherit kata's overhead and fixture.
	if q := c.RuntimeClass.Classes[0]; q.Overhead != nil || q.Fixture != "" || q.Isolated {
		t.Errorf("override merged into the default class: %+v", q)
	}
	if c.RuntimeClass.SandboxMemoryMargin != 0.10 {
		t.Errorf("margin lost: %v", c.RuntimeClass.SandboxMemoryMargin)
	}
}

// The configurations shipped beside the kind configs (make vm-e2e's) load
// over the defaults: a misspelt key would fail CI only when its run starts.
func TestShippedConfigsLoad(t *testing.T) {
	files, err := filepath.Glob("../../kindconfigs/*-config.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no shipped configs: %v", err)
	}
	for _, f := range files {
		c, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		if c.Timeouts.PodReady.Duration <= Default().Timeouts.PodReady.Duration {
			t.Errorf("%s: podReady %s is not above the default", f, c.Timeouts.PodReady.Duration)
		}
	}
}
