package mapping

import (
	"maps"
	"slices"
	"strings"
)

// A table's effective columns depend on the other tables of its connector: a predefined lookup is mapped only
// when the table it points at is synced too, and a lookup is valid only toward a synced table. Every caller
// resolves and validates through Check, Effective and ResolveAll below, so the rules run the same way in the
// provider (static, no network), the control plane (static when a mapping is declared, live on request and
// at activation) and for the agent's configuration; the agent compiles the columns it is given (Compile).

// Siblings are the tables of one connector: source object → destination table.
type Siblings map[string]string

// SiblingsOf returns the siblings made of the given table mappings.
func SiblingsOf(tables ...TableConfig) Siblings {
	s := make(Siblings, len(tables))
	for _, t := range tables {
		s[t.SourceTable] = t.Destination()
	}
	return s
}

// with returns the siblings plus cfg's own table.
func (s Siblings) with(cfg TableConfig) Siblings {
	out := maps.Clone(s)
	if out == nil {
		out = Siblings{}
	}
	for so := range out {
		if strings.EqualFold(so, cfg.SourceTable) {
			delete(out, so)
		}
	}
	out[cfg.SourceTable] = cfg.Destination()
	return out
}

// Live are both sides' schemas as read from the services, for Check's live validation. A nil side is a table
// that does not exist or cannot be read (an error).
type Live struct {
	Source *SourceSchema
	Dest   *DestSchema
}

// Check resolves cfg among its siblings (cfg's own table is counted whether or not it is among them) and
// validates the effective columns: against live when given, else statically against the built-in catalog of
// standard columns, which reports names it does not know as warnings. It returns the effective columns, typed
// where a schema knows them, and every problem.
func Check(cfg TableConfig, siblings Siblings, live *Live) ([]Column, Problems) {
	synced := siblings.with(cfg)
	cols, probs := resolve(cfg, slices.Sorted(maps.Keys(synced)))
	if strings.TrimSpace(cfg.SourceTable) == "" {
		return cols, probs
	}
	schemas := staticSchemas(cfg, synced)
	if live != nil {
		schemas = sides{Source: live.Source, Dest: live.Dest, SyncedTables: synced}
	}
	return cols, append(probs, validate(cfg, cols, schemas)...)
}

// Effective returns cfg's effective columns among its siblings, typed from the catalog where it knows them:
// what the control plane serves as a mapping's effective_columns and stores with every revision. Problems are
// Check's to report.
func Effective(cfg TableConfig, siblings Siblings) []Column {
	cols, _ := Check(cfg, siblings, nil)
	return cols
}

// Resolved is a table mapping as a connector revision carries it to the agent and to backups: the
// declaration and its effective columns, resolved once (ResolveAll) by whoever made the revision.
type Resolved struct {
	TableConfig
	// EffectiveColumns are the columns the table writes, key first; see Effective.
	EffectiveColumns []Column `json:"effective_columns,omitempty"`
}

// ResolveAll resolves every table mapping of one connector among the others.
func ResolveAll(tables []TableConfig) []Resolved {
	siblings := SiblingsOf(tables...)
	out := make([]Resolved, len(tables))
	for i, t := range tables {
		out[i] = Resolved{TableConfig: t, EffectiveColumns: Effective(t, siblings)}
	}
	return out
}

// Declared returns the declarations of resolved tables.
func Declared(tables []Resolved) []TableConfig {
	out := make([]TableConfig, len(tables))
	for i, t := range tables {
		out[i] = t.TableConfig
	}
	return out
}
