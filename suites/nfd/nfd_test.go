package nfd

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/nodeconform/nodeconform/fixtures"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/evidence"
	"github.com/nodeconform/nodeconform/framework/nfd"
	"github.com/nodeconform/nodeconform/framework/openshift"
	"github.com/nodeconform/nodeconform/framework/verdict"
)

// groundTruth is what the probe read on one node.
type groundTruth struct {
	Facts nfd.Facts `json:"-"`
	// Relevant are the flags and modules the kata rule names, as found.
	CPUID        []string `json:"cpuidRelevant"`
	CPUIDCount   int      `json:"cpuidCount"`
	Modules      []string `json:"modulesRelevant"`
	ModulesKnown bool     `json:"modulesKnown"`
	ModulesNote  string   `json:"modulesNote,omitempty"`
	Eligible     bool     `json:"eligible"`
	Why          string   `json:"why"`
}

var _ = Describe("Node Feature Discovery", Ordered, ContinueOnFailure, Serial, Label("nfd"), func() {
	var (
		e    *e2e.Env
		d    *nfd.Deployment
		ours bool // NFD deployed by this run (kind), not the cluster's own
		// controlRule is the name of the applied control NodeFeatureRule.
		controlRule string
		truth       map[string]groundTruth
		// truthErr maps a judged node whose ground truth could not be
		// read to why: it fails every label spec, the others go on.
		truthErr map[string]string
		kata     nfd.Rule
		within   time.Duration
		// kataApplied is when this run applied the kata rule.
		kataApplied time.Time
	)

	eligible := func(rule nfd.Rule) map[string]bool {
		out := map[string]bool{}
		for n, t := range truth {
			out[n], _ = rule.Eval(t.Facts)
		}
		return out
	}
	labelled := func(ctx context.Context, label string) []string {
		nodes, err := nfd.LabeledNodes(ctx, e.Clientset, label, "true")
		Expect(err).NotTo(HaveOccurred())
		return nodes
	}
	// matches: every node with ground truth carries label exactly where
	// want says (nodes outside the run's selection are not judged).
	matches := func(want map[string]bool, got []string) bool {
		for n, w := range want {
			if slices.Contains(got, n) != w {
				return false
			}
		}
		return true
	}
	// observe reads the labelled nodes every poll interval until stop
	// holds or timeout, and returns the last reading. It fails nothing:
	// each node is judged on what it saw (judgeLabel), so a node where NFD
	// does not work fails alone.
	observe := func(ctx context.Context, label string, timeout time.Duration, stop func([]string) bool) []string {
		deadline := time.Now().Add(timeout)
		for {
			got := labelled(ctx, label)
			if stop(got) || !time.Now().Before(deadline) {
				return got
			}
			select {
			case <-ctx.Done():
				return got
			case <-time.After(e.Config.Intervals.Poll.Duration):
			}
		}
	}
	// settled is a stop condition for observe: the labels match want and
	// every node with ground truth has a Ready nfd-worker. A worker still
	// starting (or restarted) when the labels are already right is given
	// the rest of the window instead of failing its node at once; one not
	// Ready by the window's end still fails it (judgeLabel).
	settled := func(ctx context.Context, want map[string]bool) func([]string) bool {
		return func(got []string) bool {
			if !matches(want, got) {
				return false
			}
			ready, err := d.ReadyOn(ctx, slices.Collect(maps.Keys(truth)))
			return err == nil && ready
		}
	}
	// judgeLabel gives every judged node its verdict on label: its
	// ground truth against the reading got, and its nfd-worker.
	judgeLabel := func(ctx context.Context, property, label string, want map[string]bool, got []string) {
		GinkgoHelper()
		workers, err := d.Workers(ctx)
		Expect(err).NotTo(HaveOccurred())
		notCreated := d.WorkersNotCreated(ctx)
		e.Judge(ctx, property, 0, func(ctx context.Context, g Gomega, node string) any {
			if why, ok := truthErr[node]; ok {
				verdict.FailNode("ground truth not read: " + why)
			}
			has := slices.Contains(got, node)
			ev := map[string]any{"expected": want[node], "observed": has}
			if workers != nil {
				state, ok := workers[node]
				switch {
				case !ok:
					state = "no pod"
				case state == "":
					state = "Ready"
				}
				ev["nfdWorker"] = state
			}
			if f := nfd.LabelFinding(node, label, want[node], has, workers); f != "" {
				if _, ok := workers[node]; !ok && workers != nil && notCreated != "" {
					f += " (the nfd-worker DaemonSet cannot create it: " + notCreated + ")"
				}
				if has && !want[node] {
					n, err := e.Clientset.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
					g.Expect(err).NotTo(HaveOccurred())
					f += " (" + nfd.SetterNote(n, label) + ")"
				}
				verdict.FailNode(f)
			}
			return ev
		})
	}

	BeforeAll(func(ctx SpecContext) {
		e = *env
		Expect(e.Nodes).NotTo(BeNil(), "suite needs node access")
		within = e.Config.NFD.LabelWithin.Duration
		var err error
		kata, err = nfd.KataRule()
		Expect(err).NotTo(HaveOccurred())

		truth, truthErr = map[string]groundTruth{}, map[string]string{}
		var mu sync.Mutex
		read := verdict.Each(ctx, verdict.Input{Nodes: e.NodeNames(), Unreachable: e.Unreachable(), Parallel: e.Config.Nodes.MaxParallel},
			func(ctx context.Context, g Gomega, node string) any {
				t, err := readGroundTruth(ctx, e, node, kata)
				g.Expect(err).NotTo(HaveOccurred())
				mu.Lock()
				truth[node] = t
				mu.Unlock()
				return nil
			})
		for _, r := range read {
			if r.State != verdict.Passed {
				truthErr[r.Node] = r.Finding
			}
		}
		evidence.Record("groundTruth", truth)
		if len(truthErr) > 0 {
			evidence.Record("groundTruthNotRead", truthErr)
		}

		dyn, err := dynamic.NewForConfig(e.REST)
		Expect(err).NotTo(HaveOccurred())
		running, err := nfd.Running(ctx, e.Clientset.Discovery(), dyn)
		Expect(err).NotTo(HaveOccurred())
		labels := map[string]string{e2e.RunLabel: e.RunID}
		switch {
		case running:
			d, err = nfd.Attach(e.REST, labels)
			Expect(err).NotTo(HaveOccurred())
			evidence.Record("nfd", "the cluster's own NFD")
		case e.Mode == "verify":
			Skip("the cluster runs no NFD (no NodeFeature objects) and a read-only run does not deploy one")
		case e.NFDImage == "":
			Fail("the cluster runs no NFD, and nodeconform only deploys its own on kind clusters: install NFD (OpenShift: the NFD operator)")
		default:
			d, err = nfd.Deploy(ctx, nfd.DeployOptions{Config: e.REST, Image: e.NFDImage, SleepInterval: e.Config.NFD.SleepInterval.Duration,
				Labels: labels, Timeout: e.Config.NFD.Deploy.Duration})
			DeferCleanup(func(ctx SpecContext) {
				Expect(d.Remove(ctx, e.Config.Timeouts.NamespaceDeletion.Duration)).To(Succeed())
			}, NodeTimeout(e.Config.Timeouts.NamespaceDeletion.Duration+time.Minute))
			Expect(err).NotTo(HaveOccurred())
			ours = true
			evidence.Record("nfd", map[string]any{"deployed": nfd.NFD, "image": e.NFDImage, "namespace": d.Namespace,
				"sleepInterval": e.Config.NFD.SleepInterval.String(), "readyAfter": d.ReadyAfter.String(), "workersReady": d.WorkersReady})
			if !d.WorkersReady {
				// Judged per node in the label specs; recorded here too,
				// at the moment the wait gave up.
				workers, err := d.Workers(ctx)
				Expect(err).NotTo(HaveOccurred())
				evidence.Record("nfdWorkersNotReady", workers)
			}
		}
		if e.Mode == "apply" {
			// The kata rule first, then (in the control spec) the control
			// rule: once nfd-master has labelled for the control, it has
			// evaluated the kata rule too.
			name, err := d.ApplyRule(ctx, fixtures.MustRead("nfd/"+nfd.KataRuleFixture))
			Expect(err).NotTo(HaveOccurred())
			kataApplied = time.Now()
			DeferCleanup(func(ctx SpecContext) { Expect(d.DeleteRule(ctx, name)).To(Succeed()) })
		}
	})

	It("carries the kata label on each node as the profile declares (present or absent; groundTruth is judged below)", func(ctx SpecContext) {
		e.ExpectProfile(ctx, "nfd")
	})

	It("ships the seed's legacy matchOn rule and the NodeFeatureRule with the same meaning", func() {
		modern, err := nfd.ParseNodeFeatureRule(fixtures.MustRead("nfd/" + nfd.KataRuleFixture))
		Expect(err).NotTo(HaveOccurred())
		legacy, err := nfd.ParseLegacyNodeFeatureDiscovery(fixtures.MustRead("nfd/" + nfd.LegacyKataFixture))
		Expect(err).NotTo(HaveOccurred())
		Expect(modern).To(HaveLen(1))
		Expect(legacy).To(HaveLen(1))
		evidence.Record("rules", map[string]any{"nodeFeatureRule": modern[0].Canonical(), "legacyMatchOn": legacy[0].Canonical()})
		Expect(legacy[0].Canonical()).To(Equal(modern[0].Canonical()))
	})

	It("labels every node a positive control rule (cpuid SSE4) matches, within the configured interval", func(ctx SpecContext) {
		e.SkipInVerify("the control rule is a NodeFeatureRule (cluster-scoped)")
		control, err := nfd.ParseNodeFeatureRule(fixtures.MustRead("nfd/" + nfd.ControlRuleFixture))
		Expect(err).NotTo(HaveOccurred())
		want := eligible(control[0])
		Expect(nfd.Eligible(want)).NotTo(BeEmpty(), "no node has cpuid SSE4: the control rule cannot show that NFD labels anything here")
		start := time.Now()
		controlRule, err = d.ApplyRule(ctx, fixtures.MustRead("nfd/"+nfd.ControlRuleFixture))
		Expect(err).NotTo(HaveOccurred())
		got := observe(ctx, nfd.ControlLabel, within, settled(ctx, want))
		evidence.Record("control", map[string]any{"label": nfd.ControlLabel, "eligible": nfd.Eligible(want), "labelled": got,
			"after": time.Since(start).String()})
		judgeLabel(ctx, "control label "+nfd.ControlLabel+" within "+within.String(), nfd.ControlLabel, want, got)
	})

	It("puts feature.node.kubernetes.io/runtime.kata=true on exactly the eligible nodes", func(ctx SpecContext) {
		want := eligible(kata)
		var got []string
		if e.Mode == "apply" {
			// The kata rule was applied before the control rule, which is
			// labelled by now; hold until every worker has published its
			// features again since the kata rule was applied (one worker
			// interval) and nfd-master has batched them (a second), so a
			// label that would come late is seen.
			got = observe(ctx, nfd.KataLabel, within, settled(ctx, want))
			if matches(want, got) {
				hold := max(e.Config.Intervals.Poll.Duration, e.Config.NFD.SleepInterval.Duration+nfd.MasterBatch-time.Since(kataApplied))
				got = observe(ctx, nfd.KataLabel, hold, func(got []string) bool { return !matches(want, got) })
				evidence.Record("held", map[string]any{"for": hold.String(), "untilAfterRule": time.Since(kataApplied).String()})
			}
		} else {
			got = labelled(ctx, nfd.KataLabel)
		}
		report := map[string]any{}
		for n, t := range truth {
			report[n] = map[string]any{"cpuid": t.CPUID, "modules": t.Modules, "modulesKnown": t.ModulesKnown, "modulesNote": t.ModulesNote,
				"expected": t.Eligible, "observed": slices.Contains(got, n), "why": t.Why}
		}
		evidence.Record("kata", map[string]any{"selector": nfd.KataLabel + "=true", "selected": got, "eligible": nfd.Eligible(want), "nodes": report})
		judgeLabel(ctx, nfd.KataLabel+"=true exactly on the eligible nodes", nfd.KataLabel, want, got)
	})

	It("labels a node with the kata rule once it has the features (synthetic NodeFeature) and unlabels it after", func(ctx SpecContext) {
		e.SkipInVerify("publishing a NodeFeature makes nfd-master label a node")
		if !ours {
			Skip("runs only against the NFD this suite deploys: publishing features to the cluster's own NFD would label a real node")
		}
		base := eligible(kata)
		var node string
		for _, n := range slices.Sorted(maps.Keys(base)) {
			if !base[n] {
				node = n
				break
			}
		}
		if node == "" {
			Skip("every node is eligible already: nothing to turn on")
		}
		// The label must start right, or turning it on and off shows
		// nothing (a node labelled by hand keeps it whatever NFD does).
		if got := labelled(ctx, nfd.KataLabel); !matches(base, got) {
			Fail(fmt.Sprintf("before any feature is published, %s=true is on %v, not exactly on the eligible judged nodes %v: the label this spec turns on and off is wrong already (see the spec on the eligible nodes)",
				nfd.KataLabel, got, nfd.Eligible(base)))
		}
		name, err := d.AddNodeFeature(ctx, node, []string{"SSE4", "VMX"}, []string{"kvm", "kvm_intel"})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) { Expect(d.DeleteNodeFeature(ctx, name)).To(Succeed()) })
		// Judged nodes only, as matches does: a node outside the run's
		// selection (--nodes, the profile's groups) has no ground truth.
		want := maps.Clone(base)
		want[node] = true
		exactly := func(want map[string]bool) OmegaMatcher {
			// Satisfy, so that a failure prints the labelled nodes.
			return Satisfy(func(got []string) bool { return matches(want, got) })
		}
		start := time.Now()
		e.Eventually(ctx, func(ctx context.Context) []string { return labelled(ctx, nfd.KataLabel) }, within).Should(exactly(want),
			"%s=true on exactly the judged nodes marked true: %v", nfd.KataLabel, want)
		on := time.Since(start)
		Expect(d.DeleteNodeFeature(ctx, name)).To(Succeed())
		start = time.Now()
		e.Eventually(ctx, func(ctx context.Context) []string { return labelled(ctx, nfd.KataLabel) }, within).Should(exactly(base),
			"%s=true on exactly the judged nodes marked true once the NodeFeature is gone: %v", nfd.KataLabel, base)
		evidence.Record("synthetic", map[string]any{"node": node, "published": "cpuid SSE4+VMX, modules kvm+kvm_intel", "labelledAfter": on.String(), "unlabelledAfter": time.Since(start).String()})
	})

	It("removes the control label from every node when its rule is removed", func(ctx SpecContext) {
		e.SkipInVerify("the control rule is a NodeFeatureRule (cluster-scoped)")
		Expect(controlRule).NotTo(BeEmpty(), "the control rule was not applied")
		start := time.Now()
		Expect(d.DeleteRule(ctx, controlRule)).To(Succeed())
		none := map[string]bool{}
		for n := range truth {
			none[n] = false
		}
		got := observe(ctx, nfd.ControlLabel, within, settled(ctx, none))
		evidence.Record("removed", map[string]any{"label": nfd.ControlLabel, "stillLabelled": got, "after": time.Since(start).String()})
		judgeLabel(ctx, "control label "+nfd.ControlLabel+" gone within "+within.String()+" of its rule", nfd.ControlLabel, none, got)
	})

	// The kata check must fail on the misconfiguration it exists for: a
	// node that carries the label without being eligible.
	It("reports a node labelled without being eligible (negative control)", Label("negative"), func(ctx SpecContext) {
		e.SkipInVerify("labelling a node")
		if !ours {
			Skip("runs only against the NFD this suite deploys: a kata label on a real cluster's node may start a KataConfig install there")
		}
		want := eligible(kata)
		var node string
		for _, n := range slices.Sorted(maps.Keys(want)) {
			if !want[n] {
				node = n
				break
			}
		}
		if node == "" {
			Skip("every node is eligible: no node can be labelled wrongly")
		}
		patch := func(ctx context.Context, value any) {
			b := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, nfd.KataLabel, value)
			_, err := e.Clientset.CoreV1().Nodes().Patch(ctx, node, types.MergePatchType, []byte(b), metav1.PatchOptions{})
			Expect(err).NotTo(HaveOccurred())
		}
		DeferCleanup(func(ctx SpecContext) { patch(ctx, "null") })
		patch(ctx, `"true"`)
		// The kata spec's own per-node judgement, on the real label.
		finding := nfd.LabelFinding(node, nfd.KataLabel, want[node], slices.Contains(labelled(ctx, nfd.KataLabel), node), nil)
		evidence.Record("wronglyLabelled", map[string]any{"node": node, "finding": finding})
		Expect(finding).To(HavePrefix("false positive"))
	})

	It("with KataConfig checkNodeEligibility, installs the sandboxed runtime only on labelled nodes", func(ctx SpecContext) {
		has, err := openshift.HasKataConfigAPI(e.Clientset.Discovery())
		Expect(err).NotTo(HaveOccurred())
		if !has {
			Skip("the cluster has no KataConfig API (OpenShift sandboxed containers operator): checkNodeEligibility does not apply")
		}
		dyn, err := dynamic.NewForConfig(e.REST)
		Expect(err).NotTo(HaveOccurred())
		list, err := dyn.Resource(openshift.KataConfigGVR).List(ctx, metav1.ListOptions{})
		Expect(err).NotTo(HaveOccurred())
		labelledNodes := labelled(ctx, nfd.KataLabel)
		checked := 0
		for _, kc := range list.Items {
			if check, _, _ := unstructured.NestedBool(kc.Object, "spec", "checkNodeEligibility"); !check {
				continue
			}
			checked++
			installed := openshift.KataInstalledNodes(&kc)
			evidence.Record("kataConfig/"+kc.GetName(), map[string]any{"installedOn": installed, "labelled": labelledNodes})
			for _, n := range installed {
				Expect(labelledNodes).To(ContainElement(n), "KataConfig %s installed kata on %s, which has no %s", kc.GetName(), n, nfd.KataLabel)
			}
		}
		if checked == 0 {
			Skip("no KataConfig sets checkNodeEligibility: true")
		}
	})
})

