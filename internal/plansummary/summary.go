package plansummary

import (
	"context"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
)

// Summary is what a plan changes in crmsync, per connector and table, with the consequences for the data.
// Everything in it is sorted and free of timestamps, so the same plan always gives the same summary.
type Summary struct {
	// Headline is one line: the change that matters most, with its cost ("2 columns added to contact: re-sync
	// of ~20,000 records"), or that nothing changes.
	Headline   string       `json:"headline"`
	Connectors []*Connector `json:"connectors"`
	// Drift is what the refresh found changed outside Terraform; the plan sets it back.
	Drift []Drift `json:"drift"`
	// Notes qualify the summary as a whole (record counts not asked for, resources the summary cannot place).
	Notes []string `json:"notes,omitempty"`
	// Other counts the changes to resources of other providers, which the summary does not describe.
	Other int `json:"other_changes"`
}

// Connector is one crmsync_connector and what the plan does to it and to its tables and activation.
type Connector struct {
	Address string `json:"address"`
	Name    string `json:"name"`
	ID      string `json:"id,omitempty"`
	// Action is create, update, replace, delete or none (its tables or activation change).
	Action     string      `json:"action"`
	Changes    []Item      `json:"changes,omitempty"`
	Tables     []*Table    `json:"tables,omitempty"`
	Activation *Activation `json:"activation,omitempty"`
}

// Item is one change and its consequence.
type Item struct {
	// Kind is one of: created, destroyed, replaced, renamed, team, secret_rotated, secret_set, secret_changed,
	// secret_removed, credential_reference, setting, tuning, delete_behaviour, repair_out_of_band_edits,
	// backup_before_first_sync, wait_for, health, table_added, table_removed.
	Kind      string `json:"kind"`
	Attribute string `json:"attribute,omitempty"`
	Before    string `json:"before,omitempty"`
	After     string `json:"after,omitempty"`
	// Text says what the change means for the data, in words.
	Text string `json:"text"`
}

// Table is one crmsync_table_mapping.
type Table struct {
	Address     string `json:"address"`
	Source      string `json:"source_table"`
	Destination string `json:"destination_table"`
	Action      string `json:"action"`
	// Added are destination columns the plan adds, Refed those it feeds from another source or with another
	// truncate setting (both re-sync the table), Removed those it stops writing.
	Added   []Column `json:"columns_added,omitempty"`
	Refed   []Column `json:"columns_changed,omitempty"`
	Removed []Column `json:"columns_removed,omitempty"`
	Changes []Item   `json:"changes,omitempty"`
	// Estimate is the cost of the load or re-sync the change triggers (nil when it triggers none).
	Estimate *Estimate `json:"estimate,omitempty"`
	// resync is the kind of load: "initial load" or "re-sync".
	resync string
	// config is the planned mapping, for the estimator.
	config      mapping.TableConfig
	connectorID string
}

// Column is one destination column of a table change.
type Column struct {
	Destination string `json:"destination"`
	Source      string `json:"source,omitempty"`
	// BeforeSource is the source that fed the column before (changed columns).
	BeforeSource    string `json:"before_source,omitempty"`
	SourceType      string `json:"source_type,omitempty"`
	BeforeType      string `json:"before_source_type,omitempty"`
	DestinationType string `json:"destination_type,omitempty"`
	Truncate        bool   `json:"truncate,omitempty"`
	// Note is the consequence of the column's types and lengths, when there is one.
	Note string `json:"note,omitempty"`
}

// Estimate is the size and API cost of a load, as the control plane counts it.
type Estimate struct {
	Records           *int64 `json:"records,omitempty"`
	SalesforceCalls   int64  `json:"salesforce_api_calls,omitempty"`
	DataverseRequests int64  `json:"dataverse_requests,omitempty"`
	// Unknown says why the records were not counted.
	Unknown string `json:"unknown,omitempty"`
}

// Activation is one crmsync_activation.
type Activation struct {
	Address string `json:"address"`
	Action  string `json:"action"`
	Changes []Item `json:"changes,omitempty"`
}

// Drift is one resource the refresh found changed outside Terraform.
type Drift struct {
	Address    string   `json:"address"`
	Action     string   `json:"action"`
	Attributes []string `json:"attributes,omitempty"`
	Text       string   `json:"text"`
}

