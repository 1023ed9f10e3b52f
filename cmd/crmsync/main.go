// Command crmsync is the crmsync runtime: the local sandbox emulators today, and the control plane, the
// sync agent and the status view as they land.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/crmsync/terraform-provider-crmsync/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "crmsync:", err)
		os.Exit(1)
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "crmsync",
		Short:         "Sync Salesforce into Microsoft Dataverse, declared with Terraform",
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newSandboxCommand(), newAgentCommand(), newServeCommand())
	root.AddCommand(newStatusCommand())
	root.AddCommand(newBackupCommand())
	root.AddCommand(newReconcileCommand())
	root.AddCommand(newPlanSummaryCommand())
	return root
}
