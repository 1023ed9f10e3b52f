package plansummary

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
)

var english = message.NewPrinter(language.English)

// Limits that keep a summary small enough for a pull-request comment (GitHub takes 65,536 characters).
const (
	// maxColumnRows is the number of column rows shown per table; the rest are counted.
	maxColumnRows = 25
	// maxMarkdown is the size past which the Markdown is cut, with a note saying so.
	maxMarkdown = 60000
	// maxHeadlineParts is the number of changes named in the headline; the rest are counted.
	maxHeadlineParts = 3
)

// headline is the one line that says what matters most: connectors destroyed and replaced first, then the
// tables added and dropped, the column changes, team and secret changes, the connectors created and the
// syncs that start or stop; drift last.
func headline(s *Summary) string {
	var n headlineNews
	for _, c := range s.Connectors {
		n.connector(c)
	}
	parts := append(listPart("destroyed", n.destroyed), listPart("replaced", n.replaced)...)
	parts = append(parts, tableParts(s.Connectors)...)
	parts = append(parts, columnParts(s.Connectors)...)
	if n.teams > 0 {
		parts = append(parts, "synced rows reassigned to another team")
	}
	if n.rotated > 0 {
		parts = append(parts, count(n.rotated, "secret")+" rotated")
	}
	parts = append(parts, listPart("created", n.created)...)
	if len(n.activated) > 0 {
		parts = append(parts, "sync of "+strings.Join(n.activated, ", ")+" starts")
	}
	if len(n.deactivated) > 0 {
		parts = append(parts, "sync of "+strings.Join(n.deactivated, ", ")+" stops")
	}
	if len(parts) == 0 && len(s.Connectors) > 0 {
		parts = append(parts, count(len(s.Connectors), "connector")+" updated")
	}
	if len(s.Drift) > 0 {
		parts = append(parts, fmt.Sprintf("drift in %s set back", count(len(s.Drift), "resource")))
	}
	if len(parts) == 0 {
		return "No crmsync changes."
	}
	if len(parts) > maxHeadlineParts {
		rest := len(parts) - maxHeadlineParts
		parts = append(parts[:maxHeadlineParts], fmt.Sprintf("%s more", count(rest, "change")))
	}
	return capitalize(strings.Join(parts, "; ")) + "."
}

// headlineNews gathers the connector-level news of a plan.
type headlineNews struct {
	destroyed, replaced, created []string
	activated, deactivated       []string
	rotated, teams               int
}

func (n *headlineNews) connector(c *Connector) {
	switch c.Action {
	case string(actDelete):
		n.destroyed = append(n.destroyed, "connector "+c.Name)
	case string(actReplace):
		n.replaced = append(n.replaced, "connector "+c.Name)
	case string(actCreate):
		n.created = append(n.created, "connector "+c.Name)
	}
	for _, it := range c.Changes {
		switch it.Kind {
		case "secret_rotated":
			n.rotated++
		case "team":
			n.teams++
		}
	}
	if a := c.Activation; a != nil {
		switch a.Action {
		case string(actCreate), string(actReplace):
			n.activated = append(n.activated, c.Name)
		case string(actDelete):
			if c.Action != string(actDelete) {
				n.deactivated = append(n.deactivated, c.Name)
			}
		}
	}
}

// tableParts are the tables added to and dropped from existing connectors.
func tableParts(cs []*Connector) []string {
	var parts []string
	for _, c := range cs {
		for _, t := range c.Tables {
			switch t.Action {
			case string(actCreate), string(actReplace):
				if c.Action == string(actCreate) {
					continue // a new connector's tables are its own news
				}
				parts = append(parts, fmt.Sprintf("table %s added: initial load of %s", t.Destination, records(t.Estimate, t.Destination)))
			case string(actDelete):
				if c.Action != string(actDelete) {
					parts = append(parts, fmt.Sprintf("table %s no longer synced", t.Destination))
				}
			}
		}
	}
	return parts
}

