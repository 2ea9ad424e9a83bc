package hostprep

import "testing"

func TestMergeDaemonConfigKeepsSettings(t *testing.T) {
	cfg := map[string]any{
		"log-level": "warn",
		"runtimes":  map[string]any{"other": map[string]any{"path": "/x"}},
	}
	MergeDaemonConfig(cfg, "/w/nodeconform-runc")
	if cfg["log-level"] != "warn" || cfg["default-runtime"] != wrapperRuntime {
		t.Fatalf("merged config: %v", cfg)
	}
	rt := cfg["runtimes"].(map[string]any)
	if _, ok := rt["other"]; !ok {
		t.Fatal("existing runtime dropped")
	}
	if rt[wrapperRuntime].(map[string]any)["path"] != "/w/nodeconform-runc" {
		t.Fatalf("wrapper runtime: %v", rt)
	}
}
