package nfd

import (
	"reflect"
	"strings"
	"testing"
)

func TestWrapperReplaces(t *testing.T) {
	goMod := `module sigs.k8s.io/node-feature-discovery

go 1.23.0

require (
	k8s.io/api v0.32.3
	sigs.k8s.io/node-feature-discovery/api/nfd v0.0.0-00010101000000-000000000000
)

replace github.com/example/single v1.0.0 => github.com/example/fork v1.0.1 // a comment

// The k8s "sub-"packages do not have 'semver' compatible versions.
replace (
	github.com/gogo/protobuf => github.com/gogo/protobuf v1.3.2
	k8s.io/api => k8s.io/api v0.32.3
	sigs.k8s.io/node-feature-discovery/api/nfd => ./api/nfd
)
`
	got, err := WrapperReplaces(goMod, Module, "v0.17.3")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"replace github.com/example/single v1.0.0 => github.com/example/fork v1.0.1",
		"replace github.com/gogo/protobuf => github.com/gogo/protobuf v1.3.2",
		"replace k8s.io/api => k8s.io/api v0.32.3",
		"replace sigs.k8s.io/node-feature-discovery/api/nfd => sigs.k8s.io/node-feature-discovery/api/nfd v0.17.3",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := WrapperReplaces("replace example.com/x => ../elsewhere\n", Module, "v0.17.3"); err == nil {
		t.Error("a local path outside the module was accepted")
	}
}

func TestLDFlags(t *testing.T) {
	got := LDFlags()
	for _, want := range []string{
		"-X sigs.k8s.io/node-feature-discovery/pkg/version.version=" + NFD,
		"-X sigs.k8s.io/node-feature-discovery/pkg/utils/hostpath.pathPrefix=/host-",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("LDFlags() = %q, lacks %q", got, want)
		}
	}
}
