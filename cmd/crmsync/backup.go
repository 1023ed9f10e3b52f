package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/retry"
	"github.com/crmsync/terraform-provider-crmsync/internal/version"
)

// apiFlags are the control plane connection flags of the safeguard commands (as `crmsync status` has them).
type apiFlags struct {
	endpoint, tokenFile, caFile string
	asJSON                      bool
}

func (f *apiFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.endpoint, "endpoint", "", "control plane URL (default: $CRMSYNC_ENDPOINT, else "+defaultEndpoint+")")
	fl.StringVar(&f.tokenFile, "token-file", "", "file holding the API token (default: $CRMSYNC_TOKEN)")
	fl.StringVar(&f.caFile, "ca-file", "", "extra CA certificate (PEM) to trust for the control plane")
	fl.BoolVar(&f.asJSON, "json", false, "print the API's JSON")
}

// connector returns the client for what and the ID of the connector arg names (an ID or a name).
func (f *apiFlags) connector(ctx context.Context, what, arg string) (*client.Client, string, error) {
	c, err := f.client(what)
	if err != nil {
		return nil, "", err
	}
	id, err := resolveConnector(ctx, c, arg)
	return c, id, err
}

func (f *apiFlags) client(what string) (*client.Client, error) {
	endpoint := f.endpoint
	if endpoint == "" {
		endpoint = os.Getenv("CRMSYNC_ENDPOINT")
	}
	if endpoint == "" {
		endpoint = defaultEndpoint
	}
	token, err := apiToken(f.tokenFile)
	if err != nil {
		return nil, err
	}
	return client.New(client.Config{Endpoint: endpoint, Token: token, CAFile: f.caFile, Timeout: 30 * time.Second,
		UserAgent: "crmsync-" + what + "/" + version.Version})
}

// pollEvery is how often the commands that wait read the progress.
const pollEvery = time.Second

func newBackupCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "backup",
		Short: "Back up a connector's Dataverse tables, list backups, and roll back to one",
		Long: `Backups hold, per destination table, every column the connector writes, the primary key, modifiedon and
the owner, as gzip-compressed NDJSON chunks with a manifest under the control plane's data directory
(DATA_DIR/backups/CONNECTOR/BACKUP). The first activation of a connector takes one before the agent starts;
these commands take one on demand, list them and restore one. See docs/guides/backups-rollback-and-drift.md.`,
	}
	cmd.AddCommand(newBackupCreateCommand(), newBackupListCommand(), newBackupRestoreCommand())
	return cmd
}

