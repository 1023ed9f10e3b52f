package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/plansummary"
	"github.com/crmsync/terraform-provider-crmsync/internal/version"
)

// maxPlanBytes bounds the plan read: a JSON plan of a few hundred resources is a few MiB.
const maxPlanBytes = 256 << 20

func newPlanSummaryCommand() *cobra.Command {
	var (
		format    string
		endpoint  string
		tokenFile string
		caFile    string
		offline   bool
	)
	cmd := &cobra.Command{
		Use:   "plan-summary [--format markdown|json] PLAN.json",
		Short: "Summarize the crmsync changes of a saved plan for a pull-request comment",
		Long: `Reads a JSON plan, the output of

  terraform plan -out=tfplan && terraform show -json tfplan > PLAN.json     (or tofu plan / tofu show -json)

and writes what it changes in crmsync, per connector and table: columns added (with the re-sync they trigger),
columns whose source changes (with the type and length consequences), columns removed (their data stays in
Dataverse), tables added and removed, team changes (who owns new rows, privileges to check), activation
changes, destroys (what happens to the data and the backups), secrets rotated (*_wo_version), and the drift
the refresh found. The first line is a one-line headline. The output is stable (sorted, no timestamps) and
small enough for a pull-request comment. PLAN.json "-" reads standard input.

Record counts and API costs of the loads and re-syncs are asked of the control plane when it is given and
reachable (--endpoint or CRMSYNC_ENDPOINT, with --token-file or CRMSYNC_TOKEN); without it, or with --offline,
the summary says they are not counted. Secret values are never printed, even those the JSON plan holds.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "markdown" && format != "json" {
				return fmt.Errorf("--format %q: use markdown or json", format)
			}
			b, err := readPlan(cmd.InOrStdin(), args[0])
			if err != nil {
				return err
			}
			opts := estimatorOptions(cmd.Context(), cmd.ErrOrStderr(), endpoint, tokenFile, caFile, offline)
			s, err := plansummary.Summarize(cmd.Context(), b, opts)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			out := s.Markdown()
			if format == "json" {
				out = s.JSON()
			}
			_, err = cmd.OutOrStdout().Write(out)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", "markdown", "output format: markdown (a pull-request comment) or json")
	f.StringVar(&endpoint, "endpoint", "", "control plane URL for record counts (default: $CRMSYNC_ENDPOINT; none: offline)")
	f.StringVar(&tokenFile, "token-file", "", "file holding the API token (default: $CRMSYNC_TOKEN)")
	f.StringVar(&caFile, "ca-file", "", "extra CA certificate (PEM) to trust for the control plane")
	f.BoolVar(&offline, "offline", false, "never contact the control plane (no record counts)")
	return cmd
}

func readPlan(stdin io.Reader, name string) ([]byte, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxPlanBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	if len(b) > maxPlanBytes {
		return nil, fmt.Errorf("%s is larger than %d MiB: not a JSON plan of a crmsync configuration", name, maxPlanBytes>>20)
	}
	return b, nil
}

// estimatorOptions connects to the control plane for record counts when one is given and answers; otherwise
// the summary says why the counts are missing. Nothing here fails the command: the summary is useful offline.
func estimatorOptions(ctx context.Context, stderr io.Writer, endpoint, tokenFile, caFile string, offline bool) plansummary.Options {
	if offline {
		return plansummary.Options{NoEstimator: "--offline"}
	}
	if endpoint == "" {
		endpoint = os.Getenv("CRMSYNC_ENDPOINT")
	}
	if endpoint == "" {
		return plansummary.Options{NoEstimator: "no control plane given (--endpoint or CRMSYNC_ENDPOINT, with CRMSYNC_TOKEN)"}
	}
	token, err := apiToken(tokenFile)
	if err != nil {
		return plansummary.Options{NoEstimator: "no API token for the control plane (--token-file or CRMSYNC_TOKEN)"}
	}
	c, err := client.New(client.Config{Endpoint: endpoint, Token: token, CAFile: caFile, Timeout: time.Minute,
		UserAgent: "crmsync-plan-summary/" + version.Version})
	if err != nil {
		return plansummary.Options{NoEstimator: "the control plane settings are invalid: " + err.Error()}
	}
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Health(hctx); err != nil {
		fmt.Fprintf(stderr, "crmsync plan-summary: the control plane at %s did not answer (%v): record counts are not shown\n", c.Endpoint(), err)
		return plansummary.Options{NoEstimator: "the control plane did not answer"}
	}
	return plansummary.Options{Estimator: plansummary.ClientEstimator{Client: c}}
}
