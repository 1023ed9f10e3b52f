package plansummary

import (
	"fmt"
	"slices"
	"strings"
)

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
