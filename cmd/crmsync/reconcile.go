package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/retry"
)

func newReconcileCommand() *cobra.Command {
	var f apiFlags
	var noWait bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "reconcile CONNECTOR",
		Short: "Reconcile a connector's tables now: counts and checksums of both sides, differences healed",
		Long: `Asks the connector's agent to reconcile every table now (it does so on a schedule too, every
tuning.reconcile_interval): it reads Salesforce with one Bulk query and Dataverse in pages of 5,000 rows,
compares row counts and checksums per key range, drills into the ranges that differ, and heals the records
that are missing or different by re-reading them from Salesforce. It prints each table's result and the API
calls it cost; the results also show in 'crmsync status'. The connector must be active.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			c, id, err := f.connector(ctx, "reconcile", args[0])
			if err != nil {
				return err
			}
			req, err := c.Reconcile(ctx, id)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if noWait {
				fmt.Fprintf(out, "reconciliation %d requested; the agent takes it up with its next heartbeat\n", req.RequestID)
				return nil
			}
			deadline := time.Now().Add(timeout)
			for {
				st, err := c.Status(ctx, id)
				if err != nil {
					return err
				}
				if reconciled(st, req.RequestID) {
					if f.asJSON {
						return json.NewEncoder(out).Encode(st)
					}
					printReconcile(out, st)
					return nil
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("reconciliation %d is not done after %s (state %s); it goes on in the agent: see crmsync status", req.RequestID, timeout, st.State)
				}
				if err := retry.Sleep(ctx, pollEvery); err != nil {
					return err
				}
			}
		},
	}
	f.register(cmd)
	cmd.Flags().BoolVar(&noWait, "no-wait", false, "return once the request is recorded")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "how long to wait for the results")
	return cmd
}

// reconciled reports whether every table has a result of the request (or a later one).
func reconciled(st *api.ConnectorStatus, requestID int64) bool {
	if len(st.Tables) == 0 {
		return false
	}
	for _, t := range st.Tables {
		if t.Reconcile == nil || t.Reconcile.RequestID < requestID || t.Reconcile.FinishedAt.IsZero() {
			return false
		}
	}
	return true
}

func printReconcile(w io.Writer, st *api.ConnectorStatus) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tRESULT\tSALESFORCE\tDATAVERSE\tMISSING\tDIFFERENT\tEXTRA\tKEPT\tHEALED\tRANGES\tCALLS (SF/DV)")
	for _, t := range st.Tables {
		r := t.Reconcile
		result := "match"
		switch {
		case r.Error != "":
			result = "error"
		case !r.Match:
			result = "differed"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d/%d\t%d/%d\n", t.Table, result, groupDigits(r.SourceRows), groupDigits(r.DestinationRows),
			r.Missing, r.Different, r.Extra, r.Kept, r.Healed, r.DifferingRanges, r.Ranges, r.SalesforceCalls, r.DataverseCalls)
	}
	_ = tw.Flush()
	for _, t := range st.Tables {
		r := t.Reconcile
		if r.Error != "" {
			fmt.Fprintf(w, "  %s: %s\n", t.Table, r.Error)
		}
		if r.Unhealed > 0 {
			fmt.Fprintf(w, "  %s: %d not healed: Dataverse refused the rewrite; the records are dead-lettered with the reason\n", t.Table, r.Unhealed)
		}
		for _, d := range r.Examples {
			line := fmt.Sprintf("  %s: %s %s", t.Table, d.Kind, d.Key)
			if d.RecordID != "" {
				line += " (" + d.RecordID + ")"
			}
			if len(d.Columns) > 0 {
				line += ": " + strings.Join(d.Columns, ", ")
			}
			fmt.Fprintln(w, line)
		}
	}
}
