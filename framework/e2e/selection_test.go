package e2e

import "testing"

func TestSelected(t *testing.T) {
	defer func(s map[string]bool) { selected = s }(selected)
	selected = nil
	if !Selected("anything") {
		t.Error("without a preview every spec must count as selected")
	}
	// Outside a running spec the container texts are empty.
	selected = map[string]bool{specKey(nil, "reads the pods"): true}
	if !Selected("reads the pods") || Selected("reads nothing") {
		t.Errorf("Selected: %v / %v", Selected("reads the pods"), Selected("reads nothing"))
	}
	if !AnySelected("reads nothing", "reads the pods") || AnySelected("reads nothing") {
		t.Error("AnySelected")
	}
	// A container's text and a leaf's do not run together.
	if specKey([]string{"a b"}, "c") == specKey([]string{"a"}, "b c") {
		t.Error("specKey joins texts ambiguously")
	}
}
