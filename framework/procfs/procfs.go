// Package procfs reads what the kernel says about processes: namespace
// inodes, mount tables and process identity. The probe uses it on nodes
// and in pods; specs get its types back as JSON.
package procfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Namespaces are the namespace links of one process, e.g. "mnt:[4026531841]".
type Namespaces map[string]string

// NamespaceKinds are the namespaces nodeconform compares.
var NamespaceKinds = []string{"mnt", "pid", "net", "uts", "ipc", "cgroup"}

// Process identifies a process and its namespaces.
type Process struct {
	PID     int      `json:"pid"`
	PPID    int      `json:"ppid"`
	Comm    string   `json:"comm"`
	Cmdline []string `json:"cmdline,omitempty"`
	// RSSKiB is the resident set size (VmRSS) in KiB.
	RSSKiB int64      `json:"rssKiB,omitempty"`
	NS     Namespaces `json:"ns,omitempty"`
}

// ReadNamespaces reads /proc/<pid>/ns/* under root ("/proc" normally).
func ReadNamespaces(root string, pid string) (Namespaces, error) {
	ns := Namespaces{}
	for _, k := range NamespaceKinds {
		link, err := os.Readlink(filepath.Join(root, pid, "ns", k))
		if err != nil {
			return nil, err
		}
		ns[k] = link
	}
	return ns, nil
}

// ReadProcess reads identity and namespaces of one process.
func ReadProcess(root string, pid int) (Process, error) {
	p := Process{PID: pid}
	dir := filepath.Join(root, strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return p, err
	}
	p.Comm, p.PPID, err = ParseStat(stat)
	if err != nil {
		return p, fmt.Errorf("pid %d: %w", pid, err)
	}
	if cmd, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		p.Cmdline = splitNul(cmd)
	}
	if st, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
		p.RSSKiB = ParseVmRSS(st)
	}
	p.NS, err = ReadNamespaces(root, strconv.Itoa(pid))
	if errors.Is(err, fs.ErrPermission) {
		// Another user's process without CAP_SYS_PTRACE: identity is
		// still readable, namespaces are not.
		return p, nil
	}
	return p, err
}

// ParseStat returns comm and ppid from the text of /proc/<pid>/stat; comm
// may contain spaces and parentheses, so it is cut at the last ')'.
func ParseStat(stat []byte) (string, int, error) {
	open := bytes.IndexByte(stat, '(')
	end := bytes.LastIndexByte(stat, ')')
	if open < 0 || end < open {
		return "", 0, fmt.Errorf("malformed stat %q", stat)
	}
	rest := strings.Fields(string(stat[end+1:]))
	if len(rest) < 2 {
		return "", 0, fmt.Errorf("malformed stat %q", stat)
	}
	ppid, err := strconv.Atoi(rest[1])
	return string(stat[open+1 : end]), ppid, err
}

func splitNul(b []byte) []string {
	var out []string
	for _, s := range bytes.Split(bytes.TrimRight(b, "\x00"), []byte{0}) {
		if len(s) > 0 {
			out = append(out, string(s))
		}
	}
	return out
}

// FindByComm returns the processes whose comm equals name, oldest first.
func FindByComm(root, name string) ([]Process, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	var out []Process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(root, e.Name(), "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != name {
			continue
		}
		p, err := ReadProcess(root, pid)
		if err != nil {
			continue // exited meanwhile
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PID < out[j].PID })
	return out, nil
}

// Mount is one line of /proc/<pid>/mountinfo.
type Mount struct {
	ID         int    `json:"id"`
	Parent     int    `json:"parent"`
	Root       string `json:"root"`
	MountPoint string `json:"mountPoint"`
	Options    string `json:"options"`
	// Propagation lists the optional fields: shared:N, master:N, unbindable.
	Propagation []string `json:"propagation,omitempty"`
	FSType      string   `json:"fsType"`
	Source      string   `json:"source"`
}

// ParseMountinfo parses the text of /proc/<pid>/mountinfo.
func ParseMountinfo(data []byte) ([]Mount, error) {
	var out []Mount
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(f) < 10 || sep < 6 || sep+2 >= len(f) {
			return nil, fmt.Errorf("malformed mountinfo line %q", sc.Text())
		}
		id, err1 := strconv.Atoi(f[0])
		parent, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("malformed mountinfo ids in %q", sc.Text())
		}
		out = append(out, Mount{
			ID: id, Parent: parent, Root: unescape(f[3]), MountPoint: unescape(f[4]), Options: f[5],
			Propagation: f[6:sep], FSType: f[sep+1], Source: unescape(f[sep+2]),
		})
	}
	return out, sc.Err()
}

// unescape decodes mountinfo's octal escapes (\040 for space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// HasMountAt reports whether a mount point equals path.
func HasMountAt(mounts []Mount, path string) bool {
	for _, m := range mounts {
		if m.MountPoint == path {
			return true
		}
	}
	return false
}

// MountAt returns the last (topmost) mount at path.
func MountAt(mounts []Mount, path string) (Mount, bool) {
	var found Mount
	ok := false
	for _, m := range mounts {
		if m.MountPoint == path {
			found, ok = m, true
		}
	}
	return found, ok
}

// MountOf returns the mount path resides on as the kubelet finds it
// (hostutil's findMountInfo): the last mount in the table whose mount
// point is path or one of its parents.
func MountOf(mounts []Mount, path string) (Mount, bool) {
	for i := len(mounts) - 1; i >= 0; i-- {
		mp := mounts[i].MountPoint
		if mp == "/" || path == mp || strings.HasPrefix(path, mp+"/") {
			return mounts[i], true
		}
	}
	return Mount{}, false
}

// Shared reports whether the mount is in a peer group (shared:N).
func (m Mount) Shared() bool {
	for _, p := range m.Propagation {
		if strings.HasPrefix(p, "shared:") {
			return true
		}
	}
	return false
}

// RuntimeBindMount says whether a container's mount at path is a bind
// mount of a file the container runtime keeps per sandbox or container
// (containerd's CRI sandboxes directory, CRI-O's overlay-containers), and
// returns the source path as mountinfo shows it.
func RuntimeBindMount(mounts []Mount, path string) (string, bool) {
	m, ok := MountAt(mounts, path)
	if !ok || m.Root == "/" {
		return m.Root, false
	}
	for _, dir := range []string{"/io.containerd.grpc.v1.cri/sandboxes/", "/overlay-containers/"} {
		if strings.Contains(m.Root, dir) {
			return m.Root, true
		}
	}
	return m.Root, false
}

// ParseVmRSS returns VmRSS in KiB from the text of /proc/<pid>/status (0
// for kernel threads, which have none).
func ParseVmRSS(status []byte) int64 {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}
