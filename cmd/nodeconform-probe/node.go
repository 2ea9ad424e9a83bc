package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"

	"github.com/nodeconform/nodeconform/framework/procfs"
)

// procRoot is where processes are read: in a hostPID pod, the node's.
const procRoot = "/proc"

// NSResult is what `ns` prints.
type NSResult struct {
	Processes []procfs.Process `json:"processes"`
}

// ns prints identity and namespaces of the processes named by --pid
// (a number or "self") and --comm (every process of that name).
func ns(args []string) error {
	fs := flag.NewFlagSet("ns", flag.ExitOnError)
	var pids, comms multiFlag
	fs.Var(&pids, "pid", "process id or self (repeatable)")
	fs.Var(&comms, "comm", "process name (repeatable)")
	_ = fs.Parse(args)
	var res NSResult
	for _, p := range pids {
		pid := os.Getpid()
		if p != "self" {
			var err error
			if pid, err = strconv.Atoi(p); err != nil {
				return fmt.Errorf("--pid %q: %w", p, err)
			}
		}
		proc, err := procfs.ReadProcess(procRoot, pid)
		if err != nil {
			return err
		}
		res.Processes = append(res.Processes, proc)
	}
	for _, c := range comms {
		found, err := procfs.FindByComm(procRoot, c)
		if err != nil {
			return err
		}
		if len(found) == 0 {
			return fmt.Errorf("no process named %q", c)
		}
		res.Processes = append(res.Processes, found...)
	}
	emit(res)
	return nil
}

// MountsResult is what `mounts` prints.
type MountsResult struct {
	PID    int            `json:"pid"`
	Mounts []procfs.Mount `json:"mounts"`
}

func mounts(args []string) error {
	fs := flag.NewFlagSet("mounts", flag.ExitOnError)
	pid := fs.String("pid", "self", "process whose mount table is read")
	_ = fs.Parse(args)
	p := *pid
	if p == "self" {
		p = strconv.Itoa(os.Getpid())
	}
	data, err := os.ReadFile(procRoot + "/" + p + "/mountinfo")
	if err != nil {
		return err
	}
	m, err := procfs.ParseMountinfo(data)
	if err != nil {
		return err
	}
	n, _ := strconv.Atoi(p)
	emit(MountsResult{PID: n, Mounts: m})
	return nil
}

// mountTmpfs mounts a small tmpfs at a path (creating it), for the mount
// propagation specs.
func mountTmpfs(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: mount-tmpfs PATH")
	}
	if err := os.MkdirAll(args[0], 0o755); err != nil {
		return err
	}
	if err := syscall.Mount("tmpfs", args[0], "tmpfs", 0, "size=1m"); err != nil {
		return fmt.Errorf("mount tmpfs at %s: %w", args[0], err)
	}
	emit(map[string]string{"mounted": args[0]})
	return nil
}

// HostResult is what `host` prints.
type HostResult struct {
	Command  []string `json:"command"`
	ExitCode int      `json:"exitCode"`
	Stdout   string   `json:"stdout"`
	Stderr   string   `json:"stderr"`
}

// host runs a command of the node in all of the node's namespaces (PID 1's),
// the way `oc debug node` does: chrooted into /proc/1/root, the node's own
// nsenter joins PID 1's namespaces, so the command and its libraries are
// the node's. A non-zero exit is reported, not an error.
func host(args []string) error {
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	if len(args) == 0 {
		return errors.New("usage: host -- COMMAND [ARGS]")
	}
	nsargs := append([]string{"-t", "1", "-m", "-u", "-i", "-n", "-p", "--"}, args...)
	cmd := exec.Command("/usr/bin/nsenter", nsargs...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: procRoot + "/1/root"}
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	res := HostResult{Command: args}
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			return fmt.Errorf("run %v on the node: %w", args, err)
		}
		res.ExitCode = ee.ExitCode()
	}
	res.Stdout, res.Stderr = stdout.String(), stderr.String()
	emit(res)
	return nil
}

// ReadResult is what `read` prints.
type ReadResult struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

func readFile(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: read PATH")
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	emit(ReadResult{Path: args[0], Content: string(data)})
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
