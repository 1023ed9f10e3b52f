package dataverse

import (
	"bytes"
	"fmt"
	"net/http"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/jsonrow"
)

// Bulk messages (spec 4.7): POST <set>/Microsoft.Dynamics.CRM.{CreateMultiple|UpdateMultiple|UpsertMultiple}
// with {"Targets":[...]}, every item typed with "@odata.type". On standard tables the message is one
// transaction: any failing item rolls back all of them. Availability is switchable per table, and the
// sdkmessagefilters probe answers accordingly.

// parseTargets reads {"Targets":[{...},...]} with every item's members in order.
func parseTargets(set, msg string, body []byte) ([][]field, *apiError) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, errPayload(set, "An unexpected 'EndOfInput' node was found when reading from the JSON reader. A 'StartObject' node was expected.")
	}
	bad := func(err error) *apiError { return errPayload(set, "Invalid JSON. "+err.Error()) }
	i := skipSpace(body, 0)
	if body[i] != '{' {
		return nil, bad(&scanError{i, "a 'StartObject' node was expected"})
	}
	var targets [][]field
	var slab []field
	seen := false
	i = skipSpace(body, i+1)
	if i < len(body) && body[i] == '}' {
		return nil, errPayload(set, "The parameter 'Targets' of the operation '"+msg+"' is required.")
	}
	for {
		if i >= len(body) || body[i] != '"' {
			return nil, bad(&scanError{i, "a property name was expected"})
		}
		name, next, err := scanString(body, i)
		if err != nil {
			return nil, bad(err)
		}
		i = skipSpace(body, next)
		if i >= len(body) || body[i] != ':' {
			return nil, bad(&scanError{i, "':' expected after a property name"})
		}
		i = skipSpace(body, i+1)
		if name != "Targets" {
			if _, _, err := scanValue(body, i); err != nil {
				return nil, bad(err)
			}
			return nil, errPayload(set, fmt.Sprintf("The parameter '%s' in the request payload is not a valid parameter for the operation '%s'.", name, msg))
		}
		seen = true
		if i >= len(body) || body[i] != '[' {
			if _, _, err := scanValue(body, i); err != nil {
				return nil, bad(err)
			}
			return nil, errPayload(set, "The parameter 'Targets' must be an array of entities.")
		}
		i = skipSpace(body, i+1)
		if i < len(body) && body[i] == ']' {
			i++
		} else {
			for {
				if i >= len(body) || body[i] != '{' {
					if _, _, err := scanValue(body, i); err != nil {
						return nil, bad(err)
					}
					return nil, errPayload(set, "Every item of 'Targets' must be an entity object.")
				}
				// Every target's members go into one shared slab rather than a slice each.
				if cap(slab)-len(slab) < 64 {
					slab = make([]field, 0, 4096)
				}
				free := cap(slab) - len(slab)
				fields, next, err := scanObject(body, i, slab[len(slab):])
				if err != nil {
					return nil, bad(err)
				}
				if len(fields) <= free { // still inside the slab (append did not reallocate)
					slab = slab[:len(slab)+len(fields)]
				}
				targets = append(targets, fields[:len(fields):len(fields)])
				i = skipSpace(body, next)
				if i < len(body) && body[i] == ',' {
					i = skipSpace(body, i+1)
					continue
				}
				if i >= len(body) || body[i] != ']' {
					return nil, bad(&scanError{i, "',' or ']' expected"})
				}
				i++
				break
			}
		}
		i = skipSpace(body, i)
		if i < len(body) && body[i] == ',' {
			i = skipSpace(body, i+1)
			continue
		}
		if i >= len(body) || body[i] != '}' {
			return nil, bad(&scanError{i, "',' or '}' expected"})
		}
		break
	}
	if skipSpace(body, i+1) != len(body) {
		return nil, errPayload(set, "Invalid JSON. More than one value was found at the root of the JSON content. JSON content can only have one root value.")
	}
	if !seen {
		return nil, errPayload(set, "The parameter 'Targets' of the operation '"+msg+"' is required.")
	}
	return targets, nil
}

func (e *Emulator) serveBulk(c *opCtx, t *table, msg string, body []byte) response {
	var mode writeMode
	switch msg {
	case "CreateMultiple":
		mode = modeCreate
	case "UpdateMultiple":
		mode = modeUpdate
	case "UpsertMultiple":
		mode = modeUpsert
	default:
		return e.fail(c, errSegment("Microsoft.Dynamics.CRM."+msg))
	}
	e.tally(c, cBulkMessage, 1)
	lim := e.prot.currentLimits()
	c.cost += time.Duration(lim.Costs.BulkBase)
	targets, aerr := parseTargets(t.Set, msg, body)
	if aerr != nil {
		return e.fail(c, aerr)
	}
	e.tally(c, cBulkItems, int64(len(targets)))
	c.cost += time.Duration(len(targets)) * time.Duration(lim.Costs.BulkItem)
	return e.inWrite(c, func(tx *txn) (response, *apiError) {
		if !e.bulk[t.Logical][msg] {
			return response{}, newError(http.StatusBadRequest, codeMessageNotSupported,
				"The '%s' method does not support entities of type '%s'. MessageProcessorCache returned MessageProcessor.Empty.", msg, t.Logical)
		}
		if len(targets) == 0 {
			return response{}, errPayload(t.Set, "The parameter 'Targets' of the operation '"+msg+"' must hold at least one entity.")
		}
		var ids []byte
		for _, fields := range targets {
			res, aerr := e.applyWrite(c, tx, writeOp{t: t, mode: mode, fields: fields, bulk: msg})
			if aerr != nil {
				return response{}, aerr
			}
			if mode == modeCreate {
				if len(ids) > 0 {
					ids = append(ids, ',')
				}
				ids = append(ids, '"')
				ids = appendGUID(ids, res.id)
				ids = append(ids, '"')
			}
		}
		if mode != modeCreate {
			return response{status: http.StatusNoContent}, nil
		}
		b := []byte(`{"@odata.context":`)
		b = jsonrow.AppendString(b, e.baseURL()+"$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse")
		b = append(b, `,"Ids":[`...)
		b = append(b, ids...)
		b = append(b, "]}"...)
		return jsonResponse(http.StatusOK, b), nil
	})
}

// SetBulkMessage switches CreateMultiple, UpdateMultiple or UpsertMultiple on or off for contact or account.
func (e *Emulator) SetBulkMessage(table, message string, available bool) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	m := e.bulk[table]
	if m == nil {
		return fmt.Errorf("bulk messages are switchable on contact and account, not %q", table)
	}
	if _, ok := m[message]; !ok {
		return fmt.Errorf("bulk message %q must be CreateMultiple, UpdateMultiple or UpsertMultiple", message)
	}
	m[message] = available
	e.syncMessageFilters()
	return nil
}

// BulkMessages returns the availability of each bulk message per table.
func (e *Emulator) BulkMessages() map[string]map[string]bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := map[string]map[string]bool{}
	for t, m := range e.bulk {
		out[t] = map[string]bool{}
		for k, v := range m {
			out[t][k] = v
		}
	}
	return out
}
