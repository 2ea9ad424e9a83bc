package profile

import (
	"path/filepath"
	"testing"
)

// TestShippedProfilesParse loads every profile shipped in kindconfigs/
// strictly, so a typo there fails here rather than in a cluster run.
func TestShippedProfilesParse(t *testing.T) {
	files, err := filepath.Glob("../../kindconfigs/*-profile.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("want the shipped profiles (default, prodlike, vm), found %v (%v)", files, err)
	}
	for _, f := range files {
		p, err := Load(f)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if len(p.Spec.Groups) == 0 {
			t.Errorf("%s: no node groups", f)
		}
	}
}
