package plansummary

import (
	"context"
	"sort"

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
	// applicationUsers is how many Dataverse application users the connector writes with after the plan
	// (0 when the plan does not say: then one).
	applicationUsers int
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

// Estimate is the size, API cost and duration of a load, as the control plane counts it.
type Estimate struct {
	Records           *int64 `json:"records,omitempty"`
	SalesforceCalls   int64  `json:"salesforce_api_calls,omitempty"`
	DataverseRequests int64  `json:"dataverse_requests,omitempty"`
	// Seconds is the expected duration at the service-protection budget of ApplicationUsers Dataverse
	// application users (api.LoadCost).
	Seconds          int64 `json:"seconds,omitempty"`
	ApplicationUsers int   `json:"application_users,omitempty"`
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
				l := api.LoadCost(n, c.applicationUsers)
				e.Records, e.SalesforceCalls, e.DataverseRequests, e.Seconds, e.ApplicationUsers = &n, l.SalesforceCalls, l.DataverseRequests, l.Seconds, l.ApplicationUsers
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
