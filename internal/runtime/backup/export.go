package backup

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
)

// Defaults of ExportOptions.
const (
	// DefaultPageSize is Dataverse's largest page (odata.maxpagesize).
	DefaultPageSize = 5000
	// DefaultChunkPages is how many pages go into one chunk file: the most a crash makes the export read again.
	DefaultChunkPages = 10
)

// ExportOptions configures Export.
type ExportOptions struct {
	// Dir is the backup's directory; it holds the manifest and one sub-directory of chunks per table.
	Dir string
	// Manifest is the backup's identity and tables (from PlanTables) for a new export; ignored when Dir
	// already holds a manifest, which is resumed.
	Manifest Manifest
	// PageSize rows per request (at most 5,000) and ChunkPages pages per chunk; defaults when zero.
	PageSize   int
	ChunkPages int
	// Progress is called after every finished chunk with the manifest so far.
	Progress func(Manifest)
	Logger   *slog.Logger
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// errChunkFull stops a query at a chunk boundary.
var errChunkFull = errors.New("chunk full")

// Export runs (or resumes) a backup into opts.Dir and returns the complete manifest. See the package comment
// for what it guarantees across crashes.
func Export(ctx context.Context, dv *dataverse.Client, opts ExportOptions) (*Manifest, error) {
	if opts.PageSize <= 0 || opts.PageSize > DefaultPageSize {
		opts.PageSize = DefaultPageSize
	}
	if opts.ChunkPages <= 0 {
		opts.ChunkPages = DefaultChunkPages
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating the backup directory: %w", err)
	}
	m, err := ReadManifest(opts.Dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		m = &opts.Manifest
		m.Format = FormatVersion
		if m.StartedAt.IsZero() {
			m.StartedAt = opts.Now().UTC()
		}
		if err := writeJSONAtomic(filepath.Join(opts.Dir, ManifestFile), m); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		opts.Logger.Info("resuming the backup", "dir", opts.Dir)
	}
	if m.CompletedAt != nil {
		return m, nil
	}
	for i := range m.Tables {
		if m.Tables[i].Complete {
			continue
		}
		if err := exportTable(ctx, dv, opts, m, i); err != nil {
			return m, fmt.Errorf("backing up %s: %w", m.Tables[i].Table, err)
		}
	}
	done := opts.Now().UTC()
	m.CompletedAt = &done
	if err := writeJSONAtomic(filepath.Join(opts.Dir, ManifestFile), m); err != nil {
		return m, err
	}
	if opts.Progress != nil {
		opts.Progress(*m)
	}
	return m, nil
}

func exportTable(ctx context.Context, dv *dataverse.Client, opts ExportOptions, m *Manifest, i int) error {
	t := &m.Tables[i]
	tdir := filepath.Join(opts.Dir, t.Table)
	if err := os.MkdirAll(tdir, 0o700); err != nil {
		return err
	}
	if err := removeUnlisted(opts.Dir, tdir, t); err != nil {
		return err
	}
	chunkRows := int64(opts.PageSize * opts.ChunkPages)
	for {
		after := ""
		if n := len(t.Chunks); n > 0 {
			after = t.Chunks[n-1].LastKey
		}
		c, err := writeChunk(ctx, dv, opts, t, after, len(t.Chunks)+1, chunkRows)
		if err != nil {
			return err
		}
		if c != nil {
			t.Chunks = append(t.Chunks, *c)
			t.Rows += c.Rows
			t.Bytes += c.Bytes
		}
		if c == nil || c.Rows < chunkRows {
			t.Complete = true
		}
		if err := writeJSONAtomic(filepath.Join(opts.Dir, ManifestFile), m); err != nil {
			return err
		}
		if opts.Progress != nil {
			opts.Progress(*m)
		}
		if t.Complete {
			opts.Logger.Info("table backed up", "table", t.Table, "rows", t.Rows, "bytes", t.Bytes, "chunks", len(t.Chunks))
			return nil
		}
	}
}

// removeUnlisted deletes chunk files of the table the manifest does not list: what a crash left between
// writing a chunk and recording it.
func removeUnlisted(dir, tdir string, t *TableManifest) error {
	listed := map[string]bool{}
	for _, c := range t.Chunks {
		listed[filepath.Join(dir, c.File)] = true
	}
	entries, err := os.ReadDir(tdir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := filepath.Join(tdir, e.Name())
		if !listed[p] {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// countingWriter counts and hashes what goes to the file.
type countingWriter struct {
	w io.Writer
	h hash.Hash
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// writeChunk exports up to limit rows after the key after into chunk number seq; nil when no row is left.
func writeChunk(ctx context.Context, dv *dataverse.Client, opts ExportOptions, t *TableManifest, after string, seq int, limit int64) (*Chunk, error) {
	rel := filepath.Join(t.Table, fmt.Sprintf("%06d.ndjson.gz", seq))
	final := filepath.Join(opts.Dir, rel)
	tmp := final + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600) //nolint:gosec // inside the backup directory
	if err != nil {
		return nil, err
	}
	defer func() {
		f.Close()
		os.Remove(tmp) // gone after the rename; a leftover on failure
	}()
	cw := &countingWriter{w: f, h: sha256.New()}
	gz := gzip.NewWriter(cw)
	c := &Chunk{File: rel}
	var line []byte
	err = dv.Query(ctx, rangeQuery(t, after, ""), opts.PageSize, func(row dataverse.Row) error {
		key, _ := row[t.PrimaryID].(string)
		if !validKey(key) {
			return fmt.Errorf("a row of %s has no %s", t.Table, t.PrimaryID)
		}
		out := make(map[string]any, len(t.Columns)+1)
		out[t.PrimaryID] = key
		for _, col := range t.Columns {
			out[col.Property] = row[col.Property]
		}
		var err error
		if line, err = json.Marshal(out); err != nil {
			return err
		}
		if _, err := gz.Write(append(line, '\n')); err != nil {
			return err
		}
		if c.Rows == 0 {
			c.FirstKey = key
		}
		c.LastKey = key
		c.Rows++
		if c.Rows >= limit {
			return errChunkFull
		}
		return nil
	})
	if err != nil && !errors.Is(err, errChunkFull) {
		return nil, err
	}
	if c.Rows == 0 {
		return nil, nil
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	if err := f.Sync(); err != nil {
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, final); err != nil {
		return nil, err
	}
	if err := syncDir(filepath.Dir(final)); err != nil {
		return nil, err
	}
	c.Bytes, c.SHA256 = cw.n, hex.EncodeToString(cw.h.Sum(nil))
	return c, nil
}

// rangeQuery reads a table's rows with keys in (after, upTo] (an empty bound is open) in primary-key order.
// The bounds are keys Dataverse returned, checked to be GUIDs before they go into the filter.
func rangeQuery(t *TableManifest, after, upTo string, extra ...string) string {
	var filters []string
	if after != "" {
		filters = append(filters, t.PrimaryID+" gt "+after)
	}
	if upTo != "" {
		filters = append(filters, t.PrimaryID+" le "+upTo)
	}
	q := "/" + t.EntitySet + "?$select=" + t.selectList(extra...) + "&$orderby=" + t.PrimaryID + " asc"
	if len(filters) > 0 {
		q += "&$filter=" + strings.Join(filters, " and ")
	}
	return strings.ReplaceAll(q, " ", "%20")
}

// validKey reports whether a key read from a row or a file is a GUID (it goes into $filter).
func validKey(k string) bool {
	_, err := uuid.Parse(k)
	return err == nil && len(k) == 36
}

// ReadChunk verifies a chunk's checksum and calls fn for each row.
func ReadChunk(dir string, c Chunk, fn func(row map[string]any) error) error {
	p := filepath.Join(dir, c.File)
	f, err := os.Open(p) //nolint:gosec // a file the manifest lists
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != c.SHA256 {
		return fmt.Errorf("%s: checksum %s does not match the manifest's %s: the backup is damaged", p, got, c.SHA256)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	gz, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", p, err)
	}
	defer gz.Close()
	dec := json.NewDecoder(gz)
	dec.UseNumber()
	for {
		var row map[string]any
		err := dec.Decode(&row)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if err := fn(row); err != nil {
			return err
		}
	}
}
