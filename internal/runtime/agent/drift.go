package agent

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
)

// Out-of-band edits: synced rows changed in Dataverse by anyone other than the agent since it last wrote
// them. The agent writes as the application user, so its own writes carry that identity in modifiedby; any
// other modifiedby on a synced row is someone else's edit, which the next change in Salesforce would
// silently overwrite (the original connector's documentation warns about exactly this).
//
// Each check asks Dataverse for the rows modified since the last check by someone else (one request when
// nothing changed), keeps those whose key is the GUID of a live Salesforce record of the mapped object, reads
// those records and names the mapped columns whose values differ. Rows whose mapped columns all still match
// (an edit of an unmapped column) are not reported. Where the mapping asks for it
// (repair_out_of_band_edits), the reported rows are rewritten from Salesforce, as the agent's identity.

const (
	// oobMargin widens each check's window backwards: a transaction that committed late with an earlier
	// modifiedon is still seen (rows already looked at are remembered and not reported twice).
	oobMargin = 2 * time.Minute
	// oobMaxRows bounds the rows one check looks at; the rest waits for the next check.
	oobMaxRows = 2000
	// oobExamples is how many recent edits status shows.
	oobExamples = 10
)

type oobRow struct {
	key      string
	vals     []string
	by       string
	at       time.Time
	modified string // modifiedon as Dataverse wrote it, for remembering the row
}

// checkOutOfBand runs the detector once on a table.
func (g *safeguards) checkOutOfBand(ctx context.Context, tg *tableGuard) error {
	appUser, err := g.whoAmI(ctx)
	if err != nil {
		return err
	}
	cp := tg.pos.snapshot()
	since := cp.OutOfBandSince
	if since.IsZero() {
		// The first check looks back to the table's load: an edit made after the load wrote a row is one
		// the sync did not see.
		since = cp.LoadStartedAt
		if since.IsZero() {
			since = time.Now().UTC()
		}
	}
	cols := canonColumns(tg.plan)
	rows, newest, err := g.editedRows(ctx, tg, cols, appUser, since)
	if err != nil {
		return err
	}
	var edits []api.OutOfBandEdit
	if len(rows) > 0 {
		if edits, err = g.compareOutOfBand(ctx, tg, cols, rows); err != nil {
			return err
		}
	}
	repaired := 0
	if len(edits) > 0 && tg.repair {
		if repaired, err = repairOutOfBand(ctx, tg, edits); err != nil {
			return err
		}
	}
	for _, e := range edits {
		tg.log.Warn("row edited out of band", "record", e.RecordID, "key", e.Key, "columns", strings.Join(e.Columns, ","),
			"modified_by", e.ModifiedBy, "modified_by_name", e.ModifiedByName, "modified_at", e.ModifiedAt, "repaired", e.Repaired)
	}
	tg.mu.Lock()
	for _, r := range rows {
		tg.seen.put(r.key, r.at)
	}
	tg.oob.Detected += int64(len(edits))
	tg.oob.Repaired += int64(repaired)
	tg.oob.CheckedAt, tg.oob.Since = time.Now().UTC(), newest
	slices.Reverse(edits)
	tg.oob.Examples = append(edits, tg.oob.Examples...)
	if len(tg.oob.Examples) > oobExamples {
		tg.oob.Examples = tg.oob.Examples[:oobExamples]
	}
	tg.mu.Unlock()
	return tg.pos.outOfBandChecked(ctx, newest)
}

