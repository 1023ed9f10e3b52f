package plansummary

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

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
