package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/crmsync/terraform-provider-crmsync/internal/version"
)

func newVersionCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version of this binary",
		Long: `Prints the binary's version: the one its release build was linked with (make build and goreleaser link
'git describe'), else what the Go toolchain recorded (the module version of 'go install ...@vX.Y.Z', the
tag or pseudo-version of a build from a git clone, -dirty when the clone had uncommitted changes, or
dev-<commit>), with the commit, its time, the Go version and the platform. --json prints the same as one
JSON document. The control plane reports the version in /healthz and as the crmsync_build_info metric.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := version.Get()
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionLine(info))
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the version as JSON")
	return cmd
}

// versionLine is the human form: "crmsync v1.2.3 (commit 0c59693e487f, 2026-12-06T13:44:00Z; go1.26.8 linux/amd64)".
func versionLine(info version.Info) string {
	var parts []string
	if info.Commit != "" {
		c := "commit " + info.Commit
		if len(info.Commit) > 12 {
			c = "commit " + info.Commit[:12]
		}
		if info.Modified {
			c += " with uncommitted changes"
		}
		if !info.CommitTime.IsZero() {
			c += ", " + info.CommitTime.UTC().Format("2006-01-02T15:04:05Z")
		}
		parts = append(parts, c)
	}
	parts = append(parts, info.GoVersion+" "+info.Platform)
	return fmt.Sprintf("crmsync %s (%s)", info.Version, strings.Join(parts, "; "))
}
