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
