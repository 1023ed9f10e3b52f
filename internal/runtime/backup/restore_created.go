package backup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/uuid"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/writer"
)

// The rows the sync may have created since the backup: their keys are recorded per table before a chunk
// counts as done, then the ones that are the GUID of a Salesforce Id of the mapped object are deleted.

func (r *restorer) createdPath(i int) string {
	return filepath.Join(r.opts.Dir, "restore-created-"+r.m.Tables[i].Table+".keys")
}

// appendCreated records keys of rows the sync may have created, before the chunk counts as done, so a
// resumed restore still deletes them (duplicates are harmless).
func (r *restorer) appendCreated(i int, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	f, err := os.OpenFile(r.createdPath(i), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	for _, k := range keys {
		_, _ = w.WriteString(k + "\n") // a failed write surfaces at Flush
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// deleteCreated deletes the recorded candidates whose key is the GUID of an Id of the mapped Salesforce
// object (one Bulk query of Ids), and keeps the others.
func (r *restorer) deleteCreated(ctx context.Context, i int) error {
	st, rep, t := &r.st.Tables[i], &r.st.Report.Tables[i], &r.m.Tables[i]
	if st.DeletesDone {
		return nil
	}
	candidates := map[uuid.UUID]bool{}
	f, err := os.Open(r.createdPath(i))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return err
	default:
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if u, err := uuid.Parse(strings.TrimSpace(sc.Text())); err == nil {
				candidates[u] = true
			}
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return err
		}
	}
	if len(candidates) > 0 {
		var confirmed []dataverse.Row
		err := r.opts.Source.IDs(ctx, t.SourceTable, func(id string) error {
			g, err := sfid.GUID(id)
			if err != nil {
				return nil //nolint:nilerr // not an Id: nothing of ours
			}
			if candidates[g] {
				confirmed = append(confirmed, dataverse.Row{t.PrimaryID: g.String()})
				delete(candidates, g)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("listing %s Ids: %w", t.SourceTable, err)
		}
		failed, err := r.write(ctx, t, writer.Delete, confirmed)
		if err != nil {
			return err
		}
		rep.Deleted += int64(len(confirmed) - len(failed))
		r.recordFailures(rep, failed)
		rep.Kept += int64(len(candidates))
	}
	st.DeletesDone, rep.Complete = true, true
	return r.save()
}

var objectName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,79}$`)

// SalesforceIDs lists Ids with one Bulk API queryAll job per object (deleted records in the recycle bin
// included): a few calls however large the object.
func SalesforceIDs(sf *salesforce.Client) IDLister { return sfIDs{sf} }

type sfIDs struct{ sf *salesforce.Client }

func (s sfIDs) IDs(ctx context.Context, object string, fn func(id string) error) error {
	if !objectName.MatchString(object) {
		return fmt.Errorf("%q is not a Salesforce object name", object)
	}
	job, err := s.sf.CreateQueryJob(ctx, "SELECT Id FROM "+object, true)
	if err != nil {
		return err
	}
	defer func() { _ = s.sf.DeleteQueryJob(context.WithoutCancel(ctx), job.ID) }()
	if _, err := s.sf.WaitQueryJob(ctx, job.ID); err != nil {
		return err
	}
	locator := ""
	for {
		page, err := s.sf.QueryResults(ctx, job.ID, locator, 0, func(rec salesforce.Record) error { return fn(rec.ID()) })
		if err != nil {
			return err
		}
		if page.Next == "" {
			return nil
		}
		locator = page.Next
	}
}
