package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/client"
)

// newAgentsCommand is `crmsync agents`: the agent identities of a control plane, administered on its host
// through the local socket in its data directory (access to the directory is the authorization; the
// operator token cannot do this).
func newAgentsCommand() *cobra.Command {
	var dataDir string
	cmd := &cobra.Command{
		Use:   "agents",
		Short: "Enroll, list and revoke agent identities (on the control plane's host)",
		Long: `Administers the agent identities of the control plane running on this host, through its local socket
(DATA_DIR/crmsync.sock). Remote agents enroll with a single-use token from 'enroll-token':

  crmsync agents enroll-token --data-dir /var/lib/crmsync --connector con_... --ttl 15m > token
  # on the agent's host:
  crmsync agent --control-plane https://crmsync.internal:8787 --connector con_... \
    --enroll-token-file token --credential-file /var/lib/crmsync-agent/credential

The agent keeps its own credential in --credential-file (0600) and rotates it at every start. Local agents of
'crmsync serve' get theirs from it directly. See docs/security.md.`,
	}
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", "", "the control plane's data directory (required)")
	adminClient := func() (*client.Client, error) {
		if dataDir == "" {
			return nil, errors.New("--data-dir is required: the control plane's data directory, whose socket serves these commands")
		}
		return client.New(client.Config{Endpoint: "http://crmsync", UnixSocket: filepath.Join(dataDir, SocketFile), Timeout: 30 * time.Second})
	}

	var connectorID, description string
	var ttl time.Duration
	enroll := &cobra.Command{
		Use:   "enroll-token",
		Short: "Create a single-use enrollment token (printed on stdout, once)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := adminClient()
			if err != nil {
				return err
			}
			en, err := c.CreateEnrollment(cmd.Context(), api.EnrollmentRequest{ConnectorID: connectorID, TTLSeconds: int(ttl / time.Second), Description: description})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), en.Token)
			scope := "any connector"
			if en.ConnectorID != "" {
				scope = "connector " + en.ConnectorID
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "enrollment token %s: one agent, for %s, until %s\n", en.ID, scope, en.ExpiresAt.Format(time.RFC3339))
			return nil
		},
	}
	enroll.Flags().StringVar(&connectorID, "connector", "", "the one connector the agent may lease (any when empty)")
	enroll.Flags().DurationVar(&ttl, "ttl", time.Hour, "how long the token can be used (at most 24h)")
	enroll.Flags().StringVar(&description, "description", "", "what the token is for (in the audit log)")

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the agent identities",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := adminClient()
			if err != nil {
				return err
			}
			as, err := c.ListAgents(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(api.AgentList{Agents: as})
			}
			return printAgents(cmd.OutOrStdout(), as)
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")

	revoke := &cobra.Command{
		Use:   "revoke AGENT_ID",
		Short: "Revoke an agent identity: its credential stops working and its leases are released",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := adminClient()
			if err != nil {
				return err
			}
			if err := c.RevokeAgent(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "agent %s revoked\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(enroll, list, revoke)
	return cmd
}

func printAgents(w io.Writer, as []api.AgentIdentity) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tKIND\tCONNECTOR\tHOST\tLAST SEEN")
	for _, a := range as {
		seen := "never"
		if !a.LastSeenAt.IsZero() {
			seen = a.LastSeenAt.Format(time.RFC3339)
		}
		conn := a.ConnectorID
		if conn == "" {
			conn = "any"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, a.Name, a.Kind, conn, a.Host, seen)
	}
	return tw.Flush()
}
