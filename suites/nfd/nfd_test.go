package nfd

import (
	"context"
	"fmt"
	"slices"
	"strings"
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
		kata        nfd.Rule
		within      time.Duration
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

	BeforeAll(func(ctx SpecContext) {
		e = *env
		Expect(e.Nodes).NotTo(BeNil(), "suite needs node access")
		within = e.Config.NFD.LabelWithin.Duration
		var err error
		kata, err = nfd.KataRule()
		Expect(err).NotTo(HaveOccurred())

		truth = map[string]groundTruth{}
		for _, node := range e.Nodes.Nodes() {
			truth[node] = readGroundTruth(ctx, e, node, kata)
		}
		evidence.Record("groundTruth", truth)

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
				"sleepInterval": e.Config.NFD.SleepInterval.String(), "readyAfter": d.ReadyAfter.String()})
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
		want := nfd.Eligible(eligible(control[0]))
		Expect(want).NotTo(BeEmpty(), "no node has cpuid SSE4: the control rule cannot show that NFD labels anything here")
		start := time.Now()
		controlRule, err = d.ApplyRule(ctx, fixtures.MustRead("nfd/"+nfd.ControlRuleFixture))
		Expect(err).NotTo(HaveOccurred())
		e.Eventually(ctx, func(ctx context.Context) []string { return labelled(ctx, nfd.ControlLabel) }, within).
			Should(Equal(want), "control label %s", nfd.ControlLabel)
		evidence.Record("control", map[string]any{"label": nfd.ControlLabel, "nodes": want, "labelledAfter": time.Since(start).String()})
	})

	It("puts feature.node.kubernetes.io/runtime.kata=true on exactly the eligible nodes", func(ctx SpecContext) {
		want := eligible(kata)
		check := func(ctx context.Context) []string {
			return nfd.CompareLabels(nfd.KataLabel, want, labelled(ctx, nfd.KataLabel))
		}
		if e.Mode == "apply" {
			// The kata rule was applied before the control rule, which is
			// labelled by now; hold until every worker has published its
			// features again since the kata rule was applied (one worker
			// interval) and nfd-master has batched them (a second), so a
			// label that would come late is seen.
			e.Eventually(ctx, check, within).Should(BeEmpty())
			poll := e.Config.Intervals.Poll.Duration
			hold := max(poll, e.Config.NFD.SleepInterval.Duration+nfd.MasterBatch-time.Since(kataApplied))
			Consistently(ctx, check).WithTimeout(hold).WithPolling(poll).Should(BeEmpty())
			evidence.Record("held", map[string]any{"for": hold.String(), "untilAfterRule": time.Since(kataApplied).String()})
		}
		got := labelled(ctx, nfd.KataLabel)
		report := map[string]any{}
		for n, t := range truth {
			report[n] = map[string]any{"cpuid": t.CPUID, "modules": t.Modules, "modulesKnown": t.ModulesKnown, "modulesNote": t.ModulesNote,
				"expected": t.Eligible, "observed": slices.Contains(got, n), "why": t.Why}
		}
		evidence.Record("kata", map[string]any{"selector": nfd.KataLabel + "=true", "selected": got, "eligible": nfd.Eligible(want), "nodes": report})
		Expect(nfd.CompareLabels(nfd.KataLabel, want, got)).To(BeEmpty())
	})

	It("labels a node with the kata rule once it has the features (synthetic NodeFeature) and unlabels it after", func(ctx SpecContext) {
		e.SkipInVerify("publishing a NodeFeature makes nfd-master label a node")
		if !ours {
			Skip("runs only against the NFD this suite deploys: publishing features to the cluster's own NFD would label a real node")
		}
		base := eligible(kata)
		var node string
		for _, n := range e.Nodes.Nodes() {
			if !base[n] {
				node = n
				break
			}
		}
		if node == "" {
			Skip("every node is eligible already: nothing to turn on")
		}
		name, err := d.AddNodeFeature(ctx, node, []string{"SSE4", "VMX"}, []string{"kvm", "kvm_intel"})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(func(ctx SpecContext) { Expect(d.DeleteNodeFeature(ctx, name)).To(Succeed()) })
		want := nfd.Eligible(base)
		want = append(want, node)
		slices.Sort(want)
		start := time.Now()
		e.Eventually(ctx, func(ctx context.Context) []string { return labelled(ctx, nfd.KataLabel) }, within).Should(Equal(want))
		on := time.Since(start)
		Expect(d.DeleteNodeFeature(ctx, name)).To(Succeed())
		start = time.Now()
		e.Eventually(ctx, func(ctx context.Context) []string { return labelled(ctx, nfd.KataLabel) }, within).Should(Equal(nfd.Eligible(base)))
		evidence.Record("synthetic", map[string]any{"node": node, "published": "cpuid SSE4+VMX, modules kvm+kvm_intel", "labelledAfter": on.String(), "unlabelledAfter": time.Since(start).String()})
	})

	It("removes the control label from every node when its rule is removed", func(ctx SpecContext) {
		e.SkipInVerify("the control rule is a NodeFeatureRule (cluster-scoped)")
		Expect(controlRule).NotTo(BeEmpty(), "the control rule was not applied")
		start := time.Now()
		Expect(d.DeleteRule(ctx, controlRule)).To(Succeed())
		e.Eventually(ctx, func(ctx context.Context) []string { return labelled(ctx, nfd.ControlLabel) }, within).Should(BeEmpty())
		evidence.Record("removed", map[string]any{"label": nfd.ControlLabel, "goneAfter": time.Since(start).String()})
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
		for _, n := range e.Nodes.Nodes() {
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
		problems := nfd.CompareLabels(nfd.KataLabel, want, labelled(ctx, nfd.KataLabel))
		evidence.Record("wronglyLabelled", map[string]any{"node": node, "problems": problems})
		Expect(problems).To(ContainElement(ContainSubstring("node " + node + ": false positive")))
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
func readGroundTruth(ctx context.Context, e *e2e.Env, node string, kata nfd.Rule) groundTruth {
	cpuinfo, err := e.Nodes.MustHost(ctx, node, "cat", "/proc/cpuinfo")
	Expect(err).NotTo(HaveOccurred())
	cpuid := nfd.CPUIDFromCPUInfo(nfd.CPUInfoFlags(cpuinfo))
	var t groundTruth
	t.Facts.CPUID = cpuid
	t.CPUIDCount = len(cpuid)
	r, err := e.Nodes.Host(ctx, node, "cat", "/proc/modules")
	Expect(err).NotTo(HaveOccurred())
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
	return t
}
