// Package nodechange makes node changes transactions: before a suite
// changes a node (a kubelet flag, a unit, a drop-in, a file), it writes on
// the node itself how to undo it. The revert removes the entry once it
// has undone the change; an entry left behind (Ctrl-C while a kubelet
// restarted, a runner killed with SIGKILL) is replayed by the next run or
// by `nodeconform cleanup`, so a node is never left changed.
package nodechange

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/nodeconform/nodeconform/framework/nodeaccess"
)

// Dir holds the journal on each node. /var/lib survives a reboot and a
// node container's restart; /run would not.
const Dir = "/var/lib/nodeconform/journal"

// Entry is one recorded undo.
type Entry struct {
	Node string `json:"node"`
	// Run is the run that made the change.
	Run string `json:"run"`
	// Name says what was changed (a file name part: [a-z0-9-]).
	Name string `json:"name"`
	// Undo is a shell script that restores the node; it must be safe to
	// run twice and on a node where the change was never made.
	Undo string `json:"undo"`
	// Restart lists the systemd units to restart after Undo (kubelet.service,
	// containerd.service): done through a timer so the session survives.
	Restart []string `json:"restart,omitempty"`
	// After is a shell script run once the units are back: it removes what
	// the changed daemon made and the restored one does not clean (a
	// kubelet's cgroup tree at a moved root). Safe to run twice, like Undo.
	After string `json:"after,omitempty"`
}

func (e Entry) file() string { return path.Join(Dir, e.Run+"."+e.Name+".sh") }

const (
	restartHeader = "# nodeconform-restart:"
	afterHeader   = "# nodeconform-after:"
)

// script is the entry as stored: headers naming the units to restart and
// carrying the after-script (base64: one comment line), then the undo.
func (e Entry) script() string {
	after := ""
	if e.After != "" {
		after = afterHeader + " " + base64.StdEncoding.EncodeToString([]byte(e.After)) + "\n"
	}
	return fmt.Sprintf("#!/bin/sh\n# nodeconform journal: run %s, %s on node %s\n%s %s\n%s%s\n", e.Run, e.Name, e.Node, restartHeader, strings.Join(e.Restart, " "), after, e.Undo)
}

// parseEntry reads a stored entry back: the whole body is the undo (its
// headers are comments), the headers give the units and the after-script.
func parseEntry(node, file, body string) (Entry, bool, error) {
	run, rest, ok := splitFile(file)
	if !ok {
		return Entry{}, false, nil
	}
	e := Entry{Node: node, Run: run, Name: rest, Undo: body}
	for _, line := range strings.Split(body, "\n") {
		if units, ok := strings.CutPrefix(line, restartHeader); ok {
			e.Restart = strings.Fields(units)
		}
		if b64, ok := strings.CutPrefix(line, afterHeader); ok {
			after, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
			if err != nil {
				return Entry{}, false, fmt.Errorf("node %s: journal entry %s: after-script: %w", node, file, err)
			}
			e.After = string(after)
		}
	}
	return e, true, nil
}

// Journal reaches nodes through the probe.
type Journal struct {
	Probes *nodeaccess.Probes
	// RestartTimeout bounds the wait for restarted units after a replay.
	RestartTimeout time.Duration
	// Retry bounds how long a journal write or removal is retried while
	// the node's kubelet (the exec path) is restarting.
	Retry time.Duration
}

// Record writes e on its node before the change is made; a change whose
// undo could not be recorded must not be made.
func (j Journal) Record(ctx context.Context, e Entry) error {
	if err := markWritten(e.Run); err != nil {
		return fmt.Errorf("node %s: record how to undo %s: %w", e.Node, e.Name, err)
	}
	b64 := base64.StdEncoding.EncodeToString([]byte(e.script()))
	f := e.file()
	script := fmt.Sprintf("set -e; mkdir -p %s; echo %s | base64 -d > %s.tmp; chmod 0700 %s.tmp; mv %s.tmp %s; sync", Dir, b64, f, f, f, f)
	_, err := j.Probes.MustHostRetry(ctx, e.Node, j.Retry, "sh", "-c", script)
	if err != nil {
		return fmt.Errorf("node %s: record how to undo %s: %w", e.Node, e.Name, err)
	}
	if len(e.Restart) == 0 {
		return nil
	}
	// A change that restarts the kubelet or the runtime can keep them
	// from coming back, and then nothing reaches the node to undo it:
	// every command goes through the kubelet's exec. The node guards
	// itself (Guard).
	limit := j.RestartTimeout
	if limit <= 0 {
		limit = DefaultGuardLimit
	}
	unit := fmt.Sprintf("nodeconform-guard-%s-%s-%d", e.Run, e.Name, time.Now().UnixNano())
	args := append([]string{"systemd-run", "--quiet", "--collect", "--unit=" + unit,
		"--description=nodeconform: undo " + e.Name + " of run " + e.Run + " if " + strings.Join(e.Restart, " ") + " stay down"},
		guardCommand(e.Guard(limit, GuardLifetime, guardPoll))...)
	if _, err := j.Probes.MustHostRetry(ctx, e.Node, j.Retry, args...); err != nil {
		return fmt.Errorf("node %s: start the guard that undoes %s where %v stay down: %w", e.Node, e.Name, e.Restart, err)
	}
	return nil
}

