// Package plansummary turns a saved Terraform or OpenTofu plan (`terraform show -json PLANFILE`) into the review
// of its crmsync changes that `crmsync plan-summary` posts on a pull request: per connector and table, the
// columns added, re-fed and removed with the re-sync they trigger, team and secret changes, destroys, and the
// drift found by the refresh, with a one-line headline.
//
// The provider's plan warnings say the same things, but a saved plan does not keep them; this package reads
// only what a plan holds (before and after values, replace paths, drift, configuration references), plus the
// record counts the control plane gives when it is reachable. It never prints a sensitive value: the JSON plan
// holds inline secrets in clear. Any document gives a summary or an error wrapping ErrNotAPlan, never a panic
// (FuzzSummarize).
package plansummary
