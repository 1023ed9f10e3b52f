package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/crmsync/terraform-provider-crmsync/internal/client"
)

// Exit codes of every crmsync command (docs/control-plane.md, "Exit codes"). Scripts and cron jobs branch on
// them, so they only ever gain meanings, never change one.
const (
	// exitOK: the command did what it was asked; for `status`, every connector shown is healthy (not
	// degraded, not failed).
	exitOK = 0
	// exitFailed: the command ran but the outcome is bad: `status` shows a degraded or failed connector, a
	// restore failed, the control plane refused the operation (a conflict, a failed preflight, an invalid
	// value), a long-running service (serve, agent, sandbox) stopped on an error.
	exitFailed = 1
	// exitUsage: the command could not run: bad arguments or flags, no API token, an unknown connector,
	// backup or dead letter, or the control plane could not be reached or refused the token.
	exitUsage = 2
)

// exitError carries an exit code with the error to print.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode wraps err (nil stays nil) with an exit code.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// usageError is an exitUsage error.
func usageError(format string, args ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, args...)}
}

// unhealthy is returned by `status` when a connector is degraded or failed: what it prints is the message,
// so main prints nothing more.
var errUnhealthy = &exitError{code: exitFailed, err: errors.New("")}

// exitCode maps an error to the process's exit code: an explicit exitError wins; otherwise a control plane
// that cannot be reached or refuses the token, and an unknown object, are usage errors (2), anything else a
// failure (1).
func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	if connectionError(err) || cobraUsage(err) {
		return exitUsage
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		switch {
		case errors.Is(err, client.ErrUnauthenticated), errors.Is(err, client.ErrNotFound):
			return exitUsage
		}
		return exitFailed
	}
	return exitFailed
}

// connectionError reports whether err is a failure to reach the control plane (refused, unresolvable,
// timed out, TLS), as opposed to an answer from it.
func connectionError(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var ue *url.Error
	var ne net.Error
	var oe *net.OpError
	return errors.As(err, &ue) || errors.As(err, &oe) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded)
}

// cobraUsage recognises the refusals cobra makes before a command runs that no hook can mark: an unknown
// command, a required flag not given.
func cobraUsage(err error) bool {
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command ") || strings.HasPrefix(msg, "required flag(s) ") ||
		strings.HasPrefix(msg, "if any flags in the group ")
}

// markUsageErrors makes cobra's own refusals (unknown flags, bad flag values, wrong argument counts, unknown
// commands) exit with exitUsage, on cmd and every command below it.
func markUsageErrors(cmd *cobra.Command) {
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return withCode(exitUsage, err) })
	if args := cmd.Args; args != nil {
		cmd.Args = func(c *cobra.Command, a []string) error { return withCode(exitUsage, args(c, a)) }
	}
	for _, c := range cmd.Commands() {
		markUsageErrors(c)
	}
}

// errorText is what main prints for err: the message once, without the prefixes a wrapped control plane
// refusal repeats.
func errorText(err error) string {
	return strings.TrimSpace(err.Error())
}
