package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/kind/pkg/log"

	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/e2e"
)

func newClusterCmd(logger log.Logger) *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "Create, reuse and delete nodeconform's kind cluster"}
	s := e2e.SettingsFromEnv()
	var configFile string
	up := &cobra.Command{
		Use:   "up",
		Short: "Create the kind cluster (or reuse it) and wait until every node is Ready",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(configFile)
			if err != nil {
				return usageError{err}
			}
			name, data, err := s.KindConfigData()
			if err != nil {
				return usageError{err}
			}
			if err := cluster.ValidateConfig(name, data); err != nil {
				return usageError{err}
			}
			start := time.Now()
			k, err := e2e.KindUp(cmd.Context(), s, cfg, logger)
			if err != nil {
				return err
			}
			logger.V(0).Infof("cluster %q ready in %s; kubeconfig: %s", k.Name(), time.Since(start).Round(time.Second), k.KubeconfigPath())
			fmt.Fprintln(cmd.OutOrStdout(), k.KubeconfigPath())
			return nil
		},
	}
	up.Flags().StringVar(&s.ClusterName, "name", s.ClusterName, "kind cluster name (default from config: nodeconform)")
	up.Flags().StringVar(&s.KindConfig, "kind-config", s.KindConfig, "kind config file, or the name of one in kindconfigs/")
	up.Flags().StringVar(&s.NodeImage, "node-image", s.NodeImage, "node image (default: build nodeconform's); kindest/node images work too")
	up.Flags().BoolVar(&s.RecreateBroken, "recreate-broken", s.RecreateBroken, "delete and recreate the cluster when it exists but a node container is stopped, its API server does not answer or a node is not Ready (often left by a reboot or a Docker restart; also NODECONFORM_RECREATE_BROKEN=1)")
	up.Flags().StringVar(&configFile, "config", s.ConfigFile, "nodeconform configuration file (timeouts, expectations)")

	var name string
	del := &cobra.Command{
		Use:   "delete",
		Short: "Delete the kind cluster and its kubeconfig",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				name = config.Default().Cluster.Name
			}
			start := time.Now()
			if err := cluster.NewKind(name, cluster.WithLogger(logger)).Delete(); err != nil {
				return err
			}
			logger.V(0).Infof("deleted kind cluster %q in %s", name, time.Since(start).Round(100*time.Millisecond))
			return nil
		},
	}
	del.Flags().StringVar(&name, "name", s.ClusterName, "kind cluster name")
	cmd.AddCommand(up, del)
	return cmd
}