// Estimator counts the records a (re-)sync of a table would copy: the control plane's live validation.
type Estimator interface {
	EstimateRecords(ctx context.Context, connectorID string, table mapping.TableConfig) (int64, error)
}

// Options tune Summarize.
type Options struct {
	// Estimator counts records; nil leaves the estimates unknown, with NoEstimator as the reason.
	Estimator Estimator
	// NoEstimator says why there is no estimator (shown once in the notes).
	NoEstimator string
}

// Summarize reads a JSON plan (`terraform show -json PLANFILE` or `tofu show -json PLANFILE`) and summarizes
// its crmsync changes. It returns an error wrapping ErrNotAPlan for anything that is not a JSON plan.
func Summarize(ctx context.Context, planJSON []byte, opts Options) (*Summary, error) {
	p, err := parsePlan(planJSON)
	if err != nil {
		return nil, err
	}
	b := builder{plan: p, refs: p.references(), byAddr: map[string]*Connector{}, byID: map[string]*Connector{}}
	b.connectors()
	b.tablesAndActivations()
	b.drift()
	s := b.finish()
	estimate(ctx, s, opts)
	s.Headline = headline(s)
	return s, nil
}

type builder struct {
	plan   *plan
	refs   map[string]string
	byAddr map[string]*Connector
	byID   map[string]*Connector
	list   []*Connector
	drifts []Drift
	notes  []string
	other  int
}

// connectors reads every crmsync_connector change, including those without a change (their tables may change).
func (b *builder) connectors() {
	for _, rc := range b.plan.ResourceChanges {
		if rc.Type != typeConnector || rc.Mode == "data" {
			continue
		}
		ch := rc.Change
		vals := ch.After
		if vals == nil {
			vals = ch.Before
		}
		c := &Connector{Address: rc.Address, Name: str(vals, "name"), ID: str(ch.Before, "id"), Action: string(actionOf(ch.Actions))}
		if c.ID == "" {
			c.ID = str(ch.After, "id")
		}
		if c.Name == "" {
			c.Name = str(ch.Before, "name")
		}
		c.Changes = connectorChanges(rc)
		b.add(c)
	}
}

func (b *builder) add(c *Connector) {
	if _, dup := b.byAddr[c.Address]; dup {
		return
	}
	b.byAddr[c.Address] = c
	if c.ID != "" {
		b.byID[c.ID] = c
	}
	b.list = append(b.list, c)
}

// owner finds the connector of a table mapping or activation: by the connector ID it holds, else by the
// connector its configuration refers to, else a placeholder for a connector outside this configuration.
func (b *builder) owner(rc resourceChange) *Connector {
	id := str(rc.Change.After, "connector_id")
	if id == "" {
		id = str(rc.Change.Before, "connector_id")
	}
	if c := b.byID[id]; c != nil && id != "" {
		return c
	}
	if ref, ok := b.refs[configAddress(rc.Address)]; ok {
		for _, c := range b.list {
			if configAddress(c.Address) == ref {
				return c
			}
		}
	}
	key := "connector " + id
	if id == "" {
		key = "an unknown connector"
	}
	if c := b.byAddr[key]; c != nil {
		return c
	}
	c := &Connector{Address: key, Name: id, ID: id, Action: string(actNone)}
	b.add(c)
	return c
}

func (b *builder) tablesAndActivations() {
	for _, rc := range b.plan.ResourceChanges {
		if rc.Mode == "data" {
			continue
		}
		act := actionOf(rc.Change.Actions)
		switch rc.Type {
		case typeMapping:
			if t := tableChange(rc); t != nil {
				c := b.owner(rc)
				t.connectorID = c.ID
				c.Tables = append(c.Tables, t)
			}
		case typeActivation:
			if a := activationChange(rc); a != nil {
				c := b.owner(rc)
				if c.Action == string(actDelete) && a.Action == string(actDelete) {
					a.Changes = []Item{{Kind: "destroyed", Text: "The sync stops: the agent is stopped before the connector is deleted."}}
				}
				c.Activation = a
			}
		case typeConnector:
		default:
			if act != actNone && act != actRead {
				b.other++
			}
		}
	}
}

