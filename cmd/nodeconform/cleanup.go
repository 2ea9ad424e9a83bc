package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/kind/pkg/log"

	"github.com/nodeconform/nodeconform/framework/e2e"
)

func newCleanupCmd(logger log.Logger) *cobra.Command {
	var t target
	cmd := &cobra.Command{
		Use:   "cleanup",
		Short: "Remove what earlier runs left (namespaces, labelled cluster-scoped objects) and undo node changes left in the nodes' journals; live runs are not touched",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := t.settings(logger)
			if err != nil {
				return usageError{err}
			}
			s.Mode, s.Profile, s.Nodes = "apply", "", ""
			data, err := e2e.Up(cmd.Context(), s, logger, e2e.WithNodeAccess())
			if err != nil {
				return err
			}
			env, err := e2e.Connect(data)
			if err != nil {
				_ = e2e.Abandon(context.WithoutCancel(cmd.Context()), data)
				return err
			}
			if err := e2e.RemoveLeftovers(context.WithoutCancel(cmd.Context()), env); err != nil {
				return fmt.Errorf("remove cleanup's own probe: %w", err)
			}
			w := cmd.OutOrStdout()
			found := append(append([]string(nil), env.Swept...), env.Replayed...)
			if len(found) == 0 {
				fmt.Fprintln(w, "nodeconform cleanup: nothing to remove (no leftovers of earlier runs, no pending node journal entries)")
				return nil
			}
			fmt.Fprintf(w, "nodeconform cleanup: removed %d leftovers:\n  %s\n", len(found), strings.Join(found, "\n  "))
			return nil
		},
	}
	t.flags(cmd)
	return cmd
}