// columnParts are the columns added, fed differently and dropped in the tables that change.
func columnParts(cs []*Connector) []string {
	var parts []string
	for _, c := range cs {
		for _, t := range c.Tables {
			if t.Action != string(actUpdate) {
				continue
			}
			if n := len(t.Added) + len(t.Refed); n > 0 {
				verb := "added to"
				switch {
				case len(t.Added) == 0:
					verb = "changed in"
				case len(t.Refed) > 0:
					verb = "added or changed in"
				}
				parts = append(parts, fmt.Sprintf("%s %s %s: re-sync of %s", count(n, "column"), verb, t.Destination, records(t.Estimate, t.Destination)))
			}
			if n := len(t.Removed); n > 0 {
				parts = append(parts, fmt.Sprintf("%s no longer synced in %s", count(n, "column"), t.Destination))
			}
		}
	}
	return parts
}

func listPart(verb string, names []string) []string {
	if len(names) == 0 {
		return nil
	}
	return []string{strings.Join(names, ", ") + " " + verb}
}

// records writes an estimate as "~20,000 records", or says it is not known.
func records(e *Estimate, table string) string {
	if e == nil || e.Records == nil {
		return "every " + table + " record (count not known)"
	}
	return "~" + counted(*e.Records, "record")
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

// counted writes a count with its noun: "1 record", "20,000 records".
func counted(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return thousands(n) + " " + noun + "s"
}

// thousands writes n with thousands separators (20,000).
func thousands(n int64) string { return english.Sprintf("%d", n) }

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// JSON writes the summary as indented JSON (stable: fields in a fixed order, lists sorted).
func (s *Summary) JSON() []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s) // a Summary has only strings, numbers, booleans, slices and pointers to them
	return buf.Bytes()
}

// Markdown writes the summary as a pull-request comment: the headline, then per connector its changes, its
// tables (a row per column added, changed or removed) and its activation, then the drift.
func (s *Summary) Markdown() []byte {
	blocks := []string{"### crmsync plan: " + md(s.Headline)}
	for _, c := range s.Connectors {
		head := fmt.Sprintf("#### Connector %s (`%s`)", code(c.Name), c.Address)
		if c.Action != string(actNone) {
			head += ": " + actionWord(c.Action)
		}
		blocks = append(blocks, head)
		if len(c.Changes) > 0 {
			blocks = append(blocks, bullets(c.Changes))
		}
		for _, t := range c.Tables {
			blocks = append(blocks, tableBlocks(t)...)
		}
		if a := c.Activation; a != nil {
			blocks = append(blocks, fmt.Sprintf("**Activation** (`%s`): %s", a.Address, actionWord(a.Action)))
			if len(a.Changes) > 0 {
				blocks = append(blocks, bullets(a.Changes))
			}
		}
	}
	if len(s.Drift) > 0 {
		blocks = append(blocks, "#### Drift found by refresh")
		var lines []string
		for _, d := range s.Drift {
			attrs := ""
			if len(d.Attributes) > 0 {
				attrs = " (" + codeList(d.Attributes) + ")"
			}
			lines = append(lines, fmt.Sprintf("- `%s`%s: %s", d.Address, attrs, md(d.Text)))
		}
		blocks = append(blocks, strings.Join(lines, "\n"))
	}
	var notes []string
	for _, n := range s.Notes {
		notes = append(notes, "_"+md(n)+"_")
	}
	if s.Other > 0 {
		notes = append(notes, fmt.Sprintf("_%s of other providers not described here._", capitalize(count(s.Other, "resource change"))))
	}
	if len(notes) > 0 {
		blocks = append(blocks, strings.Join(notes, "\n"))
	}
	out := strings.Join(blocks, "\n\n") + "\n"
	if len(out) > maxMarkdown {
		cut := strings.LastIndexByte(out[:maxMarkdown], '\n')
		if cut < 0 {
			cut = maxMarkdown
		}
		out = out[:cut] + "\n\n_The summary is cut here to fit a pull-request comment: `crmsync plan-summary --format json` has all of it._\n"
	}
	return []byte(out)
}

func bullets(items []Item) string {
	lines := make([]string, len(items))
	for i, it := range items {
		lines[i] = "- " + md(it.Text)
	}
	return strings.Join(lines, "\n")
}

