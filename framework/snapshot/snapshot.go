// Package snapshot records what a read-only run must leave untouched —
// every API object outside the run's own namespaces and each node's
// configuration files, daemons and mounts — so a verify-mode run can be checked after the fact,
// not only trusted to its guard.
package snapshot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
)

// Snapshot maps a key ("/nodes//worker", "node/worker:files:/etc/containerd/config.toml")
// to what was read: an API object as Digest writes it, a node file's
// sha256, a daemon's PIDs.
type Snapshot map[string]string

// Diff lists keys added, removed or changed from before to after, sorted.
// A changed API object names the fields that differ ("changed
// /nodes//w: spec.taints"), so a failed proof says what moved.
func Diff(before, after Snapshot) []string {
	var out []string
	for k, v := range before {
		w, ok := after[k]
		switch {
		case !ok:
			out = append(out, "removed "+k)
		case w != v:
			line := "changed " + k
			if f := changedFields(v, w); len(f) > 0 {
				line += ": " + strings.Join(f, ", ")
			}
			out = append(out, line)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			out = append(out, "added "+k)
		}
	}
	sort.Strings(out)
	return out
}

// fieldDepth bounds how deep changedFields names a field: deep enough
// for a label or an annotation (metadata.labels.<key>), shallow enough
// that a changed list or template is named once, not per element.
const fieldDepth = 3

// changedFields names the fields that differ between two objects as
// Digest writes them; nil when either is not such an object.
func changedFields(a, b string) []string {
	var x, y map[string]any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return nil
	}
	var out []string
	var walk func(path string, x, y map[string]any, depth int)
	walk = func(path string, x, y map[string]any, depth int) {
		keys := map[string]bool{}
		for k := range x {
			keys[k] = true
		}
		for k := range y {
			keys[k] = true
		}
		for k := range keys {
			p := k
			if path != "" {
				p = path + "." + k
			}
			u, v := x[k], y[k]
			if reflect.DeepEqual(u, v) {
				continue
			}
			um, uok := u.(map[string]any)
			vm, vok := v.(map[string]any)
			if uok && vok && depth < fieldDepth {
				walk(p, um, vm, depth+1)
				continue
			}
			out = append(out, p)
		}
	}
	walk("", x, y, 1)
	sort.Strings(out)
	return out
}

// Digest writes an object without the fields that move on their own:
// status, resourceVersion, managedFields. What is left is what a client
// writes (spec, labels, annotations, data, rules…), kept whole (compact
// JSON, keys sorted) so that Diff can name a changed field.
func Digest(obj map[string]any) (string, error) {
	u := (&unstructured.Unstructured{Object: obj}).DeepCopy()
	unstructured.RemoveNestedField(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "resourceVersion")
	unstructured.RemoveNestedField(u.Object, "metadata", "managedFields")
	b, err := json.Marshal(u.Object)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// volatile are namespaced kinds that change on their own (heartbeats,
// controller bookkeeping, event streams) and say nothing about
// configuration.
var volatile = map[string]bool{"events": true, "leases": true, "endpoints": true, "endpointslices": true}

// API lists every object the API server serves (all resources that
// support list), keyed "group/resource/namespace/name", except objects in
// namespaces whose name starts with ownPrefix (the run's own) and the
// volatile kinds. Namespaces themselves are included: a read-only run must
// leave none behind.
func API(ctx context.Context, dc discovery.DiscoveryInterface, dyn dynamic.Interface, ownPrefix string) (Snapshot, error) {
	lists, err := dc.ServerPreferredResources()
	if err != nil && len(lists) == 0 {
		return nil, fmt.Errorf("discover API resources: %w", err)
	}
	out := Snapshot{}
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			return nil, err
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !hasVerb(r.Verbs, "list") || volatile[r.Name] {
				continue
			}
			// Reviews are virtual: created per request, never stored;
			// componentstatuses are computed on each read.
			if strings.HasSuffix(r.Name, "reviews") || r.Name == "componentstatuses" {
				continue
			}
			gvr := gv.WithResource(r.Name)
			items, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{})
			if err != nil {
				return nil, fmt.Errorf("list %s: %w", gvr, err)
			}
			for _, it := range items.Items {
				if ns := it.GetNamespace(); ns != "" && ownPrefix != "" && strings.HasPrefix(ns, ownPrefix) {
					continue
				}
				d, err := Digest(it.Object)
				if err != nil {
					return nil, err
				}
				out[gv.Group+"/"+r.Name+"/"+it.GetNamespace()+"/"+it.GetName()] = d
			}
		}
	}
	return out, nil
}

