package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
	"github.com/crmsync/terraform-provider-crmsync/internal/version"
)

// defaultEndpoint is where `crmsync serve` listens by default.
const defaultEndpoint = "http://127.0.0.1:8787"

func newStatusCommand() *cobra.Command {
	var (
		endpoint  string
		tokenFile string
		caFile    string
		watch     bool
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "status [CONNECTOR]",
		Short: "Show the sync state of connectors: progress, lag, counters, errors",
		Long: `Shows what the control plane knows of its connectors.

Without CONNECTOR: one line per connector (state, deployed/latest revision, lag, dead letters). With a
connector name or ID: a progress bar per table during the initial load (records done of the estimated total,
rate, time left), then a table of each table's phase, lag, counters and the age of its stored replay
position against the 72 h retention, and the last errors.

--watch redraws every second until interrupted; --json prints the API's status JSON instead (one document
per line with --watch). The endpoint and token default to CRMSYNC_ENDPOINT and CRMSYNC_TOKEN.

Exit status, for cron jobs and CI steps: 0 when every connector shown is healthy (not degraded or failed;
inactive, deploying, loading and streaming are healthy), 1 when one is degraded or failed, 2 when the
command could not run (bad arguments, no token, an unknown connector, the control plane unreachable or
refusing the token). --watch exits 0 when interrupted.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if endpoint == "" {
				endpoint = os.Getenv("CRMSYNC_ENDPOINT")
			}
			if endpoint == "" {
				endpoint = defaultEndpoint
			}
			token, err := apiToken(tokenFile)
			if err != nil {
				return err
			}
			c, err := client.New(client.Config{Endpoint: endpoint, Token: token, CAFile: caFile, Timeout: 15 * time.Second,
				UserAgent: "crmsync-status/" + version.Version})
			if err != nil {
				return err
			}
			v := &statusView{c: c, out: cmd.OutOrStdout(), json: asJSON, history: map[string][]progressSample{}}
			if len(args) == 1 {
				if v.connectorID, err = resolveConnector(cmd.Context(), c, args[0]); err != nil {
					return err
				}
			}
			if !watch {
				healthy, err := v.frame(cmd.Context(), false)
				if err != nil {
					return err
				}
				if !healthy {
					return errUnhealthy
				}
				return nil
			}
			return v.watch(cmd.Context(), isTerminal(cmd.OutOrStdout()))
		},
	}
	f := cmd.Flags()
	f.StringVar(&endpoint, "endpoint", "", "control plane URL (default: $CRMSYNC_ENDPOINT, else "+defaultEndpoint+")")
	f.StringVar(&tokenFile, "token-file", "", "file holding the API token (default: $CRMSYNC_TOKEN)")
	f.StringVar(&caFile, "ca-file", "", "extra CA certificate (PEM) to trust for the control plane")
	f.BoolVar(&watch, "watch", false, "redraw every second until interrupted")
	f.BoolVar(&asJSON, "json", false, "print the API's status JSON")
	return cmd
}

// resolveConnector accepts a connector ID or name.
func resolveConnector(ctx context.Context, c *client.Client, arg string) (string, error) {
	if strings.HasPrefix(arg, "con_") {
		conn, err := c.GetConnector(ctx, arg)
		if err == nil {
			return conn.ID, nil
		}
		if !errors.Is(err, client.ErrNotFound) {
			return "", err
		}
	}
	conn, err := c.FindConnector(ctx, arg)
	if err != nil {
		if errors.Is(err, client.ErrNotFound) {
			return "", usageError("no connector has the ID or name %q", arg)
		}
		return "", err
	}
	return conn.ID, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progressSample is one observation of a table's load progress, for the rate.
type progressSample struct {
	at   time.Time
	done int64
}

// statusView fetches and prints status frames.
type statusView struct {
	c           *client.Client
	out         io.Writer
	json        bool
	connectorID string
	// history keeps recent load progress per table ("<connector>/<table>") across --watch frames.
	history map[string][]progressSample
}

func (v *statusView) watch(ctx context.Context, tty bool) error {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		if tty && !v.json {
			fmt.Fprint(v.out, "\033[H\033[2J") // home and clear: redraw in place
		}
		if _, err := v.frame(ctx, true); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// A control plane that restarts is worth waiting for in a watch.
			fmt.Fprintf(v.out, "error: %v\n", err)
		}
		if !tty && !v.json {
			fmt.Fprintln(v.out)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// frame fetches and prints one view; healthy is false when a connector shown is degraded or failed.
func (v *statusView) frame(ctx context.Context, watching bool) (healthy bool, err error) {
	now := time.Now()
	if v.connectorID != "" {
		st, err := v.c.Status(ctx, v.connectorID)
		if err != nil {
			return false, err
		}
		if v.json {
			return isHealthy(*st), writeJSONLine(v.out, st, !watching)
		}
		renderConnector(v.out, *st, v.rates(*st), now)
		return isHealthy(*st), nil
	}
	conns, err := v.c.ListConnectors(ctx)
	if err != nil {
		return false, err
	}
	list := make([]api.ConnectorStatus, 0, len(conns))
	healthy = true
	for _, conn := range conns {
		st, err := v.c.Status(ctx, conn.ID)
		if err != nil {
			return false, err
		}
		list = append(list, *st)
		healthy = healthy && isHealthy(*st)
	}
	if v.json {
		return healthy, writeJSONLine(v.out, struct {
			Connectors []api.ConnectorStatus `json:"connectors"`
		}{list}, !watching)
	}
	renderList(v.out, list, now)
	return healthy, nil
}

// isHealthy is the status command's exit test: a connector is unhealthy when degraded or failed.
func isHealthy(st api.ConnectorStatus) bool {
	return st.State != api.StateDegraded && st.State != api.StateFailed
}

func writeJSONLine(w io.Writer, v any, indent bool) error {
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

// rateWindow is how far back --watch looks for a table's load rate.
const rateWindow = 15 * time.Second

// rates returns each loading table's rate in records per second: the agent's own measure over the last 5
// minutes (Dataverse's service-protection window, so a budget-bound load's waits count) when it reports one;
// else over the last frames in --watch, else the average since the agent started (a resumed load counts rows
// done before, so it reads high).
func (v *statusView) rates(st api.ConnectorStatus) map[string]float64 {
	out := map[string]float64{}
	for _, t := range st.Tables {
		if t.LoadRate > 0 {
			out[t.Table] = t.LoadRate
			continue
		}
		key := st.ConnectorID + "/" + t.Table
		h := v.history[key]
		if len(h) == 0 || !st.UpdatedAt.Equal(h[len(h)-1].at) {
			h = append(h, progressSample{at: st.UpdatedAt, done: t.LoadDone})
		}
		for len(h) > 2 && st.UpdatedAt.Sub(h[0].at) > rateWindow {
			h = h[1:]
		}
		v.history[key] = h
		first, last := h[0], h[len(h)-1]
		if el := last.at.Sub(first.at).Seconds(); el > 0 && last.done >= first.done {
			out[t.Table] = float64(last.done-first.done) / el
		} else if st.Agent != nil && !st.Agent.StartedAt.IsZero() {
			if el := st.UpdatedAt.Sub(st.Agent.StartedAt).Seconds(); el > 0 {
				out[t.Table] = float64(t.LoadDone) / el
			}
		}
	}
	return out
}
