package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/kind/pkg/log"

	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/profile"
)

func newProfileCmd(logger log.Logger) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "profile",
		Short: "Node profiles: the cluster's intended node-level state (capture from a good cluster, check a file)",
	}
	cmd.AddCommand(newProfileCaptureCmd(logger), newProfileCheckCmd())
	return cmd
}

type target struct {
	kubeconfig, context, probeImage, pullSecret string
	cmd                                         *cobra.Command
}

func (t *target) flags(cmd *cobra.Command) {
	t.cmd = cmd
	f := cmd.Flags()
	f.StringVar(&t.kubeconfig, "kubeconfig", os.Getenv("KUBECONFIG"), "kubeconfig of an existing cluster (default KUBECONFIG; none: nodeconform's kind cluster)")
	f.StringVar(&t.context, "context", "", "kubeconfig context")
	f.StringVar(&t.probeImage, "probe-image", os.Getenv("NODECONFORM_PROBE_IMAGE"), "probe image the nodes can pull (existing clusters)")
	f.StringVar(&t.pullSecret, "pull-secret", os.Getenv(e2e.PullSecretEnv), "docker config.json with the credentials of the probe image's registry (image pull secret of the probe's namespace)")
}

// kubeconfig returns the kubeconfig to use: the flag's, or the kind
// cluster's when that cluster exists.
func (t *target) resolve() (string, error) {
	if t.kubeconfig != "" {
		return t.kubeconfig, nil
	}
	name := config.Default().Cluster.Name
	if ok, err := cluster.NewKind(name).Exists(); err != nil || !ok {
		return "", fmt.Errorf("no --kubeconfig and no kind cluster %q (create it with `nodeconform cluster up`)", name)
	}
	return cluster.DefaultKubeconfigPath(name), nil
}

func newProfileCaptureCmd(logger log.Logger) *cobra.Command {
	var t target
	var name string
	cmd := &cobra.Command{
		Use:   "capture",
		Short: "Write the profile of a cluster known to be good to stdout (read-only: only the probe's own namespace is created, and removed)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := capture(cmd.Context(), t, name, logger)
			if err != nil {
				return err
			}
			out, err := profile.Encode(p)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "# Captured by `nodeconform profile capture`: edit to the cluster's intent.\n%s\n", out)
			return nil
		},
	}
	t.flags(cmd)
	cmd.Flags().StringVar(&name, "name", "captured", "metadata.name of the profile")
	return cmd
}

// settings are the run settings reaching the target: an existing cluster
// by kubeconfig, or nodeconform's kind cluster. A KUBECONFIG (not the
// flag) whose context is a kind cluster Docker has is used as that kind
// cluster, with side-loaded images, as `run` does: otherwise it would
// demand a probe image pushed to a registry.
func (t *target) settings(logger log.Logger) (e2e.Settings, error) {
	s := e2e.SettingsFromEnv()
	s.Context, s.ProbeImage, s.PullSecret = t.context, t.probeImage, t.pullSecret
	if t.kubeconfig == "" {
		_, err := t.resolve()
		return s, err
	}
	fromEnv := t.cmd == nil || !t.cmd.Flags().Changed("kubeconfig")
	if fromEnv && t.probeImage == "" {
		if name := cluster.KindClusterOfContext(t.kubeconfig, t.context); name != "" {
			logger.V(0).Infof("KUBECONFIG %s (context kind-%s) is kind cluster %q: using it as a kind cluster, with kind's own admin credentials", t.kubeconfig, name, name)
			s.Kubeconfig, s.Context, s.ClusterName = "", "", name
			return s, nil
		}
	}
	s.Kubeconfig = t.kubeconfig
	return s, nil
}

func capture(ctx context.Context, t target, name string, logger log.Logger) (*profile.Profile, error) {
	s, err := t.settings(logger)
	if err != nil {
		return nil, usageError{err}
	}
	return e2e.CaptureProfile(ctx, s, name, logger)
}

func newProfileCheckCmd() *cobra.Command {
	var t target
	var offline bool
	cmd := &cobra.Command{
		Use:   "check FILE",
		Short: "Validate a profile: strict format, selectors, and (unless --offline) that each group matches nodes and no node is in two groups",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			p, err := profile.Load(args[0])
			if err != nil {
				return usageError{err}
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "profile %s: %d groups, format valid\n", p.Metadata.Name, len(p.Spec.Groups))
			if offline {
				return nil
			}
			kc, err := t.resolve()
			if err != nil {
				return usageError{err}
			}
			rc, err := cluster.LoadKubeconfig(kc, t.context)
			if err != nil {
				return usageError{err}
			}
			rc.Timeout = config.Default().Timeouts.APIReachable.Duration
			cs, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return usageError{err}
			}
			targets, notJudged, err := e2e.SelectNodes(cmd.Context(), cs, p, "")
			if err != nil {
				return usageError{err}
			}
			byGroup := map[string][]string{}
			for _, tg := range targets {
				byGroup[tg.Group] = append(byGroup[tg.Group], tg.Name)
			}
			for _, g := range p.Spec.Groups {
				fmt.Fprintf(w, "group %s: %s\n", g.Name, strings.Join(byGroup[g.Name], ", "))
			}
			for _, n := range slices.Sorted(maps.Keys(notJudged)) {
				fmt.Fprintf(w, "not judged: %s (%s)\n", n, notJudged[n])
			}
			return nil
		},
	}
	t.flags(cmd)
	cmd.Flags().BoolVar(&offline, "offline", false, "check the file only, without a cluster")
	return cmd
}