// finish drops connectors where nothing changes and sorts everything.
func (b *builder) finish() *Summary {
	s := &Summary{Drift: b.drifts, Notes: b.notes, Other: b.other}
	for _, c := range b.list {
		if c.Action == string(actNone) && len(c.Changes) == 0 && len(c.Tables) == 0 && c.Activation == nil {
			continue
		}
		sort.Slice(c.Tables, func(i, j int) bool { return c.Tables[i].Address < c.Tables[j].Address })
		s.Connectors = append(s.Connectors, c)
	}
	sort.Slice(s.Connectors, func(i, j int) bool { return s.Connectors[i].Address < s.Connectors[j].Address })
	sort.Slice(s.Drift, func(i, j int) bool { return s.Drift[i].Address < s.Drift[j].Address })
	if s.Connectors == nil {
		s.Connectors = []*Connector{}
	}
	if s.Drift == nil {
		s.Drift = []Drift{}
	}
	return s
}

// secretArgs are the connector's secrets: block, argument, and the name a reviewer knows it by.
var secretArgs = []struct{ block, arg, label string }{
	{"salesforce", "client_secret", "Salesforce client secret"},
	{"salesforce", "private_key", "Salesforce private key"},
	{"dataverse", "client_secret", "Dataverse client secret"},
}

// connectorSettings are the connector's other arguments, with what a change of each does.
var connectorSettings = map[string]string{
	"salesforce.instance_url":     "the agent signs in and calls the API at the new URL",
	"salesforce.api_version":      "the agent calls the new Salesforce API version",
	"salesforce.pubsub_addr":      "the agent subscribes to Change Data Capture at the new address, resuming from its stored position",
	"salesforce.pubsub_plaintext": "the agent connects to the Pub/Sub API with or without TLS as set",
	"salesforce.auth":             "the agent signs in to Salesforce with the other OAuth flow",
	"salesforce.client_id":        "the agent signs in with another connected app",
	"salesforce.username":         "the agent signs in as another Salesforce user, whose access decides what it can read",
	"salesforce.ca_file":          "the agent trusts another CA bundle for Salesforce",
	"dataverse.authority_url":     "the agent gets its Dataverse tokens from another authority",
	"dataverse.tenant_id":         "the agent signs in to another Microsoft Entra ID tenant",
	"dataverse.client_id":         "the agent signs in as another application user, whose privileges decide what it can write",
	"dataverse.ca_file":           "the agent trusts another CA bundle for Dataverse",
}

func connectorChanges(rc resourceChange) []Item {
	ch := rc.Change
	act := actionOf(ch.Actions)
	name := str(ch.After, "name")
	if name == "" {
		name = str(ch.Before, "name")
	}
	switch act {
	case actCreate:
		return []Item{{Kind: "created", Text: fmt.Sprintf("New connector %s: from the Salesforce org at %s into the Dataverse environment %s, new rows owned by team %s. "+
			"Nothing is synced until its crmsync_activation is applied.", name, orUnknown(str(ch.After, "salesforce", "login_url"), ch.AfterUnknown, "salesforce", "login_url"),
			orUnknown(str(ch.After, "dataverse", "environment_url"), ch.AfterUnknown, "dataverse", "environment_url"), orUnknown(str(ch.After, "team_id"), ch.AfterUnknown, "team_id"))}}
	case actDelete:
		return []Item{{Kind: "destroyed", Text: "Connector deleted: the control plane deactivates it and stops its agent. The rows already synced stay in Dataverse " +
			"(nothing is deleted there). Its mappings, checkpoints, change-stream positions, dead letters and backup records are deleted with it: " +
			"the backup files stay on the control plane's host, but `crmsync backup list` and `crmsync backup restore` no longer know them, so restore first if you may need to roll back."}}
	case actNone, actRead:
		return nil
	}
	var items []Item
	if act == actReplace {
		reasons := replacePaths(ch.ReplacePaths)
		why := "a changed argument that forces a new connector"
		if len(reasons) > 0 {
			why = strings.Join(reasons, ", ")
		}
		items = append(items, Item{Kind: "replaced", Attribute: strings.Join(reasons, ","), Text: fmt.Sprintf("Connector replaced (%s): another login host "+
			"is another Salesforce org, another environment URL another Dataverse database. The old connector is deleted (its checkpoints and change-stream "+
			"positions with it; its rows stay in the old environment) and the new one starts with a full initial load once activated.", why)})
	}
	before, after := ch.Before, ch.After
	if b, a := str(before, "name"), str(after, "name"); b != a && !marked(ch.AfterUnknown, "name") {
		items = append(items, Item{Kind: "renamed", Attribute: "name", Before: b, After: a,
			Text: fmt.Sprintf("Renamed from %s to %s (crmsync status and the control plane show the new name; nothing is re-synced).", b, a)})
	}
	if b, a := str(before, "team_id"), str(after, "team_id"); b != a && act == actUpdate {
		text := fmt.Sprintf("The team that owns the synced rows changes from %s to %s: rows the agent writes from now on are owned by team %s, "+
			"which needs create, read, write, append and assign privileges on every destination table (and append-to on account); for an active connector "+
			"they are checked at plan and when the change is applied, otherwise at activation. "+
			"The agent re-syncs every table to reassign the rows already in Dataverse.", b, orUnknown(a, ch.AfterUnknown, "team_id"), orUnknown(a, ch.AfterUnknown, "team_id"))
		items = append(items, Item{Kind: "team", Attribute: "team_id", Before: b, After: orUnknown(a, ch.AfterUnknown, "team_id"), Text: text})
	}
	items = append(items, secretChanges(ch)...)
	items = append(items, settingChanges(ch)...)
	items = append(items, tuningChanges(ch)...)
	return items
}

