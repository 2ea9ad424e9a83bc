package nodeimage

import "testing"

func TestMirrorFromList(t *testing.T) {
	text := "# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian bookworm main\ndeb http://other.example/debian-security bookworm-security main\n"
	if got := mirrorFromList(text, "bookworm"); got != "http://mirror.example/debian" {
		t.Fatalf("got %q", got)
	}
	if got := mirrorFromList(text, "trixie"); got != "" {
		t.Fatalf("got %q for a missing suite", got)
	}
}

func TestMirrorFromDeb822(t *testing.T) {
	text := "Types: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
	if got := mirrorFromDeb822(text, "bookworm"); got != "http://mirror.example/debian" {
		t.Fatalf("got %q", got)
	}
	if got := mirrorFromDeb822("Types: deb-src\nURIs: http://x/debian\nSuites: bookworm\n", "bookworm"); got != "" {
		t.Fatalf("deb-src must not count, got %q", got)
	}
}
