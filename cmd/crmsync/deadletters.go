package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
)

func newDeadLettersCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "dead-letters",
		Aliases: []string{"dead-letter", "dl"},
		Short:   "List, show, retry and discard the records Dataverse refused",
		Long: `A dead letter is a record the agent could not write: Dataverse refused it (a value too long, a missing
privilege, a lookup to a row that does not exist) or it could not be mapped. The agent keeps going with the
other records; each dead letter keeps the reason, the row body that was refused (the payload), when the
record first and last failed and how many times.

  crmsync dead-letters list CONNECTOR [--table T]       one line per record, newest failures first by table
  crmsync dead-letters show CONNECTOR RECORD_ID         the whole reason and the payload of one record
  crmsync dead-letters retry CONNECTOR (RECORD_ID...|--table T|--all)
  crmsync dead-letters discard CONNECTOR (RECORD_ID...|--table T|--all)

Retry asks the agent to write the records again (it re-reads them from Salesforce first, so fix the cause
in Salesforce or Dataverse, then retry); discard forgets them. Both say how many records they affected.
Exit status: 0 done, 1 the control plane refused, 2 bad arguments, an unknown connector or record, or the
control plane unreachable.`,
	}
	cmd.AddCommand(newDeadLettersListCommand(), newDeadLettersShowCommand(),
		newDeadLettersActionCommand("retry", "Ask the agent to write dead letters again"),
		newDeadLettersActionCommand("discard", "Forget dead letters without writing them"))
	return cmd
}

func newDeadLettersListCommand() *cobra.Command {
	var f apiFlags
	var table string
	var limit int
	cmd := &cobra.Command{
		Use:   "list CONNECTOR",
		Short: "List a connector's dead letters with their reasons",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, id, err := f.connector(cmd.Context(), "dead-letters", args[0])
			if err != nil {
				return err
			}
			l, err := c.ListDeadLetters(cmd.Context(), id, client.DeadLetterQuery{Table: table, Limit: limit})
			if err != nil {
				return err
			}
			if f.asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(l)
			}
			printDeadLetters(cmd.OutOrStdout(), l, time.Now())
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&table, "table", "", "only this source table (e.g. Contact)")
	cmd.Flags().IntVar(&limit, "limit", 100, "list at most this many (1-1000)")
	return cmd
}

// printDeadLetters lists dead letters one per line; the reason is cut to fit a line (show prints it whole).
func printDeadLetters(w io.Writer, l *api.DeadLetterList, now time.Time) {
	if len(l.DeadLetters) == 0 {
		fmt.Fprintln(w, "No dead letters.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TABLE\tRECORD\tOPERATION\tCODE\tATTEMPTS\tFIRST FAILED\tLAST FAILED\tREASON")
	for _, d := range l.DeadLetters {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s ago\t%s ago\t%s\n", d.Table, d.RecordID, d.Operation, d.Code, d.Attempts,
			ago(now, d.FirstAt), ago(now, d.At), oneLine(d.Reason, 100))
	}
	_ = tw.Flush()
	if int64(len(l.DeadLetters)) < l.Total {
		fmt.Fprintf(w, "%d of %d shown (--limit).\n", len(l.DeadLetters), l.Total)
	} else {
		fmt.Fprintf(w, "%d dead letter(s).\n", l.Total)
	}
	fmt.Fprintln(w, "The whole reason and the payload: crmsync dead-letters show CONNECTOR RECORD_ID")
}

func newDeadLettersShowCommand() *cobra.Command {
	var f apiFlags
	cmd := &cobra.Command{
		Use:   "show CONNECTOR RECORD_ID",
		Short: "Show one record's dead letter: the whole reason and the refused payload",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, id, err := f.connector(cmd.Context(), "dead-letters", args[0])
			if err != nil {
				return err
			}
			l, err := c.ListDeadLetters(cmd.Context(), id, client.DeadLetterQuery{RecordIDs: []string{args[1]}})
			if err != nil {
				return err
			}
			if len(l.DeadLetters) == 0 {
				return usageError("connector %s has no dead letter for record %s", args[0], args[1])
			}
			if f.asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(l)
			}
			for i, d := range l.DeadLetters {
				if i > 0 {
					fmt.Fprintln(cmd.OutOrStdout())
				}
				printDeadLetter(cmd.OutOrStdout(), d, time.Now())
			}
			return nil
		},
	}
	f.register(cmd)
	return cmd
}

func printDeadLetter(w io.Writer, d api.DeadLetter, now time.Time) {
	fmt.Fprintf(w, "Record     %s (%s)\n", d.RecordID, d.Table)
	fmt.Fprintf(w, "Operation  %s\n", d.Operation)
	fmt.Fprintf(w, "Code       %s\n", d.Code)
	fmt.Fprintf(w, "Attempts   %d, first failed %s (%s ago), last %s (%s ago)\n", d.Attempts,
		d.FirstAt.Local().Format("2006-01-02 15:04:05"), ago(now, d.FirstAt), d.At.Local().Format("2006-01-02 15:04:05"), ago(now, d.At))
	fmt.Fprintf(w, "Reason     %s\n", d.Reason)
	if d.Payload == "" {
		fmt.Fprintln(w, "Payload    (none)")
		return
	}
	fmt.Fprintln(w, "Payload")
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(d.Payload), "  ", "  "); err == nil {
		fmt.Fprintf(w, "  %s\n", buf.String())
	} else {
		fmt.Fprintf(w, "  %s\n", d.Payload)
	}
}

func newDeadLettersActionCommand(action, short string) *cobra.Command {
	var f apiFlags
	var table string
	var all bool
	cmd := &cobra.Command{
		Use:   action + " CONNECTOR (RECORD_ID...|--table T|--all)",
		Short: short,
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ids := args[1:]
			switch {
			case len(ids) > 0 && (all || table != ""):
				return usageError("give record IDs, or --table, or --all; not several")
			case len(ids) == 0 && !all && table == "":
				return usageError("name the dead letters to %s: record IDs, --table T or --all", action)
			case all && table != "":
				return usageError("--all and --table: give one")
			}
			c, id, err := f.connector(cmd.Context(), "dead-letters", args[0])
			if err != nil {
				return err
			}
			a := api.DeadLetterAction{Table: table, RecordIDs: ids}
			var res *api.DeadLetterActionResult
			if action == "retry" {
				res, err = c.RetryDeadLetters(cmd.Context(), id, a)
			} else {
				res, err = c.DiscardDeadLetters(cmd.Context(), id, a)
			}
			if err != nil {
				var ce *client.Error
				if errors.As(err, &ce) && ce.Body.Message != "" {
					return withCode(exitCode(err), errors.New(ce.Body.Message))
				}
				return err
			}
			if f.asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(res)
			}
			switch action {
			case "retry":
				fmt.Fprintf(cmd.OutOrStdout(), "%d dead letter(s) marked for retry; the agent writes them again within its next retry pass\n", res.Affected)
			default:
				fmt.Fprintf(cmd.OutOrStdout(), "%d dead letter(s) discarded\n", res.Affected)
			}
			if res.Affected == 0 && len(ids) > 0 {
				return usageError("no dead letter matched %v", ids)
			}
			return nil
		},
	}
	f.register(cmd)
	cmd.Flags().StringVar(&table, "table", "", "every dead letter of this source table")
	cmd.Flags().BoolVar(&all, "all", false, "every dead letter of the connector")
	return cmd
}
