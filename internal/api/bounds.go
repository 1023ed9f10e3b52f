package api

import (
	"fmt"
	"time"
)

// The table of bounds: every size and interval a person can set, with the range accepted. The control
// plane's API, the agent's configuration file (and the configuration a lease carries) and the Terraform
// provider's plan all check against these values, so a value refused in one place is refused in all.
// Zero takes the default; for the safeguard intervals a negative value turns the check off.
var (
	// BatchSizeBound: rows per Dataverse write; Dataverse takes at most 1,000 operations per request.
	BatchSizeBound = IntBound{Key: "batch_size", Min: 1, Max: 1000}
	// WriteConcurrencyBound: Dataverse writes in flight per table (service protection allows 52 per user).
	WriteConcurrencyBound = IntBound{Key: "write_concurrency", Min: 1, Max: 64}
	// PageSizeBound: Bulk API result page; smaller pages spend one API call each.
	PageSizeBound = IntBound{Key: "page_size", Min: 100, Max: 100000}
	// FlushIntervalBound: the longest a change waits to be written.
	FlushIntervalBound = DurationBound{Key: "flush_interval", Min: time.Millisecond, Max: time.Minute}
	// StatusIntervalBound: how often status is reported; below 100 ms an idle agent spends its time reporting.
	StatusIntervalBound = DurationBound{Key: "status_interval", Min: 100 * time.Millisecond, Max: time.Minute}
	// OutOfBandIntervalBound: one Dataverse request per table per check.
	OutOfBandIntervalBound = DurationBound{Key: "out_of_band_interval", Min: time.Second, Max: 24 * time.Hour, Off: true}
	// ReconcileIntervalBound: a reconciliation reads both sides in full.
	ReconcileIntervalBound = DurationBound{Key: "reconcile_interval", Min: time.Minute, Max: 30 * 24 * time.Hour, Off: true}
	// LeaseTTLBound: how long an agent's lease lives without a heartbeat (crmsync serve --lease-ttl).
	LeaseTTLBound = DurationBound{Key: "lease_ttl", Min: 2 * time.Second, Max: 10 * time.Minute}
)

// IntBound is the accepted range of an integer setting; 0 takes the default.
type IntBound struct {
	Key      string
	Min, Max int
}

// Check refuses a value outside the range (0 passes: the default).
func (b IntBound) Check(field string, v int) *FieldError {
	if v != 0 && (v < b.Min || v > b.Max) {
		return Invalid(field, "%s is %d; it must be between %d and %d (0 takes the default)", field, v, b.Min, b.Max)
	}
	return nil
}

// DurationBound is the accepted range of a duration setting; 0 takes the default and, when Off is set, a
// negative value turns the setting off.
type DurationBound struct {
	Key      string
	Min, Max time.Duration
	Off      bool
}

// Check refuses a duration outside the range.
func (b DurationBound) Check(field string, d time.Duration) *FieldError {
	switch {
	case d == 0, d < 0 && b.Off:
		return nil
	case d < 0:
		return Invalid(field, "%s is %s; it must be between %s and %s (0 takes the default)", field, d, b.Min, b.Max)
	case d < b.Min || d > b.Max:
		off := ""
		if b.Off {
			off = ", a negative value turns it off"
		}
		return Invalid(field, "%s is %s; it must be between %s and %s (0 takes the default%s)", field, d, b.Min, b.Max, off)
	}
	return nil
}

// Describe is the range in words, for schema descriptions.
func (b DurationBound) Describe() string { return fmt.Sprintf("from %s to %s", b.Min, b.Max) }

// Validate checks every tuning value against the table of bounds; the error (a *FieldError) names the field
// as "tuning.<key>".
func (t *Tuning) Validate() error {
	if err := t.validate(); err != nil {
		return err
	}
	return nil
}

func (t *Tuning) validate() *FieldError {
	for _, c := range []struct {
		b IntBound
		v int
	}{{BatchSizeBound, t.BatchSize}, {WriteConcurrencyBound, t.WriteConcurrency}, {PageSizeBound, t.PageSize}} {
		if err := c.b.Check("tuning."+c.b.Key, c.v); err != nil {
			return err
		}
	}
	for _, c := range []struct {
		b DurationBound
		v Duration
	}{{FlushIntervalBound, t.FlushInterval}, {StatusIntervalBound, t.StatusInterval},
		{OutOfBandIntervalBound, t.OutOfBandInterval}, {ReconcileIntervalBound, t.ReconcileInterval}} {
		if err := c.b.Check("tuning."+c.b.Key, time.Duration(c.v)); err != nil {
			return err
		}
	}
	return nil
}