// DefaultGuardLimit is how long the units a change restarts may stay down
// before the node's guard undoes the change, when the journal has no
// RestartTimeout.
const DefaultGuardLimit = 3 * time.Minute

// GuardLifetime bounds a guard whose entry is never removed (its run was
// killed and no later run replayed it): no process of nodeconform stays
// on a node for longer.
const GuardLifetime = 2 * time.Hour

// guardPoll is how often a guard looks at its units.
const guardPoll = 5 * time.Second

// guardCommand runs script as the unit's command. It travels as base64:
// systemd replaces ${NAME} in a command's arguments with its own
// environment when it runs them, and the script's shell variables would
// arrive empty.
func guardCommand(script string) []string {
	return []string{"sh", "-c", `eval "$(echo ` + base64.StdEncoding.EncodeToString([]byte(script)) + ` | base64 -d)"`}
}

// Guard is a shell script for the node, run beside the change as a
// transient systemd unit: while e's entry exists (at most lifetime), it
// looks at e's units every poll; once any of them has not been up for
// limit on end, it runs the entry's undo, restarts the units, runs the
// after-script once they are active, and removes the entry. A suite's own
// undo removes the entry, and the guard ends within one poll. Up is
// active with no automatic restart since the last look: a kubelet that
// refuses its configuration exits within a second and systemd starts it
// again, so a look often finds it "active"; its NRestarts grows. A
// restart asked for (systemctl restart) does not count there. Everything
// it runs is safe to run twice (Entry), so a suite undoing after the
// guard did changes nothing.
func (e Entry) Guard(limit, lifetime, poll time.Duration) string {
	return e.guard(e.file(), limit, lifetime, poll)
}

func (e Entry) guard(file string, limit, lifetime, poll time.Duration) string {
	secs := func(d time.Duration) int { return max(1, int(d.Round(time.Second)/time.Second)) }
	after := ""
	if e.After != "" {
		after = base64.StdEncoding.EncodeToString([]byte(e.After))
	}
	return fmt.Sprintf(`f=%[1]s; units="%[2]s"; limit=%[3]d; poll=%[4]d; after=%[5]s
end=$(( $(date +%%s) + %[6]d )); down=0
restarts() { for u in $units; do systemctl show -p NRestarts --value "$u"; done | tr '\n' ' '; }
seen=$(restarts)
up() {
  for u in $units; do [ "$(systemctl show -p ActiveState --value "$u")" = active ] || return 1; done
  now=$(restarts); [ "$now" = "$seen" ]; r=$?; seen=$now; return $r
}
while [ -e "$f" ] && [ "$(date +%%s)" -lt "$end" ]; do
  sleep "$poll"
  if up; then down=0; continue; fi
  down=$((down + poll))
  [ "$down" -ge "$limit" ] || continue
  echo "nodeconform guard: $units down for ${down}s: undoing %[7]s of run %[8]s"
  sh "$f"
  systemctl restart $units
  waited=0
  until up; do
    [ "$waited" -lt "$limit" ] || { echo "nodeconform guard: $units still down after the undo: entry $f kept"; exit 1; }
    sleep "$poll"; waited=$((waited + poll))
  done
  if [ -n "$after" ]; then echo "$after" | base64 -d | sh; fi
  rm -f "$f"
  echo "nodeconform guard: undid %[7]s of run %[8]s"
  exit 0
done
`, file, strings.Join(e.Restart, " "), secs(limit), secs(poll), after, secs(lifetime), e.Name, e.Run)
}

