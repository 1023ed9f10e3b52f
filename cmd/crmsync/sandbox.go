package main

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
)

func newSandboxCommand() *cobra.Command {
	var (
		opts sandbox.Options
		// appUsers counts the first application user too; the emulator adds appUsers-1.
		appUsers int
		verbose  bool
	)
	cmd := &cobra.Command{
		Use:   "sandbox --dir DIR",
		Short: "Run local Salesforce and Dataverse emulators with seed data",
		Long: `Starts protocol-faithful emulators of Salesforce (OAuth, REST, Bulk API 2.0, Pub/Sub API CDC) and
Microsoft Dataverse (Entra ID token endpoint, Web API), seeds Salesforce with contacts and accounts, and
writes DIR/sandbox.json describing every endpoint and credential. It runs until interrupted.

Listeners, from the port base P (random free ports when P is 0): Salesforce login P, Salesforce instance P+1,
Pub/Sub API P+2, admin API P+3, Dataverse environment P+4, Entra ID authority P+5.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.Dir == "" {
				return fmt.Errorf("--dir is required: the directory that receives sandbox.json and the generated CA and keys")
			}
			if appUsers < 1 {
				return usageError("--dataverse-application-users must be at least 1, got %d", appUsers)
			}
			opts.Dataverse.ApplicationUsers = appUsers - 1
			if opts.Contacts < 0 || opts.Accounts < 0 {
				return fmt.Errorf("--contacts and --accounts must not be negative")
			}
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			opts.Logger = logger
			started := time.Now()
			sb, err := sandbox.Start(cmd.Context(), opts)
			if err != nil {
				return err
			}
			defer sb.Close()
			out := cmd.OutOrStdout()
			info := sb.Info
			fmt.Fprintf(out, "crmsync sandbox ready in %s (%d contacts, %d accounts)\n", time.Since(started).Round(time.Millisecond), opts.Contacts, opts.Accounts)
			fmt.Fprintf(out, "  Salesforce login     %s\n", info.Salesforce.LoginURL)
			fmt.Fprintf(out, "  Salesforce instance  %s\n", info.Salesforce.InstanceURL)
			fmt.Fprintf(out, "  Pub/Sub API (gRPC)   %s\n", info.Salesforce.PubSubAddr)
			fmt.Fprintf(out, "  Dataverse            %s\n", info.Dataverse.EnvironmentURL)
			fmt.Fprintf(out, "  Entra ID authority   %s\n", info.Dataverse.AuthorityURL)
			fmt.Fprintf(out, "  Admin API            %s\n", info.AdminURL)
			fmt.Fprintf(out, "  Details              %s/sandbox.json\n", opts.Dir)
			fmt.Fprintln(out, "Press Ctrl-C to stop.")
			select {
			case <-cmd.Context().Done():
				fmt.Fprintln(out, "stopping")
				return nil
			case err := <-sb.Err():
				return fmt.Errorf("sandbox server failed: %w", err)
			}
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Dir, "dir", "", "directory for sandbox.json, ca.pem and the Salesforce JWT key (created if missing)")
	f.IntVar(&opts.Contacts, "contacts", 100, "number of Salesforce contacts to seed")
	f.IntVar(&opts.Accounts, "accounts", 20, "number of Salesforce accounts to seed")
	f.Int64Var(&opts.Seed, "seed", 1, "seed of the generated data")
	f.StringVar(&opts.Host, "host", "127.0.0.1", "address the listeners bind")
	f.IntVar(&opts.PortBase, "port-base", 0, "first of six consecutive ports (0 picks free ports)")
	f.BoolVar(&opts.Plaintext, "plaintext", false, "serve plain HTTP and gRPC instead of TLS")
	f.IntVar(&appUsers, "dataverse-application-users", 1,
		"number of Dataverse application users, each with its own client id, secret and service-protection budget (sandbox.json lists the ones after the first under dataverse.application_users)")
	f.BoolVar(&verbose, "verbose", false, "log every request")
	return cmd
}
