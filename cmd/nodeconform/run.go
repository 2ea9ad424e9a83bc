package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/kind/pkg/log"

	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/report"
	"github.com/nodeconform/nodeconform/framework/runner"
)

func defaultSuitesDir() string {
	if exe, err := os.Executable(); err == nil {
		return filepath.Join(filepath.Dir(exe), "suites")
	}
	return "bin/suites"
}

func newRunCmd(logger log.Logger) *cobra.Command {
	o := runner.Options{ReportDir: "reports", Timeout: 60 * time.Minute, KeepCluster: true}
	var timings bool
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the suites against the default kind cluster (created or reused) or an existing cluster",
		Long: `Run the suites and write junit.xml, results.json and per-suite reports to --report-dir.
Exit codes: 0 all passed, 1 a spec failed, 2 usage or environment error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Kubeconfig == "" && !cmd.Flags().Changed("kubeconfig") {
				o.Kubeconfig = os.Getenv("NODECONFORM_KUBECONFIG")
			}
			o.KubeconfigFromEnv = !cmd.Flags().Changed("kubeconfig") && o.Kubeconfig == os.Getenv("KUBECONFIG")
			if err := o.Validate(); err != nil {
				return usageError{err}
			}
			var err error
			if o.ReportDir, err = filepath.Abs(o.ReportDir); err != nil {
				return usageError{err}
			}
			if err := os.MkdirAll(o.SuitesDir, 0o755); err != nil {
				return usageError{err}
			}
			out := cmd.OutOrStdout()
			if o.Quiet {
				out = cmd.ErrOrStderr()
			}
			res, err := runner.Run(cmd.Context(), o, logger, out)
			if len(res.Specs) > 0 {
				report.Summary(cmd.OutOrStdout(), res.Specs)
				report.Nodes(cmd.OutOrStdout(), res.Specs)
				report.Timings(cmd.OutOrStdout(), res.Specs, res.SuiteSeconds)
				report.RunTimings(cmd.OutOrStdout(), res)
				report.Costs(cmd.OutOrStdout(), res.Specs, res.SuiteCost)
				if timings {
					report.PhaseTimings(cmd.OutOrStdout(), res.Specs, res.SuiteSeconds, res.SuiteCost)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "reports: %s\n", o.ReportDir)
			}
			var ue runner.UsageError
			if errors.As(err, &ue) {
				return usageError{err}
			}
			if err != nil {
				return err
			}
			if report.AnyFailed(res.Specs) {
				return errSpecsFailed
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.Suites, "suite", nil, "suites to run (repeatable or comma-separated): "+strings.Join(runner.Suites, ", ")+" (default all)")
	f.StringSliceVar(&o.Focus, "focus", nil, "run only specs matching this regex (Ginkgo --focus)")
	f.StringSliceVar(&o.Skip, "skip", nil, "skip specs matching this regex (Ginkgo --skip)")
	f.StringVar(&o.LabelFilter, "label-filter", "", "Ginkgo label filter, e.g. '!disruptive'")
	f.StringVar(&o.ReportDir, "report-dir", o.ReportDir, "where junit.xml, results.json and per-suite reports go")
	f.DurationVar(&o.Timeout, "timeout", o.Timeout, "bound on the whole run, cluster creation included")
	f.BoolVar(&o.KeepCluster, "keep-cluster", o.KeepCluster, "keep a kind cluster this run created")
	f.BoolVar(&o.RecreateBroken, "recreate-broken", false, "delete and recreate the kind cluster when it exists but a node container is stopped, its API server does not answer or a node is not Ready (often left by a reboot or a Docker restart; also NODECONFORM_RECREATE_BROKEN=1)")
	f.StringVar(&o.ProbeImage, "probe-image", os.Getenv("NODECONFORM_PROBE_IMAGE"), "probe image pushed to a registry (required for existing clusters)")
	f.StringVar(&o.PullSecret, "pull-secret", os.Getenv(e2e.PullSecretEnv), "docker config.json with the credentials of the probe image's registry: each of the run's namespaces gets it as an image pull secret (also "+e2e.PullSecretEnv+")")
	f.StringVar(&o.Kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of an existing cluster (default KUBECONFIG; none: nodeconform's kind cluster)")
	f.StringVar(&o.Context, "context", "", "kubeconfig context")
	f.StringVar(&o.Mode, "mode", "", "apply (change node configuration, revert after) or verify (read-only); default apply on kind, verify on existing clusters")
	f.IntVar(&o.Procs, "procs", 0, fmt.Sprintf("Ginkgo processes per suite: specs run in parallel, Serial and Ordered containers on one process (default %d here)", runner.DefaultProcs()))
	f.BoolVar(&o.Quiet, "quiet", false, "only the summary on stdout; suite output goes to <report-dir>/<suite>.log")
	f.BoolVar(&o.Sequential, "sequential", false, "run every suite alone, one after the other; by default the suites that change nothing on the nodes ("+strings.Join(concurrentSuites(), ", ")+") run side by side first")
	f.BoolVar(&timings, "timings", false, "print where each suite's time went: setup, probe start, specs, pod starts, exec round trips, namespace waits, teardown (also in results.json, suiteCost.phases)")
	f.StringVar(&o.KindConfig, "kind-config", "", "kind config file or name in kindconfigs/ (default: default)")
	f.StringVar(&o.NodeImage, "node-image", "", "kind node image (default: build nodeconform's)")
	f.StringVar(&o.ConfigFile, "config", os.Getenv("NODECONFORM_CONFIG"), "configuration overriding timeouts and expectations")
	f.StringVar(&o.Profile, "profile", os.Getenv("NODECONFORM_PROFILE"), "node profile (YAML): the cluster's intended node state; its groups select the nodes judged, each against its group")
	f.StringVar(&o.Nodes, "nodes", "", "label selector narrowing the nodes judged (default: every schedulable node, or every node of the profile's groups)")
	f.StringVar(&o.SourceDir, "source-dir", e2e.FindModuleRoot(), "nodeconform source tree (suites are compiled from it)")
	f.StringVar(&o.SuitesDir, "suites-dir", defaultSuitesDir(), "where compiled suite binaries and the Ginkgo CLI are kept (prebuilt ones are used when there is no source tree)")
	return cmd
}

// concurrentSuites lists runner.Concurrent in run order, for the help.
func concurrentSuites() []string {
	var out []string
	for _, s := range runner.Suites {
		if runner.Concurrent[s] {
			out = append(out, s)
		}
	}
	return out
}

// errSpecsFailed maps to exit code 1 without repeating the summary.
var errSpecsFailed = errors.New("specs failed (see the summary above)")

func newListCmd() *cobra.Command {
	var sourceDir, suitesDir string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List suites, specs and labels, to choose --suite, --focus or --label-filter",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o := runner.Options{SourceDir: sourceDir, SuitesDir: suitesDir}
			if err := os.MkdirAll(suitesDir, 0o755); err != nil {
				return usageError{err}
			}
			tmp, err := os.MkdirTemp("", "nodeconform-list-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			bins, err := runner.SuiteBinaries(cmd.Context(), o, runner.Suites)
			if err != nil {
				return err
			}
			for _, s := range runner.Suites {
				bin := bins[s]
				jsonPath := filepath.Join(tmp, s+".json")
				c := exec.CommandContext(cmd.Context(), bin, "-ginkgo.dry-run", "-ginkgo.json-report="+jsonPath)
				c.Dir = tmp
				if out, err := c.CombinedOutput(); err != nil {
					return fmt.Errorf("list suite %s: %w\n%s", s, err, out)
				}
				reports, err := report.LoadGinkgoJSON(jsonPath)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "suite %s\n", s)
				for _, r := range reports {
					for _, sr := range r.SpecReports {
						if sr.LeafNodeText == "" {
							continue
						}
						labels := sr.Labels()
						sort.Strings(labels)
						fmt.Fprintf(cmd.OutOrStdout(), "  %s  [%s]\n", sr.FullText(), strings.Join(labels, ", "))
					}
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&sourceDir, "source-dir", e2e.FindModuleRoot(), "nodeconform source tree")
	cmd.Flags().StringVar(&suitesDir, "suites-dir", defaultSuitesDir(), "compiled suite binaries")
	return cmd
}

func newDiffCmd() *cobra.Command {
	var asJSON bool
	var o report.DiffOptions
	cmd := &cobra.Command{
		Use:   "diff BEFORE/results.json AFTER/results.json",
		Short: "Show what changed between two runs; exit 1 on regressions (a spec that passed and now fails, is interrupted, gone or skipped)",
		Long: `Compare two runs' results.json: outcomes, evidence, and each spec's per-node
state (evidence "state": node -> field -> value) node by node and field by field.
Kinds: regression (passed, now failed, interrupted or absent), lost-coverage
(passed, now skipped), fixed, state, missing, new, evidence, drift (a node's
value changed, or a node appeared or went away).
Exit codes: 0 nothing failing, 1 regressions or lost coverage (unless
--allow-skips) or drift (with --fail-on-drift), 2 unreadable input.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			before, err := report.Load(args[0])
			if err != nil {
				return usageError{err}
			}
			after, err := report.Load(args[1])
			if err != nil {
				return usageError{err}
			}
			changes := report.Diff(before, after)
			if changes == nil {
				changes = []report.Change{}
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				if err := enc.Encode(changes); err != nil {
					return err
				}
			} else {
				report.PrintDiff(cmd.OutOrStdout(), changes)
			}
			if failing := report.Failures(changes, o); len(failing) > 0 {
				n := map[string]int{}
				for _, c := range failing {
					n[c.Kind]++
				}
				var parts []string
				for _, k := range []string{report.KindRegression, report.KindLostCoverage, report.KindDrift} {
					if n[k] > 0 {
						parts = append(parts, fmt.Sprintf("%d %s", n[k], k))
					}
				}
				return fmt.Errorf("diff failed: %s", strings.Join(parts, ", "))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the changes as JSON")
	cmd.Flags().BoolVar(&o.AllowSkips, "allow-skips", false, "a spec that passed before and is skipped now (lost-coverage) is not a regression")
	cmd.Flags().BoolVar(&o.FailOnDrift, "fail-on-drift", false, "exit 1 when a node's state drifted (kind drift)")
	return cmd
}