// markerDir holds, on the machine that runs the suites, an empty file per
// run that has begun to record a journal entry. A suite's end reads every
// node's journal for its own run's entries only when that file exists:
// its Ginkgo processes share this machine's files, not their memory.
var markerDir = filepath.Join(os.TempDir(), "nodeconform-journal-runs")

func marker(run string) string { return filepath.Join(markerDir, "run-"+run) }

// markWritten creates run's marker before an entry is written: if the
// marker cannot be made, the entry is not written, so a missing marker
// proves that the run wrote nothing.
func markWritten(run string) error {
	if err := os.MkdirAll(markerDir, 0o755); err != nil {
		return fmt.Errorf("mark run %s as writing the node journal: %w", run, err)
	}
	f, err := os.OpenFile(marker(run), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("mark run %s as writing the node journal: %w", run, err)
	}
	return f.Close()
}

// MayHaveWritten reports whether run may have written a journal entry on
// some node; it is false only when run provably wrote none, so that a
// caller may skip reading the nodes' journals for it.
func MayHaveWritten(run string) bool {
	_, err := os.Stat(marker(run))
	return !errors.Is(err, fs.ErrNotExist)
}

// ForgetRun removes run's marker, once the run's end has undone what its
// journal held (or a later run's replay will).
func ForgetRun(run string) { _ = os.Remove(marker(run)) }

// Done removes e once the change is undone.
func (j Journal) Done(ctx context.Context, e Entry) error {
	_, err := j.Probes.MustHostRetry(ctx, e.Node, j.Retry, "rm", "-f", e.file())
	return err
}

// Undo runs e's undo, restarts its units and waits for them, then
// removes the entry: the revert of a suite and the replay of a leftover
// are the same code.
func (j Journal) Undo(ctx context.Context, e Entry) error {
	// The script travels with the call, so an undo also works where the
	// entry was never written (the change failed before it).
	if err := j.run(ctx, e.Node, e.script()); err != nil {
		return fmt.Errorf("node %s: undo %s: %w", e.Node, e.Name, err)
	}
	if len(e.Restart) > 0 {
		if err := j.Probes.Restart(ctx, e.Node, e.Restart, comms(e.Restart), j.RestartTimeout); err != nil {
			return fmt.Errorf("node %s: undo %s: %w", e.Node, e.Name, err)
		}
	}
	if e.After != "" {
		if err := j.run(ctx, e.Node, e.After); err != nil {
			return fmt.Errorf("node %s: undo %s, after the restart: %w", e.Node, e.Name, err)
		}
	}
	return j.Done(ctx, e)
}

// run runs a shell script on node, carried as base64 so no quoting of
// its text can break the command line.
func (j Journal) run(ctx context.Context, node, script string) error {
	b64 := base64.StdEncoding.EncodeToString([]byte(script))
	_, err := j.Probes.MustHostRetry(ctx, node, j.Retry, "sh", "-c", "echo "+b64+" | base64 -d | sh")
	return err
}

// splitFile reads <run>.<name>.sh; other files in the directory are not
// entries.
func splitFile(file string) (run, name string, ok bool) {
	if !strings.HasSuffix(file, ".sh") {
		return "", "", false
	}
	return strings.Cut(strings.TrimSuffix(file, ".sh"), ".")
}

// comms are the process names of units, for the restart wait.
func comms(units []string) []string {
	var out []string
	for _, u := range units {
		out = append(out, strings.TrimSuffix(u, ".service"))
	}
	return out
}

// Pending lists a node's journal entries, oldest run first.
func (j Journal) Pending(ctx context.Context, node string) ([]Entry, error) {
	r, err := j.Probes.HostRetry(ctx, node, j.Retry, "ls", "-1", Dir)
	if err != nil {
		return nil, err
	}
	if r.ExitCode != 0 {
		return nil, nil // no journal directory: nothing was ever changed
	}
	var out []Entry
	for _, name := range strings.Fields(r.Stdout) {
		if _, _, ok := splitFile(name); !ok {
			continue
		}
		body, err := j.Probes.MustHostRetry(ctx, node, j.Retry, "cat", path.Join(Dir, name))
		if err != nil {
			return nil, err
		}
		e, ok, err := parseEntry(node, name, body)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Run+out[a].Name < out[b].Run+out[b].Name })
	return out, nil
}
