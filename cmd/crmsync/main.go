// Command crmsync is the crmsync runtime: `serve` (the control plane: API, store, supervisor of local
// agents, backup jobs), `agent` (the sync worker, standalone, under a control plane or in a pool), the
// operator's commands (`status`, `backup`, `reconcile`, `dead-letters`, `agents`, `plan-summary`,
// `version`) and `sandbox` (the Salesforce and Dataverse emulators). docs/architecture.md maps the pieces.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/crmsync/terraform-provider-crmsync/internal/version"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command line args and returns the exit status (exit.go), printing a failure to stderr once.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRootCommand() //nolint:contextcheck // the commands get ctx from ExecuteContext below
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err != nil {
		if msg := errorText(err); msg != "" {
			fmt.Fprintln(stderr, "crmsync:", msg)
		}
	}
	return exitCode(err)
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
	root.AddCommand(newDeadLettersCommand())
	root.AddCommand(newVersionCommand())
	root.SetVersionTemplate("crmsync {{.Version}}\n")
	markUsageErrors(root)
	root.AddCommand(newAgentsCommand())
	return root
}