// tableBlocks writes a table mapping's change: its heading, its changes, a row per column, the load it triggers.
func tableBlocks(t *Table) []string {
	blocks := []string{fmt.Sprintf("**%s → %s** (`%s`): %s", md(orNone(t.Source)), md(orNone(t.Destination)), t.Address, actionWord(t.Action))}
	if len(t.Changes) > 0 {
		blocks = append(blocks, bullets(t.Changes))
	}
	type row struct{ change, column, source, note string }
	var rows []row
	verb := "added"
	if t.Action != string(actUpdate) {
		verb = "synced"
	}
	for _, c := range t.Added {
		rows = append(rows, row{verb, c.Destination, typed(c.Source, c.SourceType, c.DestinationType), c.Note})
	}
	for _, c := range t.Refed {
		src := typed(c.BeforeSource, c.BeforeType, "") + " → " + typed(c.Source, c.SourceType, c.DestinationType)
		if strings.EqualFold(c.BeforeSource, c.Source) {
			src = typed(c.Source, c.SourceType, c.DestinationType)
		}
		rows = append(rows, row{"changed", c.Destination, src, c.Note})
	}
	for _, c := range t.Removed {
		rows = append(rows, row{"removed", c.Destination, typed(c.Source, "", ""), c.Note})
	}
	if len(rows) > 0 {
		lines := []string{"| change | column | source | note |", "|---|---|---|---|"}
		for i, r := range rows {
			if i == maxColumnRows {
				lines = append(lines, fmt.Sprintf("| … | %s more | | |", count(len(rows)-maxColumnRows, "column")))
				break
			}
			lines = append(lines, fmt.Sprintf("| %s | `%s` | %s | %s |", r.change, cell(r.column), r.source, cell(r.note)))
		}
		blocks = append(blocks, strings.Join(lines, "\n"))
	}
	if e := t.Estimate; e != nil {
		kind := "Re-sync"
		if t.resync == "initial load" || t.Action != string(actUpdate) {
			kind = "Initial load"
		}
		if e.Records != nil {
			pace := api.LoadEstimate{Seconds: e.Seconds, ApplicationUsers: e.ApplicationUsers}.Pace()
			blocks = append(blocks, fmt.Sprintf("%s: ~%s of Salesforce %s (~%s, ~%s), as soon as this is applied; its writes take %s.",
				kind, counted(*e.Records, "record"), md(t.Source), counted(e.SalesforceCalls, "Salesforce API call"), counted(e.DataverseRequests, "Dataverse request"), pace))
		} else {
			blocks = append(blocks, fmt.Sprintf("%s: every record of Salesforce %s (count not known: %s).", kind, md(t.Source), md(e.Unknown)))
		}
	}
	return blocks
}

// typed writes a source field with its types: `Title` (string → String).
func typed(source, sourceType, destType string) string {
	if source == "" {
		return ""
	}
	s := "`" + cell(source) + "`"
	switch {
	case sourceType != "" && destType != "":
		s += " (" + cell(sourceType) + " → " + cell(destType) + ")"
	case sourceType != "":
		s += " (" + cell(sourceType) + ")"
	}
	return s
}

func actionWord(a string) string {
	switch a {
	case string(actCreate):
		return "created"
	case string(actUpdate):
		return "updated"
	case string(actReplace):
		return "replaced"
	case string(actDelete):
		return "destroyed"
	}
	return "unchanged"
}

func code(s string) string {
	if s == "" {
		return "(unnamed)"
	}
	return "`" + strings.ReplaceAll(s, "`", "'") + "`"
}

func codeList(list []string) string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = code(s)
	}
	return strings.Join(out, ", ")
}

// md keeps a value from the plan from breaking the Markdown around it (or opening an HTML tag).
func md(s string) string {
	return strings.NewReplacer("<", "&lt;", ">", "&gt;", "\n", " ", "\r", " ").Replace(s)
}

// cell is md for a table cell: a | would end the cell.
func cell(s string) string { return strings.ReplaceAll(md(s), "|", `\|`) }
