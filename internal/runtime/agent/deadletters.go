package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/writer"
)

// CodeLookupMissing is the dead-letter code of a record whose lookup target is not in Dataverse (yet).
const CodeLookupMissing = "lookup_missing"

// CodeMapping is the dead-letter code of a record whose values the mapping cannot convert.
const CodeMapping = "mapping"

// CodeRetryRequested marks dead letters a person asked to retry; the agent retries them at its next round.
const CodeRetryRequested = "retry_requested"

// deadLetterRefusal stores a row Dataverse refused as a dead letter of the table, with the reason and the
// body that was refused, and counts the event in st.
func deadLetterRefusal(dead DeadLetterStore, sourceTable string, st *tableStats) func(context.Context, writer.Refusal) error {
	return func(ctx context.Context, r writer.Refusal) error {
		code := dataverse.Code(r.Err)
		if dataverse.IsNotFound(r.Err) {
			code = CodeLookupMissing
		}
		var payload string
		if r.Op.Body != nil {
			payload = "{" + string(r.Op.Body) + "}"
		}
		dl := DeadLetter{Table: sourceTable, RecordID: r.Op.RecordID, Operation: r.Op.Kind.String(), Code: code, Reason: r.Err.Error(),
			Payload: payload, At: time.Now().UTC()}
		if err := dead.AddDeadLetters(ctx, []DeadLetter{dl}); err != nil {
			return fmt.Errorf("storing a dead letter: %w", err)
		}
		st.deadLetterEvents.Add(1)
		return nil
	}
}
