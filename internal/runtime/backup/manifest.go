package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
)

// ManifestFile is the manifest's name inside a backup directory.
const ManifestFile = "manifest.json"

// FormatVersion is the manifest format this package writes and reads.
const FormatVersion = 1

// Manifest describes a backup: what was exported, from where, and every chunk file with its checksum. It is
// rewritten (atomically) after every finished chunk, so it is also the export's progress record.
type Manifest struct {
	Format         int       `json:"format"`
	ID             string    `json:"id"`
	ConnectorID    string    `json:"connector_id"`
	ConnectorName  string    `json:"connector_name"`
	Revision       int64     `json:"revision"`
	Trigger        string    `json:"trigger"`
	EnvironmentURL string    `json:"environment_url"`
	StartedAt      time.Time `json:"started_at"`
	// CompletedAt is set once every table is exported; a backup without it cannot be restored.
	CompletedAt *time.Time      `json:"completed_at,omitempty"`
	Tables      []TableManifest `json:"tables"`
}

// TableManifest is one table of a backup.
type TableManifest struct {
	Table       string   `json:"table"`
	SourceTable string   `json:"source_table"`
	EntitySet   string   `json:"entity_set"`
	PrimaryID   string   `json:"primary_id"`
	Columns     []Column `json:"columns"`
	// Estimated is the row count when the export started (0 when unknown), for progress only.
	Estimated int64   `json:"estimated,omitempty"`
	Rows      int64   `json:"rows"`
	Bytes     int64   `json:"bytes"`
	Chunks    []Chunk `json:"chunks"`
	Complete  bool    `json:"complete"`
}

// Chunk is one file of a table: rows in Dataverse's primary-key order, from just after the previous chunk's
// LastKey up to and including its own LastKey.
type Chunk struct {
	File     string `json:"file"` // relative to the backup directory
	Rows     int64  `json:"rows"`
	Bytes    int64  `json:"bytes"`
	SHA256   string `json:"sha256"`
	FirstKey string `json:"first_key"`
	LastKey  string `json:"last_key"`
}

// Column is one exported column.
type Column struct {
	// Name is the logical name; Property the Web API property the row holds it under (_x_value for lookups).
	Name     string `json:"name"`
	Property string `json:"property"`
	Type     string `json:"type"` // Dataverse AttributeType
	// Targets are the tables a lookup may point at.
	Targets []string `json:"targets,omitempty"`
	// ReadOnly columns (modifiedon) are kept for reference and never written back.
	ReadOnly bool `json:"read_only,omitempty"`
	// State marks statecode and statuscode (backed up when a mapping deactivates rows), which a create cannot
	// set: a recreated row gets them with a second update.
	State bool `json:"state,omitempty"`
}

// Rows counts every table's rows.
func (m *Manifest) Rows() (rows, bytes int64) {
	for _, t := range m.Tables {
		rows += t.Rows
		bytes += t.Bytes
	}
	return rows, bytes
}

// ReadManifest reads DIR/manifest.json.
func ReadManifest(dir string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
	}
	if m.Format != FormatVersion {
		return nil, fmt.Errorf("%s: format %d is not %d; this crmsync cannot read it", filepath.Join(dir, ManifestFile), m.Format, FormatVersion)
	}
	return &m, nil
}

// writeJSONAtomic replaces path with v's JSON: a temporary file, synced, renamed over path, and the directory
// synced, so a crash leaves either the old or the new content.
func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600) //nolint:gosec // inside the backup directory
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir) //nolint:gosec // the backup directory
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Source is one table mapping to back up: its source object, the destination's columns the mapping writes
// and its delete behaviour.
type Source struct {
	SourceTable     string
	Table           string
	Columns         []string // destination columns of the effective mapping, key included or not
	DeleteBehaviour string
}

// SourcesOf derives the tables and columns to back up from a connector revision's table mappings and the
// effective columns they carry.
func SourcesOf(tables []mapping.Resolved) []Source {
	out := make([]Source, 0, len(tables))
	for _, t := range tables {
		s := Source{SourceTable: t.SourceTable, Table: t.Destination(), DeleteBehaviour: t.DeleteBehaviour}
		for _, c := range t.EffectiveColumns {
			s.Columns = append(s.Columns, c.Destination)
		}
		out = append(out, s)
	}
	return out
}

// PlanTables reads the destination tables' metadata and returns what a backup of them holds: the key, every
// column the mappings write (lookups as _x_value), the owner and modifiedon, plus statecode and statuscode
// when a mapping deactivates rows. A column the table does not have is an error naming it.
func PlanTables(ctx context.Context, dv *dataverse.Client, sources []Source) ([]TableManifest, error) {
	var out []TableManifest
	var errs []error
	for _, s := range sources {
		schema, err := dv.Table(ctx, s.Table)
		if err != nil {
			return nil, fmt.Errorf("reading the metadata of %s: %w", s.Table, err)
		}
		tm := TableManifest{Table: schema.Table, SourceTable: s.SourceTable, EntitySet: schema.EntitySetName, PrimaryID: schema.PrimaryID}
		seen := map[string]bool{}
		add := func(name string, readOnly, state bool) {
			name = strings.ToLower(name)
			if seen[name] || name == schema.PrimaryID {
				return
			}
			col, ok := schema.Column(name)
			if !ok {
				errs = append(errs, fmt.Errorf("table %s has no column %s", s.Table, name))
				return
			}
			seen[name] = true
			c := Column{Name: col.LogicalName, Property: col.LogicalName, Type: col.AttributeType, Targets: col.Targets, ReadOnly: readOnly, State: state}
			if isLookup(col.AttributeType) {
				c.Property = "_" + col.LogicalName + "_value"
			}
			tm.Columns = append(tm.Columns, c)
		}
		for _, c := range s.Columns {
			add(c, false, false)
		}
		add("ownerid", false, false)
		add("modifiedon", true, false)
		if s.DeleteBehaviour == mapping.DeleteDeactivate {
			add("statecode", false, true)
			add("statuscode", false, true)
		}
		out = append(out, tm)
	}
	return out, errors.Join(errs...)
}

func isLookup(attrType string) bool {
	return attrType == "Lookup" || attrType == "Customer" || attrType == "Owner"
}

// selectList is the $select of a table's export.
func (t *TableManifest) selectList(extra ...string) string {
	props := []string{t.PrimaryID}
	for _, c := range t.Columns {
		props = append(props, c.Property)
	}
	return strings.Join(append(props, extra...), ",")
}
