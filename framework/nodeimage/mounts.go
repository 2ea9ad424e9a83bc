package nodeimage

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// mountsUnder lists the mount points at or below dir (from mountinfo).
func mountsUnder(mountinfo, dir string) []string {
	dir = filepath.Clean(dir)
	var out []string
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := strings.ReplaceAll(f[4], `\040`, " ")
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	// Deepest first, so children go before their parents.
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// removeRoot deletes a root filesystem directory that debootstrap may
// have left with proc, sys or dev mounted inside (killed before its own
// unmount): it detaches those mounts first and refuses to delete while
// any remains, so RemoveAll never walks into the host's /proc, /sys or
// /dev.
func removeRoot(dir string) error {
	read := func() []string {
		data, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return nil
		}
		return mountsUnder(string(data), dir)
	}
	for _, mp := range read() {
		_ = unix.Unmount(mp, unix.MNT_DETACH)
	}
	if left := read(); len(left) > 0 {
		return fmt.Errorf("not removing %s: still mounted inside it: %s", dir, strings.Join(left, ", "))
	}
	return os.RemoveAll(dir)
}