// secretChanges describes the secrets a connector update rotates, sets, changes or removes, without ever showing a
// secret value: write-only versions, inline values (sensitive, never printed) and references.
func secretChanges(ch change) []Item {
	var items []Item
	for _, s := range secretArgs {
		attr := s.block + "." + s.arg
		bv, av := scalar(at(ch.Before, s.block, s.arg+"_wo_version")), scalar(at(ch.After, s.block, s.arg+"_wo_version"))
		switch {
		case av != "" && bv != "" && av != bv:
			items = append(items, Item{Kind: "secret_rotated", Attribute: attr + "_wo", Before: bv, After: av,
				Text: fmt.Sprintf("%s rotated (%s_wo_version %s → %s): the new value, write-only, goes to the control plane with this apply and the agent is redeployed with it; it is in neither the plan nor the state.", s.label, s.arg, bv, av)})
		case av != "" && bv == "":
			items = append(items, Item{Kind: "secret_set", Attribute: attr + "_wo", After: av,
				Text: fmt.Sprintf("%s set write-only (%s_wo, version %s): the value goes to the control plane with this apply and is in neither the plan nor the state.", s.label, s.arg, av)})
		}
		inlineBefore, inlineAfter := at(ch.Before, s.block, s.arg), at(ch.After, s.block, s.arg)
		unknown := marked(ch.AfterUnknown, s.block, s.arg)
		switch {
		case inlineAfter != nil && inlineBefore == nil || unknown && inlineBefore == nil:
			items = append(items, Item{Kind: "secret_set", Attribute: attr,
				Text: fmt.Sprintf("%s set inline (%s): stored encrypted by the control plane, and in Terraform state; prefer %s_wo or a reference (%s_env, %s_file).", s.label, attr, s.arg, s.arg, s.arg)})
		case inlineAfter == nil && inlineBefore != nil && !unknown:
			items = append(items, Item{Kind: "secret_removed", Attribute: attr,
				Text: fmt.Sprintf("Inline %s removed from the configuration (and from Terraform state).", s.label)})
		case unknown || !reflect.DeepEqual(inlineBefore, inlineAfter):
			items = append(items, Item{Kind: "secret_changed", Attribute: attr,
				Text: fmt.Sprintf("%s changed inline (%s; the value is sensitive and not shown): the agent is redeployed with it.", s.label, attr)})
		}
		for _, form := range []string{"_env", "_file"} {
			b, a := str(ch.Before, s.block, s.arg+form), str(ch.After, s.block, s.arg+form)
			if b == a || marked(ch.BeforeSensitive, s.block, s.arg+form) || marked(ch.AfterSensitive, s.block, s.arg+form) {
				continue
			}
			where := "an environment variable"
			if form == "_file" {
				where = "a file"
			}
			var text string
			switch {
			case a == "":
				text = fmt.Sprintf("%s no longer read from %s %s.", s.label, where, b)
			case b == "":
				text = fmt.Sprintf("%s now read from %s on the agent's host: %s (it must be set there before the agent restarts).", s.label, where, a)
			default:
				text = fmt.Sprintf("%s now read from %s instead of %s on the agent's host.", s.label, a, b)
			}
			items = append(items, Item{Kind: "credential_reference", Attribute: attr + form, Before: b, After: a, Text: text})
		}
	}
	return items
}

