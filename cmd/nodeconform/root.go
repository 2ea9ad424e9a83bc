package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	kindcmd "sigs.k8s.io/kind/pkg/cmd"
	"sigs.k8s.io/kind/pkg/log"

	"github.com/nodeconform/nodeconform/framework/cluster"
	"github.com/nodeconform/nodeconform/framework/hostprep"
	"github.com/nodeconform/nodeconform/framework/versions"
)

// Exit codes a CI can gate on.
const (
	exitOK       = 0
	exitFailed   = 1
	exitUsageEnv = 2
)

// usageError marks errors caused by bad input or environment (exit 2).
type usageError struct{ error }

func execute(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := kindcmd.NewLogger()
	root := newRoot(logger)
	ran := false
	root.PersistentPreRun = chain(root.PersistentPreRun, func() { ran = true })
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	fmt.Fprintln(os.Stderr, "ERROR:", err)
	var ue usageError
	var env cluster.EnvError
	// A command that never ran failed on its flags or name.
	if errors.As(err, &ue) || errors.As(err, &env) || !ran {
		return exitUsageEnv
	}
	return exitFailed
}

func chain(f func(*cobra.Command, []string), then func()) func(*cobra.Command, []string) {
	return func(c *cobra.Command, a []string) {
		if f != nil {
			f(c, a)
		}
		then()
	}
}

func newRoot(logger log.Logger) *cobra.Command {
	root := &cobra.Command{
		Use:           "nodeconform",
		Short:         "Conformance checks for node-level isolation and tuning",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var verbosity int32
	root.PersistentFlags().Int32VarP(&verbosity, "verbosity", "v", 0, "log verbosity (0: progress, 1: details, 2+: debug)")
	root.PersistentPreRun = func(*cobra.Command, []string) {
		// kind's CLI logger can change its level; other loggers keep theirs.
		if l, ok := logger.(interface{ SetVerbosity(log.Level) }); ok {
			l.SetVerbosity(log.Level(verbosity))
		}
	}
	root.AddCommand(
		newSetupCmd(logger),
		newVersionCmd(),
		newImageCmd(logger),
		newClusterCmd(logger),
		newVMCmd(logger),
		newRunCmd(logger),
		newListCmd(),
		newDiffCmd(),
		newProfileCmd(logger),
		newCleanupCmd(logger),
		newRBACCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the pinned versions",
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "kubernetes %s\ncontainerd %s\nrunc %s\ndebian %s\n(etcd, CoreDNS and pause: the versions kubeadm of that release names)\n",
				versions.Kubernetes, versions.Containerd, versions.Runc, versions.DebianSuite)
		},
	}
}

func newSetupCmd(logger log.Logger) *cobra.Command {
	o := hostprep.DefaultOptions(logger)
	cmd := &cobra.Command{
		Use:   "setup",
		Short: "Make sure a Docker engine that can run kind nodes answers (installs docker.io on Debian when root)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := hostprep.EnsureDocker(cmd.Context(), o); err != nil {
				return usageError{err}
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&o.Install, "install", o.Install, "install docker.io and start dockerd when no engine answers")
	return cmd
}