// readGroundTruth reads a node's CPU flags and loaded modules through the
// probe and evaluates the kata rule on them.
func readGroundTruth(ctx context.Context, e *e2e.Env, node string, kata nfd.Rule) (groundTruth, error) {
	cpuinfo, err := e.Nodes.MustHost(ctx, node, "cat", "/proc/cpuinfo")
	if err != nil {
		return groundTruth{}, err
	}
	cpuid := nfd.CPUIDFromCPUInfo(nfd.CPUInfoFlags(cpuinfo))
	var t groundTruth
	t.Facts.CPUID = cpuid
	t.CPUIDCount = len(cpuid)
	r, err := e.Nodes.Host(ctx, node, "cat", "/proc/modules")
	if err != nil {
		return groundTruth{}, err
	}
	if r.ExitCode == 0 {
		t.Facts.Modules = nfd.LoadedModules(r.Stdout)
		t.Facts.ModulesKnown = true
	} else {
		t.ModulesNote = "no loaded-module list on this node (/proc/modules: " + strings.TrimSpace(r.Stderr) + "); NFD has no kernel.loadedmodule feature either"
	}
	t.ModulesKnown = t.Facts.ModulesKnown
	for _, term := range kata.Terms {
		for _, f := range term.CPUID {
			if slices.Contains(cpuid, f) && !slices.Contains(t.CPUID, f) {
				t.CPUID = append(t.CPUID, f)
			}
		}
		for _, m := range term.Modules {
			if slices.Contains(t.Facts.Modules, m) && !slices.Contains(t.Modules, m) {
				t.Modules = append(t.Modules, m)
			}
		}
	}
	t.Eligible, t.Why = kata.Eval(t.Facts)
	return t, nil
}
