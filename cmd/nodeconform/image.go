package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"sigs.k8s.io/kind/pkg/log"

	"github.com/nodeconform/nodeconform/framework/e2e"
	"github.com/nodeconform/nodeconform/framework/hostprep"
	"github.com/nodeconform/nodeconform/framework/nfd"
	"github.com/nodeconform/nodeconform/framework/nodeimage"
	"github.com/nodeconform/nodeconform/framework/probe"
	"github.com/nodeconform/nodeconform/framework/progress"
	"github.com/nodeconform/nodeconform/framework/registry"
)

func newImageCmd(logger log.Logger) *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Node image commands"}
	o := nodeimage.DefaultOptions(logger)
	build := &cobra.Command{
		Use:   "build",
		Short: "Build the air-gapped kind node image from Debian packages and the Go module proxy",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := hostprep.EnsureDocker(cmd.Context(), hostprep.DefaultOptions(logger)); err != nil {
				return usageError{err}
			}
			img, err := nodeimage.Build(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), img)
			return nil
		},
	}
	f := build.Flags()
	f.StringVar(&o.KubernetesVersion, "kubernetes-version", o.KubernetesVersion, "Kubernetes release to build")
	f.StringVar(&o.Image, "image", "", "tag of the node image (default nodeconform/node:<kubernetes-version>)")
	f.StringVar(&o.CacheDir, "cache-dir", o.CacheDir, "build cache (root filesystem, binaries, image archives); env NODECONFORM_CACHE")
	f.StringVar(&o.Mirror, "debian-mirror", "", "Debian archive to debootstrap from (default: the one this host's apt uses)")
	f.StringVar(&o.SourceDir, "source-dir", o.SourceDir, "nodeconform source tree (for the in-cluster binaries)")
	f.BoolVar(&o.Force, "force", false, "rebuild the final image even when it is up to date")
	f.BoolVar(&o.VMRoot, "vm-root", false, "also debootstrap the cgroup v2 VM node's root filesystem while the binaries compile (for a later vm up)")
	var probeOpts probe.BuildOptions
	var push string
	probeCmd := &cobra.Command{
		Use:   "probe",
		Short: "Build the probe image (FROM scratch) and print its reference and docker-save archive, to push for existing clusters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := hostprep.EnsureDocker(cmd.Context(), hostprep.DefaultOptions(logger)); err != nil {
				return usageError{err}
			}
			if push != "" {
				// Bad input and an unreachable registry fail before the
				// build, not after minutes of it.
				if _, err := registry.ParseRef(push); err != nil {
					return usageError{err}
				}
			}
			img, err := probe.BuildImage(cmd.Context(), probeOpts)
			if err != nil {
				return err
			}
			if push != "" {
				if err := registry.Push(cmd.Context(), img.Archive, push); err != nil {
					if errors.Is(err, registry.ErrUnreachable) {
						return usageError{err}
					}
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "pushed %s as %s\n", img.Ref, push)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n%s\n", img.Ref, img.Archive)
			return nil
		},
	}
	probeCmd.Flags().StringVar(&push, "push", "", "also push the image to this reference (REGISTRY/REPO:TAG) with go-containerregistry")
	probeCmd.Flags().StringVar(&probeOpts.SourceDir, "source-dir", e2e.FindModuleRoot(), "nodeconform source tree")
	probeCmd.Flags().StringVar(&probeOpts.CacheDir, "cache-dir", o.CacheDir, "build cache")
	var nfdOpts nfd.BuildOptions
	nfdCmd := &cobra.Command{
		Use:   "nfd",
		Short: "Build Node Feature Discovery (nfd-master, nfd-worker) from the Go module proxy into an image; print its reference and archive",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := hostprep.EnsureDocker(cmd.Context(), hostprep.DefaultOptions(logger)); err != nil {
				return usageError{err}
			}
			logger.V(0).Infof("building NFD %s (first build: a few minutes)", nfd.NFD)
			p := progress.Start(logger, "NFD "+nfd.NFD+" image", "")
			img, err := nfd.BuildImage(cmd.Context(), nfdOpts)
			p.Stop()
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n%s\n", img.Ref, img.Archive)
			return nil
		},
	}
	nfdCmd.Flags().StringVar(&nfdOpts.CacheDir, "cache-dir", o.CacheDir, "build cache")
	cmd.AddCommand(build, probeCmd, nfdCmd)
	return cmd
}