func settingChanges(ch change) []Item {
	names := slices.Sorted(maps.Keys(connectorSettings))
	var items []Item
	for _, n := range names {
		block, arg, _ := strings.Cut(n, ".")
		if marked(ch.BeforeSensitive, block, arg) || marked(ch.AfterSensitive, block, arg) {
			continue
		}
		b, a := scalar(at(ch.Before, block, arg)), scalar(at(ch.After, block, arg))
		if marked(ch.AfterUnknown, block, arg) {
			a = "(known after apply)"
		}
		if b == a {
			continue
		}
		items = append(items, Item{Kind: "setting", Attribute: n, Before: b, After: a,
			Text: fmt.Sprintf("%s: %s → %s: %s (the agent is redeployed at the new revision).", n, orNone(b), orNone(a), connectorSettings[n])})
	}
	return items
}

func tuningChanges(ch change) []Item {
	bt, at_ := at(ch.Before, "tuning"), at(ch.After, "tuning")
	var items []Item
	for _, k := range changedKeys(bt, at_) {
		b, a := scalar(at(bt, k)), scalar(at(at_, k))
		items = append(items, Item{Kind: "tuning", Attribute: "tuning." + k, Before: b, After: a,
			Text: fmt.Sprintf("tuning.%s: %s → %s (the agent is redeployed with it).", k, orDefault(b), orDefault(a))})
	}
	return items
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func orDefault(s string) string {
	if s == "" {
		return "(default)"
	}
	return s
}

// orUnknown returns s, or "(known after apply)" when the plan marks the value unknown.
func orUnknown(s string, unknown any, path ...string) string {
	if s == "" && marked(unknown, path...) {
		return "(known after apply)"
	}
	return s
}

// tableChange describes a crmsync_table_mapping change; nil when nothing changes.
func tableChange(rc resourceChange) *Table {
	ch := rc.Change
	act := actionOf(ch.Actions)
	if act == actNone || act == actRead {
		return nil
	}
	vals := ch.After
	if act == actDelete {
		vals = ch.Before
	}
	t := &Table{Address: rc.Address, Source: str(vals, "source_table"), Destination: str(vals, "destination_table"), Action: string(act)}
	if t.Destination == "" {
		t.Destination = str(ch.Before, "destination_table")
	}
	if t.Destination == "" && t.Source != "" {
		t.Destination = mapping.TableConfig{SourceTable: t.Source}.Destination()
	}
	t.config = tableConfig(ch.After)
	before, after := effective(ch.Before, truncates(ch.Before)), effective(ch.After, truncates(ch.After))
	switch act {
	case actCreate:
		t.Added = columnsOf(after, t.Source, t.Destination)
		t.resync = "initial load"
		t.Changes = append(t.Changes, Item{Kind: "table_added", Text: fmt.Sprintf("Salesforce %s is synced into Dataverse %s: once the connector is active, "+
			"an initial load copies its existing records, then Change Data Capture keeps them in sync.", t.Source, t.Destination)})
		return t
	case actDelete:
		t.Changes = append(t.Changes, Item{Kind: "table_removed", Text: fmt.Sprintf("Salesforce %s is no longer synced: its rows stay in Dataverse %s and are no longer "+
			"updated (nothing is deleted).", t.Source, t.Destination)})
		return t
	case actReplace:
		reasons := replacePaths(ch.ReplacePaths)
		t.Added = columnsOf(after, t.Source, t.Destination)
		t.resync = "initial load"
		t.Changes = append(t.Changes, Item{Kind: "replaced", Attribute: strings.Join(reasons, ","), Text: fmt.Sprintf("Mapping replaced (%s): the old table mapping is deleted "+
			"(rows already written stay in Dataverse %s, no longer updated) and the new one starts with a full initial load of Salesforce %s into Dataverse %s.",
			strings.Join(reasons, ", "), str(ch.Before, "destination_table"), t.Source, t.Destination)})
		return t
	}
	if marked(ch.AfterUnknown, "effective_columns") || after == nil {
		t.Changes = append(t.Changes, Item{Kind: "setting", Attribute: "effective_columns",
			Text: "The effective columns are known only after apply (the control plane was not reachable during the plan): see the plan's columns and exclude_columns."})
	} else {
		t.Added, t.Refed, t.Removed = diffColumns(before, after, t.Source, t.Destination)
	}
	if len(t.Added)+len(t.Refed) > 0 {
		t.resync = "re-sync"
	}
	if b, a := str(ch.Before, "delete_behaviour"), str(ch.After, "delete_behaviour"); b != a && a != "" {
		t.Changes = append(t.Changes, Item{Kind: "delete_behaviour", Attribute: "delete_behaviour", Before: b, After: a,
			Text: fmt.Sprintf("A record deleted in Salesforce now %s the Dataverse row (it %s it before).", deleteVerb(a), deleteVerb(b))})
	}
	if b, a := at(ch.Before, "repair_out_of_band_edits"), at(ch.After, "repair_out_of_band_edits"); !reflect.DeepEqual(b, a) {
		text := "Rows of Dataverse " + t.Destination + " edited by someone other than the agent are rewritten from Salesforce as soon as they are found " +
			"(they are reported either way): make such changes in Salesforce."
		if a != true {
			text = "Rows of Dataverse " + t.Destination + " edited by someone other than the agent are reported but no longer rewritten."
		}
		t.Changes = append(t.Changes, Item{Kind: "repair_out_of_band_edits", Attribute: "repair_out_of_band_edits", Before: scalar(b), After: scalar(a), Text: text})
	}
	if len(t.Added)+len(t.Refed)+len(t.Removed)+len(t.Changes) == 0 {
		return nil
	}
	return t
}

func deleteVerb(b string) string {
	switch b {
	case mapping.DeleteIgnore:
		return "leaves"
	case mapping.DeleteDeactivate:
		return "deactivates"
	}
	return "deletes"
}

// tableConfig converts a planned table mapping to the mapping rules' configuration (for the estimator).
func tableConfig(v any) mapping.TableConfig {
	tc := mapping.TableConfig{SourceTable: str(v, "source_table"), DestinationTable: str(v, "destination_table"), UsePredefined: true,
		DeleteBehaviour: str(v, "delete_behaviour")}
	if b, ok := at(v, "use_predefined_mappings").(bool); ok {
		tc.UsePredefined = b
	}
	if r, ok := at(v, "repair_out_of_band_edits").(bool); ok {
		tc.RepairOutOfBandEdits = r
	}
	for _, dest := range sortedKeys(at(v, "columns")) {
		if tc.Columns == nil {
			tc.Columns = map[string]mapping.ColumnOverride{}
		}
		tr, _ := at(v, "columns", dest, "truncate").(bool)
		tc.Columns[dest] = mapping.ColumnOverride{Source: str(v, "columns", dest, "source"), Truncate: tr}
	}
	if list, ok := at(v, "exclude_columns").([]any); ok {
		for _, x := range list {
			if s, ok := x.(string); ok {
				tc.ExcludeColumns = append(tc.ExcludeColumns, s)
			}
		}
		sort.Strings(tc.ExcludeColumns)
	}
	return tc
}

// effective reads the effective_columns map of a table mapping (destination → column), with the truncate flags
// of its overrides.
func effective(v any, truncate map[string]bool) map[string]Column {
	m, ok := at(v, "effective_columns").(map[string]any)
	if !ok {
		return nil
	}
	out := make(map[string]Column, len(m))
	for dest, c := range m {
		out[dest] = Column{Destination: dest, Source: str(c, "source"), SourceType: str(c, "source_type"), DestinationType: str(c, "destination_type"),
			Truncate: truncate[dest]}
	}
	return out
}

// truncates reads the truncate flags of a table mapping's column overrides.
func truncates(v any) map[string]bool {
	out := map[string]bool{}
	for _, dest := range sortedKeys(at(v, "columns")) {
		if b, ok := at(v, "columns", dest, "truncate").(bool); ok && b {
			out[dest] = true
		}
	}
	return out
}

func columnsOf(cols map[string]Column, source, dest string) []Column {
	out := make([]Column, 0, len(cols))
	for _, c := range cols {
		c.Note = lengthNote(source, dest, c)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	return out
}

// diffColumns compares the effective columns before and after: destinations added, fed differently (another
// source, or truncate turned on or off), removed.
func diffColumns(before, after map[string]Column, source, dest string) (added, refed, removed []Column) {
	for d, a := range after {
		b, ok := before[d]
		switch {
		case !ok:
			a.Note = lengthNote(source, dest, a)
			added = append(added, a)
		case !strings.EqualFold(a.Source, b.Source):
			a.BeforeSource, a.BeforeType = b.Source, b.SourceType
			a.Note = lengthNote(source, dest, a)
			if a.BeforeType != "" && a.SourceType != "" && a.BeforeType != a.SourceType {
				a.Note = strings.TrimSpace(fmt.Sprintf("The source type changes from %s to %s. %s", a.BeforeType, a.SourceType, a.Note))
			}
			refed = append(refed, a)
		case a.Truncate != b.Truncate:
			a.BeforeSource, a.BeforeType = b.Source, b.SourceType
			if a.Truncate {
				a.Note = "Truncate turned on. " + lengthNote(source, dest, a)
			} else {
				a.Note = "Truncate turned off. " + lengthNote(source, dest, a)
			}
			a.Note = strings.TrimSpace(a.Note)
			refed = append(refed, a)
		}
	}
	for d, b := range before {
		if _, ok := after[d]; !ok {
			b.Note = "Its data stays in Dataverse and is no longer updated."
			removed = append(removed, b)
		}
	}
	for _, l := range [][]Column{added, refed, removed} {
		sort.Slice(l, func(i, j int) bool { return l[i].Destination < l[j].Destination })
	}
	return added, refed, removed
}

// lengthNote says what happens to text longer than its destination column, from the built-in catalog of
// standard Salesforce fields and Dataverse columns (custom ones are checked by the plan's live validation).
func lengthNote(sourceTable, destTable string, c Column) string {
	src, dst := mapping.StandardSource(sourceTable), mapping.StandardDestination(destTable)
	if src == nil || dst == nil {
		return ""
	}
	f, ok1 := src.Field(c.Source)
	d, ok2 := dst.Column(c.Destination)
	if !ok1 || !ok2 || d.MaxLength <= 0 || f.Length <= d.MaxLength || (d.AttributeType != "String" && d.AttributeType != "Memo") {
		return ""
	}
	if c.Truncate {
		return fmt.Sprintf("%s holds up to %d characters, %s %d: longer values are cut (truncate = true).", f.Name, f.Length, d.LogicalName, d.MaxLength)
	}
	return fmt.Sprintf("%s holds up to %d characters, %s %d: longer values are dead-lettered unless truncate = true.", f.Name, f.Length, d.LogicalName, d.MaxLength)
}

// activationChange describes a crmsync_activation change; nil when nothing changes.
func activationChange(rc resourceChange) *Activation {
	ch := rc.Change
	act := actionOf(ch.Actions)
	a := &Activation{Address: rc.Address, Action: string(act)}
	switch act {
	case actNone, actRead:
		return nil
	case actCreate, actReplace:
		backup := at(ch.After, "backup_before_first_sync") != false
		text := "The sync starts: "
		if backup {
			text += "the destination tables are backed up first (backup_before_first_sync; `crmsync backup restore` rolls back to it), then "
		}
		text += "the initial load copies every mapped table, then Change Data Capture keeps them in sync."
		if w := str(ch.After, "wait_for"); w != "" {
			text += fmt.Sprintf(" Apply waits for %s.", strings.ReplaceAll(w, "_", " "))
		}
		a.Changes = append(a.Changes, Item{Kind: "created", Text: text})
	case actDelete:
		a.Changes = append(a.Changes, Item{Kind: "destroyed", Text: "The sync stops: the connector is deactivated and its agent stopped. Rows stay in Dataverse; " +
			"checkpoints and backups are kept, so activating it again resumes where it stopped."})
	case actUpdate:
		for _, k := range changedKeys(ch.Before, ch.After) {
			b, af := scalar(at(ch.Before, k)), scalar(at(ch.After, k))
			switch k {
			case "health":
				a.Changes = append(a.Changes, Item{Kind: "health", Attribute: k, Before: b, After: af,
					Text: fmt.Sprintf("The agent is not healthy (%s): apply re-runs the preflight checks and redeploys it.", b)})
			case "wait_for":
				a.Changes = append(a.Changes, Item{Kind: "wait_for", Attribute: k, Before: b, After: af,
					Text: fmt.Sprintf("Apply now waits for %s (was %s).", orNone(af), orNone(b))})
			case "backup_before_first_sync":
				a.Changes = append(a.Changes, Item{Kind: "backup_before_first_sync", Attribute: k, Before: b, After: af,
					Text: "Only the first activation backs up: the change matters if the connector is activated again from scratch."})
			}
		}
		if len(a.Changes) == 0 {
			return nil
		}
	}
	return a
}

// statusAttributes are computed attributes that report progress rather than configuration: they move on their
// own (an agent rolling to a new revision, a backup completing), which is not drift.
var statusAttributes = map[string]map[string]bool{
	typeActivation: {"deployed_revision": true, "backup": true, "preflight": true},
}

// drift describes the crmsync resources the refresh found changed outside Terraform.
func (b *builder) drift() {
	for _, rc := range b.plan.ResourceDrift {
		if rc.Mode == "data" || !strings.HasPrefix(rc.Type, "crmsync_") {
			continue
		}
		act := actionOf(rc.Change.Actions)
		d := Drift{Address: rc.Address, Action: string(act)}
		if act == actDelete {
			switch rc.Type {
			case typeActivation:
				d.Text = "Deactivated outside Terraform: this apply activates the connector again (preflight checks, then the agent resumes from its checkpoints)."
			case typeConnector:
				d.Text = "Deleted outside Terraform: this apply creates a new connector, which needs a full initial load once activated."
			default:
				d.Text = "Deleted outside Terraform: this apply creates it again, and the table is loaded again in full."
			}
			b.drifts = append(b.drifts, d)
			continue
		}
		for _, k := range changedKeys(rc.Change.Before, rc.Change.After) {
			if marked(rc.Change.BeforeSensitive, k) && marked(rc.Change.AfterSensitive, k) || statusAttributes[rc.Type][k] {
				continue
			}
			d.Attributes = append(d.Attributes, k)
		}
		if len(d.Attributes) == 0 {
			continue
		}
		switch {
		case rc.Type == typeActivation && slices.Contains(d.Attributes, "health"):
			d.Text = fmt.Sprintf("The agent is not healthy (health = %s): this apply redeploys it.", str(rc.Change.After, "health"))
		default:
			d.Text = "Changed outside Terraform (through the API or another tool): this apply sets it back to the configuration."
		}
		b.drifts = append(b.drifts, d)
	}
}

// estimate asks the estimator for the record count of every table the plan loads or re-syncs.
func estimate(ctx context.Context, s *Summary, opts Options) {
	noEstimator := false
	for _, c := range s.Connectors {
		for _, t := range c.Tables {
			if t.resync == "" {
				continue
			}
			e := &Estimate{}
			t.Estimate = e
			switch {
			case c.Action == string(actCreate) || c.Action == string(actReplace) || t.connectorID == "":
				e.Unknown = "the connector is created by this apply"
			case opts.Estimator == nil:
				e.Unknown = "not counted"
				noEstimator = true
			default:
				n, err := opts.Estimator.EstimateRecords(ctx, t.connectorID, t.config)
				if err != nil {
					e.Unknown = "the control plane could not count them: " + truncate(err.Error(), 300)
					continue
				}
				e.Records = &n
				e.SalesforceCalls, e.DataverseRequests = api.LoadCost(n)
			}
		}
	}
	if noEstimator {
		why := opts.NoEstimator
		if why == "" {
			why = "no control plane was given"
		}
		s.Notes = append(s.Notes, "Record counts and API costs are not shown: "+why+".")
	}
}
