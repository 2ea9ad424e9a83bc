package imagearchive

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"
)

func TestImagesAndMissingScript(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	manifest := `[{"Config":"abc123.json","RepoTags":["nodeconform/probe:e930"],"Layers":["x/layer.tar"]},` +
		`{"Config":"blobs/sha256/def456","RepoTags":["registry.k8s.io/pause:3.10.2","busybox:1"]}]`
	for name, body := range map[string]string{"x/layer.tar": "layer", "manifest.json": manifest} {
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body))})
		_, _ = tw.Write([]byte(body))
	}
	_ = tw.Close()
	imgs, err := Images(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(imgs) != 2 || imgs[0].Config != "abc123" || imgs[0].Refs[0] != "docker.io/nodeconform/probe:e930" ||
		imgs[1].Config != "def456" || imgs[1].Refs[0] != "registry.k8s.io/pause:3.10.2" || imgs[1].Refs[1] != "docker.io/library/busybox:1" {
		t.Fatalf("%+v", imgs)
	}
	script := MissingScript(imgs)
	for _, want := range []string{"blobs/sha256/abc123 || echo abc123", "grep -qxF 'docker.io/nodeconform/probe:e930'"} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q: %s", want, script)
		}
	}
	if _, err := Images(strings.NewReader("")); err == nil {
		t.Fatal("an archive without manifest.json must be an error")
	}
}