func hasVerb(verbs []string, v string) bool {
	for _, x := range verbs {
		if x == v {
			return true
		}
	}
	return false
}

// NodeCommands read a node's configuration: files under the directories
// that hold kubelet, runtime and systemd configuration, the PIDs of the
// long-running daemons (a restart changes them), and the mount table of
// PID 1 without the per-pod mounts that come and go with every pod.
var NodeCommands = map[string][]string{
	"files": {"sh", "-c", "find /etc/systemd /run/systemd/system /etc/containerd /etc/default /etc/kubernetes /etc/sysctl.d /var/lib/kubelet/config.yaml -type f 2>/dev/null | sort | xargs -r sha256sum"},
	"pids":  {"sh", "-c", "for p in systemd kubelet containerd; do echo $p $(pidof $p); done"},
	// What nodeconform itself may leave: journal entries, its /run
	// directories, kubensenter, the pinned kubens namespace.
	"leftovers": {"sh", "-c", "ls -d /var/lib/nodeconform/journal/* /run/nodeconform-* /usr/local/bin/kubensenter /run/kubens/mnt 2>/dev/null; true"},
	// Which daemons share systemd's mount namespace (the relation, not
	// the inode numbers, which a restart changes).
	"mntns":  {"sh", "-c", `s=$(readlink /proc/1/ns/mnt); for p in kubelet containerd; do n=$(readlink /proc/$(pidof -s $p)/ns/mnt 2>/dev/null); if [ "$n" = "$s" ]; then echo "$p shares-systemd-mnt"; else echo "$p own-mnt"; fi; done`},
	"mounts": {"sh", "-c", "findmnt -rn --task 1 -o TARGET,FSTYPE,SOURCE,PROPAGATION | grep -v -e '^/var/lib/kubelet/pods/' -e '^/run/containerd/' -e '^/run/netns/' -e '^/var/lib/containerd/' | sort"},
}

// Node snapshots one node, running each of NodeCommands through run
// (docker exec on kind nodes: the observer is not the probe under test),
// all at once: run must be safe to call concurrently. Each output line is
// one key, so a diff names the file or mount.
func Node(node string, run func(cmd ...string) (string, error)) (Snapshot, error) {
	type result struct {
		what, text string
		err        error
	}
	results := make(chan result, len(NodeCommands))
	for what, cmd := range NodeCommands {
		go func() {
			text, err := run(cmd...)
			results <- result{what, text, err}
		}()
	}
	out := Snapshot{}
	var errs []error
	for range NodeCommands {
		r := <-results
		if r.err != nil {
			errs = append(errs, fmt.Errorf("node %s: read %s: %w", node, r.what, r.err))
			continue
		}
		for _, line := range strings.Split(strings.TrimSpace(r.text), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				key, val := line, ""
				if r.what == "files" {
					// "<sha256>  <path>": the path is the key.
					if f := strings.Fields(line); len(f) == 2 {
						key, val = f[1], f[0]
					}
				}
				if r.what == "pids" {
					if f := strings.Fields(line); len(f) >= 1 {
						key, val = f[0], strings.Join(f[1:], " ")
					}
				}
				out["node/"+node+":"+r.what+":"+key] = val
			}
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}
