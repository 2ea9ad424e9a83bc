package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/kind/pkg/log"

	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/config"
	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/nfd"
	"github.com/nodeconform/nodeconform/framework/nodeimage"
	"github.com/nodeconform/nodeconform/framework/probe"
	"github.com/nodeconform/nodeconform/framework/vmnode"
)

func newVMCmd(logger log.Logger) *cobra.Command {
	cmd := &cobra.Command{Use: "vm", Short: "A cgroup v2 QEMU VM as a worker node of the kind cluster (on cgroup v1 hosts)"}
	s := e2e.SettingsFromEnv()
	var configFile string
	var force bool
	up := &cobra.Command{
		Use:   "up",
		Short: "Create or reuse the kind cluster, build the VM disk, boot the VM and join it as a worker",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(configFile)
			if err != nil {
				return usageError{err}
			}
			v2, err := cluster.HostCgroupV2()
			if err != nil {
				return err
			}
			if v2 && !force {
				logger.V(0).Info("host cgroups are v2: the kind nodes are cgroup v2 themselves; no VM node started (--force starts one anyway)")
				return nil
			}
			start := time.Now()
			k, err := e2e.KindUp(cmd.Context(), s, cfg, logger)
			if err != nil {
				return err
			}
			o := nodeimage.DefaultOptions(logger)
			o.SourceDir = s.SourceDir
			if s.CacheDir != "" {
				o.CacheDir = s.CacheDir
			}
			// The probe and NFD images go into the disk: importing them in
			// the guest at every run would hash their layers under emulation.
			pimg, err := probe.BuildImage(cmd.Context(), probe.BuildOptions{SourceDir: s.SourceDir, CacheDir: o.CacheDir})
			if err != nil {
				return err
			}
			nimg, err := nfd.BuildImage(cmd.Context(), nfd.BuildOptions{SourceDir: s.SourceDir, CacheDir: o.CacheDir})
			if err != nil {
				return err
			}
			disk, err := nodeimage.BuildVMDisk(cmd.Context(), o, pimg.Archive, nimg.Archive)
			if err != nil {
				return err
			}
			rc, err := cluster.LoadKubeconfig(k.KubeconfigPath(), "")
			if err != nil {
				return err
			}
			cs, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return err
			}
			root := vmnode.DefaultStateRoot(o.CacheDir)
			m, err := vmnode.Up(cmd.Context(), vmnode.Options{
				Logger: logger, Cluster: k.Name(), Network: cluster.KindNetwork(), Disk: disk,
				StateRoot: root, CPUs: cfg.VM.CPUs, MemoryMiB: cfg.VM.MemoryMiB,
				HugePages2Mi: cfg.VM.HugePages2Mi, BootTimeout: cfg.VM.Boot.Duration, JoinTimeout: cfg.VM.Join.Duration,
			}, cs)
			if err != nil {
				return err
			}
			logger.V(0).Infof("VM node %s (%s) is a worker of %q; ready in %s", m.Node, m.IP, k.Name(), time.Since(start).Round(time.Second))
			fmt.Fprintln(cmd.OutOrStdout(), m.Node)
			return nil
		},
	}
	up.Flags().StringVar(&s.ClusterName, "name", s.ClusterName, "kind cluster name (default from config: nodeconform)")
	up.Flags().StringVar(&configFile, "config", s.ConfigFile, "nodeconform configuration file (VM size, timeouts)")
	up.Flags().BoolVar(&force, "force", false, "start the VM node even on a cgroup v2 host")

	var name string
	down := &cobra.Command{
		Use:   "down",
		Short: "Stop the VM node, remove its Node object, tap device and overlay disk",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				name = config.Default().Cluster.Name
			}
			return cluster.NewKind(name, cluster.WithLogger(logger)).DownVMs(cmd.Context())
		},
	}
	down.Flags().StringVar(&name, "name", s.ClusterName, "kind cluster name")
	cmd.AddCommand(up, down)
	return cmd
}