func newBackupCreateCommand() *cobra.Command {
	var f apiFlags
	var noWait bool
	cmd := &cobra.Command{
		Use:   "create CONNECTOR",
		Short: "Back up a connector's destination tables now",
		Long: `Starts a backup of the connector's destination tables on the control plane and, unless --no-wait, waits for it
(printing progress) and prints where it is. Interrupting the command does not stop the backup.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, id, err := f.connector(ctx, "backup", args[0])
			if err != nil {
				return err
			}
			b, err := c.CreateBackup(ctx, id)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if !noWait {
				last := ""
				for b.State != api.BackupComplete && b.State != api.BackupCancelled {
					if line := backupProgress(b); line != last && !f.asJSON {
						fmt.Fprintln(out, line)
						last = line
					}
					if err := retry.Sleep(ctx, pollEvery); err != nil {
						return fmt.Errorf("stopped waiting (the backup %s goes on): %w", b.ID, err)
					}
					if b, err = c.GetBackup(ctx, b.ID); err != nil {
						return err
					}
				}
			}
			if f.asJSON {
				return json.NewEncoder(out).Encode(b)
			}
			fmt.Fprintln(out, backupProgress(b))
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the backup has started")
	return cmd
}

func backupProgress(b *api.Backup) string {
	switch b.State {
	case api.BackupComplete:
		return fmt.Sprintf("backup %s complete: %s rows, %s, in %s", b.ID, groupDigits(b.Rows), byteSize(b.Bytes), b.Path)
	case api.BackupRetrying:
		return fmt.Sprintf("backup %s failed and will be retried: %s", b.ID, b.Error)
	}
	return fmt.Sprintf("backup %s %s: %s rows so far", b.ID, b.State, groupDigits(b.Rows))
}

func newBackupListCommand() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "list [CONNECTOR]",
		Short: "List backups with their row counts and sizes, newest first",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client("backup")
			if err != nil {
				return err
			}
			id := ""
			if len(args) == 1 {
				if id, err = resolveConnector(cmd.Context(), c, args[0]); err != nil {
					return err
				}
			}
			bs, err := c.ListBackups(cmd.Context(), id)
			if err != nil {
				return err
			}
			if f.asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(api.BackupList{Backups: bs})
			}
			printBackups(cmd.OutOrStdout(), bs)
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func printBackups(w io.Writer, bs []api.Backup) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tCONNECTOR\tTRIGGER\tSTATE\tROWS\tSIZE\tTABLES\tCREATED")
	for _, b := range bs {
		var tables []string
		for _, t := range b.Tables {
			tables = append(tables, fmt.Sprintf("%s %s", t.Table, groupDigits(t.Rows)))
		}
		name := b.ConnectorName
		if b.ConnectorDeleted {
			name += " (deleted)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.ID, name, b.Trigger, b.State, groupDigits(b.Rows), byteSize(b.Bytes),
			strings.Join(tables, ", "), b.CreatedAt.Local().Format("2006-01-02 15:04:05"))
	}
	_ = tw.Flush()
}

func newBackupRestoreCommand() *cobra.Command {
	var f apiFlags
	var deleteCreated, noWait bool
	var target string
	cmd := &cobra.Command{
		Use:   "restore BACKUP [--connector NAME]",
		Short: "Roll the connector's Dataverse tables back to a backup",
		Long: `Writes the backed-up rows back where they differ from what Dataverse holds now (rows restored; the others
unchanged). With --delete-created it also deletes rows the sync created since the backup: rows the backup does
not hold whose key is the GUID of a Salesforce Id of the mapped object and that the connector's application
user created. Rows nobody synced are never touched (kept).

The connector must be deactivated first; the restore is refused otherwise. It runs on the control plane; this
command waits for it and prints what it changed. An interrupted restore (the control plane stopped) resumes
from its last finished chunk when run again, and running a finished one again changes nothing more.

Backups outlive their connector: after the connector was deleted (terraform destroy), 'crmsync backup list'
still lists its backups, and --connector names another connector of the same Dataverse environment (one
created again, say) to restore with; a connector of another environment is refused.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := f.client("backup")
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			req := api.RestoreRequest{DeleteCreated: deleteCreated}
			if target != "" {
				if req.ConnectorID, err = resolveConnector(ctx, c, target); err != nil {
					return err
				}
			}
			r, err := c.RestoreBackup(ctx, args[0], req)
			if err != nil {
				var ce *client.Error
				if errors.As(err, &ce) {
					return withCode(exitCode(err), errors.New(ce.Body.Message))
				}
				return err
			}
			out := cmd.OutOrStdout()
			for !noWait && r.State == api.RestoreRunning {
				if err := retry.Sleep(ctx, pollEvery); err != nil {
					return fmt.Errorf("stopped waiting (restore %s goes on): %w", r.ID, err)
				}
				if r, err = c.GetRestore(ctx, r.ID); err != nil {
					return err
				}
			}
			if f.asJSON {
				if err := json.NewEncoder(out).Encode(r); err != nil {
					return err
				}
			} else {
				printRestore(out, r)
			}
			if r.State == api.RestoreFailed {
				return fmt.Errorf("restore %s failed: %s", r.ID, r.Error)
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&deleteCreated, "delete-created", false, "also delete rows the sync created since the backup")
	cmd.Flags().StringVar(&target, "connector", "", "restore with this connector (name or ID) of the backup's Dataverse environment; needed when the backup's own was deleted")
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the restore has started")
	return cmd
}

func printRestore(w io.Writer, r *api.Restore) {
	resumed := ""
	if r.Resumed {
		resumed = " (resumed an interrupted run)"
	}
	fmt.Fprintf(w, "Restore %s of backup %s: %s%s\n", r.ID, r.BackupID, r.State, resumed)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tBACKED UP\tRESTORED\tUNCHANGED\tDELETED\tKEPT\tFAILED")
	for _, t := range r.Tables {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.Table, groupDigits(t.Rows), groupDigits(t.Restored), groupDigits(t.Unchanged),
			groupDigits(t.Deleted), groupDigits(t.Kept), groupDigits(t.Failed))
	}
	fmt.Fprintf(tw, "total\t\t%s\t%s\t%s\t%s\t%s\n", groupDigits(r.Restored), groupDigits(r.Unchanged), groupDigits(r.Deleted), groupDigits(r.Kept), groupDigits(r.Failed))
	_ = tw.Flush()
	for _, t := range r.Tables {
		for _, ex := range t.Examples {
			fmt.Fprintf(w, "  %s: %s\n", t.Table, ex)
		}
	}
	if r.Error != "" {
		fmt.Fprintf(w, "Error: %s\n", r.Error)
	}
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func groupDigits(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && c != '-' && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