// editedRows asks Dataverse for the synced rows someone other than the application user modified since a
// time (not those already looked at), at most oobMaxRows; newest is the latest modifiedon seen.
func (g *safeguards) editedRows(ctx context.Context, tg *tableGuard, cols []canonColumn, appUser string, since time.Time) ([]oobRow, time.Time, error) {
	plan := tg.plan
	from := since.Add(-oobMargin).UTC().Format(time.RFC3339)
	q := "/" + plan.EntitySet + "?$select=" + selectProps(plan.PrimaryID, cols, "_modifiedby_value", "modifiedon") +
		"&$filter=modifiedon ge " + from + " and _modifiedby_value ne " + appUser +
		"&$orderby=modifiedon asc," + plan.PrimaryID + " asc"
	var rows []oobRow
	newest := since
	err := g.a.dv.Query(ctx, strings.ReplaceAll(q, " ", "%20"), 500, func(row dataverse.Row) error {
		key, vals := canonDest(plan.PrimaryID, cols, row)
		modified, _ := row["modifiedon"].(string)
		at, perr := time.Parse(time.RFC3339Nano, modified)
		if perr != nil {
			return fmt.Errorf("row %s of %s: modifiedon %q: %w", key, plan.DestTable, modified, perr)
		}
		by, _ := row["_modifiedby_value"].(string)
		tg.mu.Lock()
		prev, seen := tg.seen.get(key)
		tg.mu.Unlock()
		if at.After(newest) {
			newest = at
		}
		if (seen && !at.After(prev)) || !sfid.IsSyncGUID(key) {
			return nil
		}
		rows = append(rows, oobRow{key: key, vals: vals, by: strings.ToLower(by), at: at, modified: modified})
		if len(rows) >= oobMaxRows {
			return errStopQuery
		}
		return nil
	})
	if err != nil && err != errStopQuery { //nolint:errorlint // the sentinel is ours and never wrapped
		return nil, since, err
	}
	return rows, newest, nil
}

// repairOutOfBand rewrites the edited rows from Salesforce through the table's pipeline and marks those
// Dataverse accepted as repaired (a refused rewrite is dead-lettered).
func repairOutOfBand(ctx context.Context, tg *tableGuard, edits []api.OutOfBandEdit) (int, error) {
	ids := make([]string, len(edits))
	for i, e := range edits {
		ids[i] = e.RecordID
	}
	out, err := tg.heal(ctx, ids)
	if err != nil {
		return 0, fmt.Errorf("rewriting %d rows edited out of band: %w", len(ids), err)
	}
	refused := map[string]bool{}
	for _, id := range out.RefusedIDs {
		refused[to18(id)] = true
	}
	repaired := 0
	for i := range edits {
		if !refused[to18(edits[i].RecordID)] {
			edits[i].Repaired = true
			repaired++
		}
	}
	what := fmt.Sprintf("out-of-band edits: %d rows rewritten from Salesforce", repaired)
	if out.Refused > 0 {
		what += fmt.Sprintf(", %d refused by Dataverse (see the dead letters)", out.Refused)
	}
	tg.pos.addRecovery(what)
	return repaired, nil
}

// errStopQuery ends a Dataverse query early.
var errStopQuery = fmt.Errorf("enough rows")

// compareOutOfBand keeps the rows that belong to live Salesforce records and differ from them in a mapped
// column.
func (g *safeguards) compareOutOfBand(ctx context.Context, tg *tableGuard, cols []canonColumn, rows []oobRow) ([]api.OutOfBandEdit, error) {
	keys := make([]string, len(rows))
	for i, r := range rows {
		keys[i] = r.key
	}
	ids, err := g.resolveIDs(ctx, tg, keys)
	if err != nil {
		return nil, fmt.Errorf("finding the Salesforce records of %d edited rows: %w", len(keys), err)
	}
	if len(ids) == 0 {
		return nil, nil // rows nobody synced
	}
	list := make([]string, 0, len(ids))
	for _, id := range ids {
		list = append(list, id)
	}
	slices.Sort(list)
	source := map[string][]string{} // key → canonical values
	err = tg.rd.reread(ctx, list, func(r salesforce.Record) error {
		if d, _ := r["IsDeleted"].(bool); d {
			return nil // deleted: the stream deletes the row
		}
		key, vals, err := canonSource(tg.plan, cols, r)
		if err == nil {
			source[key] = vals
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading %d Salesforce records: %w", len(list), err)
	}
	var out []api.OutOfBandEdit
	for _, r := range rows {
		want, ok := source[r.key]
		if !ok {
			continue
		}
		diff := differingColumns(cols, r.vals, want)
		if len(diff) == 0 {
			continue
		}
		out = append(out, api.OutOfBandEdit{RecordID: ids[r.key], Key: r.key, Columns: diff, ModifiedBy: r.by,
			ModifiedByName: g.userName(ctx, r.by), ModifiedAt: r.at.UTC()})
	}
	return out, nil
}
