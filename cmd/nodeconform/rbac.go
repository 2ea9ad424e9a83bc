package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/nodeconform/nodeconform/framework/access"
	"github.com/nodeconform/nodeconform/framework/runner"
)

func newRBACCmd() *cobra.Command {
	var (
		suites     []string
		mode       string
		name       string
		pullSecret bool
	)
	cmd := &cobra.Command{
		Use:   "rbac",
		Short: "Print the ClusterRole granting what a run needs (bind it to the account CI runs nodeconform with)",
		Long: `Print, as YAML, the ClusterRole granting every API permission a run of the
given suites in the given mode needs: the permissions ` + "`nodeconform run`" + ` checks
for before it creates anything. Bind it cluster-wide, e.g.
  nodeconform rbac | kubectl apply -f -
  kubectl create clusterrolebinding nodeconform --clusterrole nodeconform --serviceaccount NS:NAME
Verify mode's role has run every suite on the production-like target. Apply
mode's was read from the code; it leaves out what deploying nodeconform's own
NFD needs (CRDs, RBAC objects), which happens only on kind clusters, with
kind's admin credentials.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The run's own validation: the same suite names and modes.
			o := runner.Options{Suites: suites, Mode: mode, ReportDir: ".", Timeout: 1}
			if err := o.Validate(); err != nil {
				return usageError{err}
			}
			var opts []access.Option
			if pullSecret {
				opts = append(opts, access.WithPullSecret())
			}
			cr := access.ClusterRole(name, access.For(o.Suites, o.Mode, opts...))
			out, err := yaml.Marshal(cr)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "# nodeconform %s mode, suites %s\n%s", o.Mode, strings.Join(o.Suites, ","), out)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&suites, "suite", nil, "suites the role is for: "+strings.Join(runner.Suites, ", ")+" (default all)")
	f.StringVar(&mode, "mode", runner.ModeVerify, "apply or verify")
	f.BoolVar(&pullSecret, "pull-secret", false, "the runs use --pull-secret (the role may create the image pull secret and add it to their namespaces' default service accounts)")
	f.StringVar(&name, "name", "nodeconform", "the ClusterRole's name")
	return cmd
}
