package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKindConfigData(t *testing.T) {
	name, data, err := Settings{KindConfig: "default"}.KindConfigData()
	if err != nil || !strings.Contains(string(data), "kind: Cluster") || name != "kindconfigs/default.yaml" {
		t.Fatalf("embedded default: %q %v", name, err)
	}
	p := filepath.Join(t.TempDir(), "mine.yaml")
	os.WriteFile(p, []byte("kind: Cluster\n"), 0o644)
	if name, _, err := (Settings{KindConfig: p}).KindConfigData(); err != nil || name != p {
		t.Fatalf("file: %q %v", name, err)
	}
	_, _, err = Settings{KindConfig: "/no/such/config.yaml"}.KindConfigData()
	if err == nil || !strings.Contains(err.Error(), "/no/such/config.yaml") {
		t.Fatalf("want error naming the path, got %v", err)
	}
}
