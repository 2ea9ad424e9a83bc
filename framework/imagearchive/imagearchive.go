// Package imagearchive reads docker-save archives and tells whether a
// node's containerd already holds their images, so that loading an image
// a node has (same configuration digest, same tags) is skipped.
package imagearchive

import (
	"archive/tar"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// Image is one image of a docker-save archive.
type Image struct {
	// Config is the hex sha256 of the image configuration.
	Config string
	// Refs are the archive's tags as containerd names them.
	Refs []string
}

// Images reads manifest.json of a docker-save archive.
func Images(r io.Reader) ([]Image, error) {
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("image archive has no manifest.json")
		}
		if err != nil {
			return nil, err
		}
		if h.Name != "manifest.json" {
			continue
		}
		var m []struct {
			Config   string
			RepoTags []string
		}
		if err := json.NewDecoder(tr).Decode(&m); err != nil {
			return nil, fmt.Errorf("manifest.json: %w", err)
		}
		var out []Image
		for _, e := range m {
			cfg := strings.TrimSuffix(filepath.Base(e.Config), ".json")
			img := Image{Config: cfg}
			for _, t := range e.RepoTags {
				img.Refs = append(img.Refs, NormalizeRef(t))
			}
			out = append(out, img)
		}
		return out, nil
	}
}

// NormalizeRef names an image as containerd does (docker.io/library/...).
func NormalizeRef(ref string) string {
	first, rest, found := strings.Cut(ref, "/")
	if !found {
		return "docker.io/library/" + ref
	}
	if strings.ContainsAny(first, ".:") || first == "localhost" {
		return ref
	}
	return "docker.io/" + first + "/" + rest
}

// MissingScript is a node shell command printing the config digest of
// each image absent from containerd's content store or not tagged with
// its refs: empty output means the archive need not be imported.
func MissingScript(imgs []Image) string {
	var b strings.Builder
	b.WriteString("refs=$(ctr --namespace=k8s.io images ls -q); ")
	for _, img := range imgs {
		fmt.Fprintf(&b, "test -e /var/lib/containerd/io.containerd.content.v1.content/blobs/sha256/%s || echo %s; ", img.Config, img.Config)
		for _, r := range img.Refs {
			fmt.Fprintf(&b, "echo \"$refs\" | grep -qxF '%s' || echo %s; ", r, img.Config)
		}
	}
	b.WriteString("true")
	return b.String()
}
