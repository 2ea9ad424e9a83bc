package nodeimage

import (
	"reflect"
	"testing"
)

func TestMountsUnder(t *testing.T) {
	info := `22 1 0:21 / /proc rw - proc proc rw
90 60 0:5 / /cache/vm/root-x.tmp/proc rw - proc proc rw
91 90 0:6 / /cache/vm/root-x.tmp/proc/sys/fs/binfmt_misc rw - binfmt_misc b rw
92 60 0:7 / /cache/vm/root-x.tmp/dev/pts rw - devpts devpts rw
93 60 0:8 / /cache/vm/root-x.tmpother rw - tmpfs t rw
`
	got := mountsUnder(info, "/cache/vm/root-x.tmp/")
	want := []string{"/cache/vm/root-x.tmp/proc/sys/fs/binfmt_misc", "/cache/vm/root-x.tmp/dev/pts", "/cache/vm/root-x.tmp/proc"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	if got := mountsUnder(info, "/elsewhere"); len(got) != 0 {
		t.Fatalf("got %v", got)
	}
}
