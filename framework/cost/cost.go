// Package cost counts what a suite asks of the cluster — API requests,
// the writes among them, pods created — so the README can state how a
// suite's load grows with the node count.
package cost

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Figures are one suite's counts (one Ginkgo process, or summed).
type Figures struct {
	// Nodes is how many nodes the suite judged.
	Nodes int `json:"nodes"`
	// APIRequests counts every request to the API server, watches and
	// exec upgrades included; APIWrites the POST, PUT, PATCH and DELETE
	// among them.
	APIRequests int64 `json:"apiRequests"`
	APIWrites   int64 `json:"apiWrites"`
	// PodsCreated counts pods the suite created itself plus the pods of
	// its DaemonSets and Deployments (made by their controllers).
	PodsCreated int64 `json:"podsCreated"`
	// Phases is where the suite's time went, by kind of step (Phase*):
	// how often, and how long in all. Steps of parallel processes
	// overlap, so their sum may exceed the wall time.
	Phases map[string]Phase `json:"phases,omitempty"`
}

// Phase is the count and total time of one kind of step.
type Phase struct {
	Count   int64   `json:"count"`
	Seconds float64 `json:"seconds"`
}

// The kinds of step timed. Setup and teardown are the suite's
// SynchronizedBeforeSuite and AfterSuite; the probe start and the
// namespace waits fall within them.
const (
	PhaseSetup      = "suite setup"
	PhaseProbeStart = "probe DaemonSet start"
	PhaseSpecs      = "specs"
	PhasePodReady   = "pod create to Ready"
	PhaseExec       = "exec round trip"
	// PhaseExecRetried counts the execs made again because the runtime
	// never started them or their stream was cut before the answer
	// (each one also counts as a round trip), so that a node which
	// always needs a second attempt shows in the timings rather than
	// only in its latency.
	PhaseExecRetried = "exec retried"
	// PhaseSessionOpen is the opening of a long-lived exec into a probe
	// pod (framework/nodeaccess): its node commands then count as round
	// trips on it.
	PhaseSessionOpen   = "probe session open"
	PhaseLogRead       = "startup report read"
	PhaseNamespaceGone = "namespace deletion wait"
	PhaseTeardown      = "suite teardown"
)

// Add sums g into f; Nodes is the largest seen.
func (f *Figures) Add(g Figures) {
	f.Nodes = max(f.Nodes, g.Nodes)
	f.APIRequests += g.APIRequests
	f.APIWrites += g.APIWrites
	f.PodsCreated += g.PodsCreated
	for k, p := range g.Phases {
		f.AddPhase(k, p.Count, p.Seconds)
	}
}

// AddPhase adds n steps of kind, secs in all.
func (f *Figures) AddPhase(kind string, n int64, secs float64) {
	if f.Phases == nil {
		f.Phases = map[string]Phase{}
	}
	p := f.Phases[kind]
	p.Count += n
	p.Seconds += secs
	f.Phases[kind] = p
}

var (
	phaseMu sync.Mutex
	phases  = map[string]Phase{}
)

// Time records one step of kind that began at start and ends now.
func Time(kind string, start time.Time) {
	d := time.Since(start).Seconds()
	phaseMu.Lock()
	p := phases[kind]
	p.Count++
	p.Seconds += d
	phases[kind] = p
	phaseMu.Unlock()
}

var requests, writes, podCreates, controllerPods atomic.Int64

// Transport counts the requests that go through it.
type Transport struct{ Next http.RoundTripper }

// RoundTrip implements http.RoundTripper.
func (t Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	requests.Add(1)
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		writes.Add(1)
	}
	if r.Method == http.MethodPost && IsPodCreate(r.URL.Path) {
		podCreates.Add(1)
	}
	return t.Next.RoundTrip(r)
}

// IsPodCreate reports whether a POST to path creates a pod
// (/api/v1/namespaces/<ns>/pods, not a subresource such as eviction).
func IsPodCreate(path string) bool {
	p := strings.Split(strings.Trim(path, "/"), "/")
	return len(p) == 5 && p[0] == "api" && p[1] == "v1" && p[2] == "namespaces" && p[4] == "pods"
}

// AddControllerPods records pods a controller made for this process's
// objects (a DaemonSet's desired pods).
func AddControllerPods(n int64) { controllerPods.Add(n) }

var counted sync.Map

// FirstCount reports whether namespace ns has not been counted yet in
// this process (and marks it): a namespace's controller pods are counted
// once, whichever deletion path sees it first.
func FirstCount(ns string) bool {
	_, seen := counted.LoadOrStore(ns, true)
	return !seen
}

// Snapshot returns this process's counts so far.
func Snapshot(nodes int) Figures {
	f := Figures{Nodes: nodes, APIRequests: requests.Load(), APIWrites: writes.Load(), PodsCreated: podCreates.Load() + controllerPods.Load()}
	phaseMu.Lock()
	for k, p := range phases {
		f.AddPhase(k, p.Count, p.Seconds)
	}
	phaseMu.Unlock()
	return f
}

// Write stores f as JSON at path.
func Write(path string, f Figures) error {
	data, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// Collect sums the files prefix.*.json (one per Ginkgo process) and
// removes them.
func Collect(prefix string) (Figures, bool, error) {
	paths, err := filepath.Glob(prefix + ".*.json")
	if err != nil {
		return Figures{}, false, err
	}
	sort.Strings(paths)
	var sum Figures
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return sum, false, err
		}
		var f Figures
		if err := json.Unmarshal(data, &f); err != nil {
			return sum, false, fmt.Errorf("cost file %s: %w", p, err)
		}
		sum.Add(f)
		_ = os.Remove(p)
	}
	return sum, len(paths) > 0, nil
}
