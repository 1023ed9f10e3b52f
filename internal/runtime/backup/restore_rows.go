package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
)

// A backed-up row against the current one: the comparison of writable columns, the upsert body with
// lookups as binds (owner team or user, lookup targets), the state update of a recreated row.

// equal compares the writable columns of a backed-up row and a current one (both as the Web API returns
// them, so the same value has the same JSON form).
func (r *restorer) equal(t *TableManifest, b, c map[string]any) bool {
	for _, col := range t.Columns {
		if col.ReadOnly {
			continue
		}
		if canon(b[col.Property], isLookup(col.Type)) != canon(c[col.Property], isLookup(col.Type)) {
			return false
		}
	}
	return true
}

func canon(v any, fold bool) string {
	switch x := v.(type) {
	case nil:
		return "\x00"
	case string:
		if fold {
			return strings.ToLower(x)
		}
		return x
	case json.Number:
		if f, err := x.Float64(); err == nil {
			return strconv.FormatFloat(f, 'g', -1, 64)
		}
		return x.String()
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// body is the upsert body of a backed-up row: writable columns as they were, lookups as binds.
func (r *restorer) body(ctx context.Context, t *TableManifest, b map[string]any, key string, exists bool) (dataverse.Row, error) {
	out := dataverse.Row{t.PrimaryID: key}
	for _, c := range t.Columns {
		if c.ReadOnly || (c.State && !exists) {
			continue
		}
		v := b[c.Property]
		if !isLookup(c.Type) {
			out[c.Name] = v
			continue
		}
		s, _ := v.(string)
		switch c.Type {
		case "Owner":
			if s == "" {
				continue // a row always has an owner: leave the current one
			}
			bind, err := r.ownerBind(ctx, s)
			if err != nil {
				return nil, err
			}
			out["ownerid@odata.bind"] = bind
		default:
			target, err := r.lookupTarget(ctx, c, s)
			if err != nil {
				return nil, err
			}
			nav := c.Name
			if c.Type == "Customer" {
				nav = c.Name + "_" + target
			}
			if s == "" {
				out[nav+"@odata.bind"] = nil
				continue
			}
			set, err := r.entitySet(ctx, target)
			if err != nil {
				return nil, err
			}
			out[nav+"@odata.bind"] = "/" + set + "(" + s + ")"
		}
	}
	return out, nil
}

// stateBody is the update that gives a recreated row its backed-up state (a create cannot set statecode);
// nil when the row has no state columns or the default state.
func stateBody(t *TableManifest, b map[string]any, key string) dataverse.Row {
	var out dataverse.Row
	for _, c := range t.Columns {
		if !c.State {
			continue
		}
		if out == nil {
			out = dataverse.Row{t.PrimaryID: key}
		}
		out[c.Name] = b[c.Property]
	}
	if out == nil || canon(out["statecode"], false) == "0" {
		return nil
	}
	return out
}

// ownerBind tells a team from a user by reading the team (one request per distinct owner).
func (r *restorer) ownerBind(ctx context.Context, id string) (string, error) {
	id = strings.ToLower(id)
	if b, ok := r.owners[id]; ok {
		return b, nil
	}
	if !validKey(id) {
		return "", fmt.Errorf("owner %q is not a GUID", id)
	}
	bind := "/teams(" + id + ")"
	if _, err := r.dv.Team(ctx, id); err != nil {
		if !dataverse.IsNotFound(err) {
			return "", err
		}
		bind = "/systemusers(" + id + ")"
	}
	r.owners[id] = bind
	return bind, nil
}

// lookupTarget says which table a lookup value points at: the column's only target; else the backed-up
// table holding the key; else the target where a row with that key exists now (read once per value).
func (r *restorer) lookupTarget(ctx context.Context, c Column, v string) (string, error) {
	if len(c.Targets) == 0 {
		return "", fmt.Errorf("lookup column %s has no target tables in the backup's metadata", c.Name)
	}
	if len(c.Targets) == 1 || v == "" {
		return c.Targets[0], nil
	}
	u, err := uuid.Parse(v)
	if err != nil {
		return "", fmt.Errorf("lookup %s value %q is not a GUID", c.Name, v)
	}
	for _, target := range c.Targets {
		set, err := r.keyset(target)
		if err != nil {
			return "", err
		}
		if set[u] {
			return target, nil
		}
	}
	if t, ok := r.probed[strings.ToLower(v)]; ok {
		return t, nil
	}
	for _, target := range c.Targets {
		es, err := r.entitySet(ctx, target)
		if err != nil {
			return "", err
		}
		if _, err := r.dv.Get(ctx, es, strings.ToLower(v), ""); err == nil {
			r.probed[strings.ToLower(v)] = target
			return target, nil
		} else if !dataverse.IsNotFound(err) {
			return "", err
		}
	}
	// The target is gone everywhere: the write will fail on this row alone and say so.
	return c.Targets[0], nil
}

// keyset loads the backed-up keys of a table (nil when the table is not in the backup).
func (r *restorer) keyset(table string) (map[uuid.UUID]bool, error) {
	if s, ok := r.keysets[table]; ok {
		return s, nil
	}
	var set map[uuid.UUID]bool
	for _, t := range r.m.Tables {
		if t.Table != table {
			continue
		}
		set = make(map[uuid.UUID]bool, t.Rows)
		for _, c := range t.Chunks {
			err := ReadChunk(r.opts.Dir, c, func(row map[string]any) error {
				if k, ok := row[t.PrimaryID].(string); ok {
					if u, err := uuid.Parse(k); err == nil {
						set[u] = true
					}
				}
				return nil
			})
			if err != nil {
				return nil, err
			}
		}
	}
	r.keysets[table] = set
	return set, nil
}

func (r *restorer) entitySet(ctx context.Context, table string) (string, error) {
	if s, ok := r.sets[table]; ok {
		return s, nil
	}
	for _, t := range r.m.Tables {
		if t.Table == table {
			r.sets[table] = t.EntitySet
			return t.EntitySet, nil
		}
	}
	schema, err := r.dv.Table(ctx, table)
	if err != nil {
		return "", fmt.Errorf("reading the metadata of lookup target %s: %w", table, err)
	}
	r.sets[table] = schema.EntitySetName
	return schema.EntitySetName, nil
}
