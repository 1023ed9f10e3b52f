package controlplane

import (
	"net/http"
	"strconv"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/controlplane/store"
)

func (s *Server) deadLetterFilter(table string, ids []string) (store.DeadLetterFilter, error) {
	f := store.DeadLetterFilter{Table: table}
	if table != "" {
		if err := validateTable("table", table); err != nil {
			return f, err
		}
	}
	if len(ids) > maxBatch {
		return f, invalid("record_ids", "record_ids has %d entries; the limit is %d", len(ids), maxBatch)
	}
	for i, id := range ids {
		if err := validateRecordID("record_ids["+strconv.Itoa(i)+"]", id); err != nil {
			return f, err
		}
	}
	f.RecordIDs = ids
	return f, nil
}

func (s *Server) listDeadLetters(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, store.PrefixConnector)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	// record_id may repeat: `crmsync dead-letters show` reads one record's dead letter, whole.
	var ids []string
	if v, ok := q["record_id"]; ok {
		ids = v
	}
	f, err := s.deadLetterFilter(q.Get("table"), ids)
	if err != nil {
		return err
	}
	if f.Limit, err = queryLimit(r, 100, maxBatch); err != nil {
		return err
	}
	dls, total, err := s.cfg.Store.ListDeadLetters(r.Context(), id, f)
	if err != nil {
		return storeError(err, "id")
	}
	writeJSON(w, http.StatusOK, api.DeadLetterList{DeadLetters: dls, Total: total})
	return nil
}

func (s *Server) deadLetterAction(w http.ResponseWriter, r *http.Request, retry bool) error {
	id, err := pathID(r, store.PrefixConnector)
	if err != nil {
		return err
	}
	var a api.DeadLetterAction
	if err := decodeJSON(r, &a); err != nil {
		return err
	}
	f, err := s.deadLetterFilter(a.Table, a.RecordIDs)
	if err != nil {
		return err
	}
	var n int64
	if retry {
		n, err = s.cfg.Store.MarkDeadLettersForRetry(r.Context(), id, f, actorAPI)
	} else {
		n, err = s.cfg.Store.DiscardDeadLetters(r.Context(), id, f, actorAPI)
	}
	if err != nil {
		return storeError(err, "id")
	}
	writeJSON(w, http.StatusOK, api.DeadLetterActionResult{Affected: n})
	return nil
}

func (s *Server) retryDeadLetters(w http.ResponseWriter, r *http.Request) error {
	return s.deadLetterAction(w, r, true)
}

func (s *Server) discardDeadLetters(w http.ResponseWriter, r *http.Request) error {
	return s.deadLetterAction(w, r, false)
}
