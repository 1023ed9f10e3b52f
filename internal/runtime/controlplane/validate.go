package controlplane

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/policy"
)

// Input limits. Every string the API accepts has one; the body cap bounds the rest. A connector's own limits
// are api.Max*, shared with the agent's configuration.
const (
	maxName        = api.MaxName
	maxHost        = api.MaxHost
	maxTableName   = api.MaxTableName
	maxColumnName  = 100
	maxColumns     = 500
	maxAgentID     = 128
	maxRecordID    = 18
	maxMessage     = 4096
	maxPayload     = 64 << 10
	maxBatch       = 1000
	maxStatusTable = 1000
)

var (
	sfNamePattern = api.ObjectNamePattern
	dvNamePattern = api.LogicalNamePattern
	agentIDRe     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]*$`)
	recordIDRe    = regexp.MustCompile(`^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$`)
)

// refused turns a check's refusal into the API's 400 invalid_argument (nil stays nil).
func refused(fe *api.FieldError) error {
	if fe == nil {
		return nil
	}
	return invalid(fe.Field, "%s", fe.Message)
}

// text checks a free-form string: within max bytes, valid UTF-8, no control characters.
func text(field, v string, maxLen int, required bool) error {
	return refused(api.CheckText(field, v, maxLen, required))
}

func matches(field, v string, maxLen int, re *regexp.Regexp, required bool, what string) error {
	return refused(api.CheckMatch(field, v, maxLen, re, required, what))
}

func truncate(s string, n int) string { return api.Truncate(s, n) }

// validateConnector checks a connector spec (api.ConnectorSpec.Validate, shared with the agent's
// configuration), then the destination and reference policies: a host the operator did not allow, or a
// reference outside what the operator allowed, is refused here, at declaration, naming the field. stored
// lists the secrets already stored (on update), which satisfy a credential left empty.
func (s *Server) validateConnector(spec api.ConnectorSpec, stored []string) error {
	var fe *api.FieldError
	if err := spec.Validate(stored); errors.As(err, &fe) {
		return refused(fe)
	} else if err != nil {
		return err
	}
	return refused(policy.CheckConnector(spec, s.cfg.Hosts, s.cfg.Refs))
}

// secretChanges derives the store's secret changes from a spec: an inline value is stored; a secret now given
// by reference (*_env or *_file) drops the stored inline value, which would otherwise take precedence in the
// agent; a secret left empty everywhere keeps what is stored. stored (the names stored before an update) lets
// it drop the secret of an additional application user no longer listed.
func secretChanges(spec api.ConnectorSpec, stored []string) store.Secrets {
	out := store.Secrets{}
	type secret struct{ name, inline, env, file string }
	list := []secret{
		{store.SecretSalesforceClientSecret, spec.Salesforce.ClientSecret, spec.Salesforce.ClientSecretEnv, spec.Salesforce.ClientSecretFile},
		{store.SecretSalesforcePrivateKey, spec.Salesforce.PrivateKey, spec.Salesforce.PrivateKeyEnv, spec.Salesforce.PrivateKeyFile},
		{store.SecretDataverseClientSecret, spec.Dataverse.ClientSecret, spec.Dataverse.ClientSecretEnv, spec.Dataverse.ClientSecretFile},
	}
	listed := map[string]bool{}
	for _, u := range spec.Dataverse.AdditionalUsers {
		list = append(list, secret{u.SecretName(), u.ClientSecret, u.ClientSecretEnv, u.ClientSecretFile})
		listed[u.SecretName()] = true
	}
	for _, name := range stored {
		if strings.HasPrefix(name, api.SecretDataverseAdditionalUserPrefix) && !listed[name] {
			out[name] = ""
		}
	}
	for _, s := range list {
		switch {
		case s.inline != "":
			out[s.name] = s.inline
		case s.env != "" || s.file != "":
			out[s.name] = ""
		}
	}
	return out
}

// validateMappingNames checks a mapping spec's names and sizes; the mapping rules themselves are
// mapping.Check's.
func validateMappingNames(spec mapping.TableConfig) error {
	if err := matches("source_table", spec.SourceTable, maxTableName, sfNamePattern, true, "a Salesforce object API name such as Contact"); err != nil {
		return err
	}
	if err := matches("destination_table", spec.DestinationTable, maxTableName, dvNamePattern, false, "a Dataverse table logical name such as contact"); err != nil {
		return err
	}
	if len(spec.Columns) > maxColumns {
		return invalid("columns", "columns has %d entries; the limit is %d", len(spec.Columns), maxColumns)
	}
	dests := slices.Sorted(maps.Keys(spec.Columns))
	for _, d := range dests {
		if err := matches("columns", d, maxColumnName, dvNamePattern, true, "a Dataverse column logical name"); err != nil {
			return invalid("columns."+truncate(d, maxColumnName), "column %q is not a Dataverse column logical name", truncate(d, maxColumnName))
		}
		if err := matches("columns."+d+".source", spec.Columns[d].Source, maxColumnName, sfNamePattern, true, "a Salesforce field API name"); err != nil {
			return err
		}
	}
	if len(spec.ExcludeColumns) > maxColumns {
		return invalid("exclude_columns", "exclude_columns has %d entries; the limit is %d", len(spec.ExcludeColumns), maxColumns)
	}
	for i, c := range spec.ExcludeColumns {
		if err := matches(fmt.Sprintf("exclude_columns[%d]", i), c, maxColumnName, dvNamePattern, true, "a Dataverse column logical name"); err != nil {
			return err
		}
	}
	return text("delete_behaviour", spec.DeleteBehaviour, 32, false)
}

func validateTable(field, v string) error {
	return matches(field, v, maxTableName, sfNamePattern, true, "a Salesforce object API name")
}

func validateRecordID(field, v string) error {
	return matches(field, v, maxRecordID, recordIDRe, true, "a 15- or 18-character Salesforce Id")
}

// clip shortens agent-reported text to the message limit: a long error message should not make an agent's
// report bounce.
func clip(s string) string { return truncate(s, maxMessage) }

// sanitizeStatus bounds what an agent reports.
func sanitizeStatus(st *api.Status) error {
	if len(st.Tables) > maxStatusTable {
		return invalid("status.tables", "status.tables has %d entries; the limit is %d", len(st.Tables), maxStatusTable)
	}
	if err := text("status.state", st.State, 32, false); err != nil {
		return err
	}
	st.Reason = clip(st.Reason)
	for i := range st.Tables {
		t := &st.Tables[i]
		if err := validateTable(fmt.Sprintf("status.tables[%d].table", i), t.Table); err != nil {
			return err
		}
		if err := text(fmt.Sprintf("status.tables[%d].destination", i), t.Destination, maxTableName, false); err != nil {
			return err
		}
		if err := text(fmt.Sprintf("status.tables[%d].phase", i), t.Phase, 32, false); err != nil {
			return err
		}
		t.Reason, t.LastError = clip(t.Reason), clip(t.LastError)
		if err := validateHistogram(fmt.Sprintf("status.tables[%d].latency_histogram", i), t.LatencyHistogram); err != nil {
			return err
		}
		if len(t.Recoveries) > 100 {
			t.Recoveries = t.Recoveries[len(t.Recoveries)-100:]
		}
		for j := range t.Recoveries {
			t.Recoveries[j] = clip(t.Recoveries[j])
		}
	}
	if len(st.Calls) > 200 {
		return invalid("status.calls", "status.calls has %d entries; the limit is 200", len(st.Calls))
	}
	for k := range st.Calls {
		if err := text("status.calls", k, 128, true); err != nil {
			return err
		}
	}
	return nil
}

// validateHistogram refuses a histogram whose buckets are not api.LatencyBuckets' or whose counts are
// negative: the control plane adds agents' histograms bucket by bucket.
func validateHistogram(field string, h *api.Histogram) error {
	if h == nil {
		return nil
	}
	if len(h.Counts) != len(api.LatencyBuckets)+1 {
		return invalid(field+".counts", "%s.counts has %d entries; want %d (the buckets of api.LatencyBuckets and +Inf)", field, len(h.Counts), len(api.LatencyBuckets)+1)
	}
	var n int64
	for _, c := range h.Counts {
		if c < 0 {
			return invalid(field+".counts", "%s.counts must not be negative", field)
		}
		n += c
	}
	if h.Count != n || h.Sum < 0 || math.IsNaN(h.Sum) || math.IsInf(h.Sum, 0) {
		return invalid(field, "%s: count %d must be the sum of the counts (%d) and sum a non-negative number", field, h.Count, n)
	}
	return nil
}

func validateDeadLetter(field string, d *api.DeadLetter) error {
	if err := validateTable(field+".table", d.Table); err != nil {
		return err
	}
	if err := validateRecordID(field+".record_id", d.RecordID); err != nil {
		return err
	}
	if err := text(field+".operation", d.Operation, 32, true); err != nil {
		return err
	}
	if err := text(field+".code", d.Code, 128, true); err != nil {
		return err
	}
	// The payload is shown to people, never replayed (a retry re-reads the record), so a long one is cut
	// rather than refused: refusing would lose the dead letter.
	if len(d.Payload) > maxPayload {
		d.Payload = truncate(d.Payload, maxPayload) + " (truncated)"
	}
	if d.Attempts < 0 {
		return invalid(field+".attempts", "%s.attempts must not be negative", field)
	}
	d.Reason = clip(d.Reason)
	return nil
}
