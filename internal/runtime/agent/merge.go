package agent

import (
	"context"
	"slices"
	"strings"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
)

// Record merges. Salesforce merges up to three contacts or accounts (SOAP merge, the UI, Apex): the losers
// are deleted with MasterRecordId set to the winner, the winner is updated, and child records pointing at a
// loser are re-parented to the winner. On the change stream that is a DELETE of the losers (which carries no
// values, so not MasterRecordId) and an UPDATE of the winner, which the table applies like any others; the
// re-parented children fire no triggers (Apex Developer Guide, "Triggers and Merge Statements") and the CDC
// guide names no change event for them, so the agent cannot count on one. After a window deleted records of
// a table that other tables' lookups point at, the agent asks Salesforce which of them lost a merge and
// re-reads the children of their winners, which re-points those rows' lookups in Dataverse.

// idsPerQuery bounds the Ids in one SOQL IN list (the query stays far below SOQL's 100,000-character limit).
const idsPerQuery = 200

// reparentAfterMerges re-reads the records whose lookups a merge moved to a winner, for the deleted records
// of a window that turn out to have lost a merge.
func (t *table) reparentAfterMerges(ctx context.Context, deleted []string) error {
	if len(deleted) == 0 || len(t.children) == 0 {
		return nil
	}
	winners, err := t.rd.mergeWinners(ctx, deleted)
	if err != nil || len(winners) == 0 {
		return err
	}
	t.log.Info("records merged in Salesforce: re-reading the children of the winners", "winners", len(winners))
	for child, fields := range t.children {
		var ids []string
		for _, f := range fields {
			found, err := child.rd.idsWhere(ctx, f, winners)
			if err != nil {
				return err
			}
			for _, id := range found {
				if !slices.Contains(ids, id) {
					ids = append(ids, id)
				}
			}
		}
		child.st.received.Add(int64(len(ids)))
		if _, err := child.refetch(ctx, ids); err != nil {
			return err
		}
	}
	return nil
}

// inChunks calls fn with quoted, comma-separated lists of at most idsPerQuery Ids; malformed Ids are left
// out (they come from Salesforce, so there are none in practice, but they go into a query).
func inChunks(ids []string, fn func(list string) error) error {
	var quoted []string
	for _, id := range ids {
		if sfid.Valid(id) {
			quoted = append(quoted, "'"+id+"'")
		}
	}
	for i := 0; i < len(quoted); i += idsPerQuery {
		if err := fn(strings.Join(quoted[i:min(i+idsPerQuery, len(quoted))], ",")); err != nil {
			return err
		}
	}
	return nil
}
