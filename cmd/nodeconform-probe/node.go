package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"github.com/nodeconform/nodeconform/framework/probeapi"
	"github.com/nodeconform/nodeconform/framework/procfs"
)

// procRoot is where processes are read: in a hostPID pod, the node's.
const procRoot = "/proc"

// ns prints identity and namespaces of the processes named by --pid
// (a number or "self") and --comm (every process of that name).
func ns(args []string) error {
	fs := flag.NewFlagSet("ns", flag.ExitOnError)
	var pids, comms multiFlag
	fs.Var(&pids, "pid", "process id or self (repeatable)")
	fs.Var(&comms, "comm", "process name (repeatable)")
	_ = fs.Parse(args)
	var res probeapi.NS
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
	emit(probeapi.Mounts{PID: n, Mounts: m})
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
	res := probeapi.Host{Command: args}
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

func readFile(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: read PATH")
	}
	data, err := os.ReadFile(args[0])
	if err != nil {
		return err
	}
	emit(probeapi.Read{Path: args[0], Content: string(data)})
	return nil
}

func readFiles(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: read-all PATH...")
	}
	out := make([]probeapi.Read, 0, len(args))
	for _, a := range args {
		data, err := os.ReadFile(a)
		if err != nil {
			return err
		}
		out = append(out, probeapi.Read{Path: a, Content: string(data)})
	}
	emit(out)
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// burn spins one CPU until killed: the load for CFS throttling specs.
// With --on-signal it first waits, idle, for SIGUSR1 (sent by wake): a
// spec starts every node's loops ahead and sets each going in its turn,
// so that a node's pod starts overlap the node before's measurement
// without loading its CPU.
func burn(args []string) {
	fs := flag.NewFlagSet("burn", flag.ExitOnError)
	onSignal := fs.Bool("on-signal", false, "wait for SIGUSR1 before spinning")
	_ = fs.Parse(args)
	if *onSignal {
		// Left registered: a second SIGUSR1 is swallowed, not fatal.
		woken := make(chan os.Signal, 1)
		signal.Notify(woken, syscall.SIGUSR1)
		<-woken
	}
	runtime.GOMAXPROCS(1)
	x := 0
	for {
		x++
	}
}

// wake sends SIGUSR1 to the container's PID 1, a `burn --on-signal`.
func wake() error {
	if err := syscall.Kill(1, syscall.SIGUSR1); err != nil {
		return fmt.Errorf("signal PID 1: %w", err)
	}
	emit(map[string]int{"signalled": 1})
	return nil
}

// held keeps alloc's memory reachable while it sleeps, so the collector
// cannot return it.
var held [][]byte

// alloc touches N MiB and holds it, so a container over its memory limit
// is OOM-killed; under a runtime that applies no limit it keeps running
// with the memory until stopped (a bare select{} was a deadlock the Go
// runtime ended with exit 2, which looked like a crash, not like an
// unenforced limit).
func alloc(args []string) error {
	fs := flag.NewFlagSet("alloc", flag.ExitOnError)
	mib := fs.Int("mib", 64, "MiB to allocate and touch")
	_ = fs.Parse(args)
	var chunks [][]byte
	for i := 0; i < *mib; i++ {
		b := make([]byte, 1<<20)
		for j := 0; j < len(b); j += 4096 {
			b[j] = 1
		}
		chunks = append(chunks, b)
	}
	held = chunks
	emit(map[string]int{"allocatedMiB": len(held)})
	sleep()
	return nil
}

// cgroupOf finds a process whose cgroup path names the container ID and
// prints its /proc/<pid>/cgroup: the kernel's own answer to where the
// container's cgroups are.
func cgroupOf(args []string) error {
	fs := flag.NewFlagSet("cgroup-of", flag.ExitOnError)
	id := fs.String("container", "", "container ID")
	podUID := fs.String("pod-uid", "", "pod UID: any process in the pod's cgroup (pause, a container, a Kata shim or VMM)")
	_ = fs.Parse(args)
	var needles []string
	switch {
	case *id != "" && *podUID == "":
		needles = []string{*id}
	case *podUID != "" && *id == "":
		// cgroupfs names pod<uid>, systemd pod<uid with underscores>.slice.
		needles = []string{"pod" + *podUID, "pod" + strings.ReplaceAll(*podUID, "-", "_")}
	default:
		return errors.New("exactly one of --container and --pod-uid is required")
	}
	entries, err := os.ReadDir(procRoot)
	if err != nil {
		return err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(procRoot + "/" + e.Name() + "/cgroup")
		if err != nil {
			continue
		}
		for _, n := range needles {
			if strings.Contains(string(data), n) {
				emit(probeapi.CgroupOf{PID: pid, Cgroup: string(data)})
				return nil
			}
		}
	}
	return fmt.Errorf("no process in a cgroup of %s", strings.Join(needles, " or "))
}
