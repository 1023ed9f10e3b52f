package dataverse

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// MaxBatchOps is Dataverse's limit of requests in one $batch.
const MaxBatchOps = 1000

// BatchOp is one write inside a $batch.
type BatchOp struct {
	Method string // PATCH, DELETE, POST
	// Path is relative to the API root, e.g. "contacts(<guid>)".
	Path string
	Body Row
	// Members, when set, is the body already encoded as JSON object members without braces; Body is then
	// ignored.
	Members []byte
	// Condition is "", UpdateOnly or CreateOnly for PATCH.
	Condition string
}

// BatchResult is one op's outcome; Err is nil on success.
type BatchResult struct {
	Status int
	Err    *APIError
}

// Batch sends up to MaxBatchOps writes in one $batch request with odata.continue-on-error, each op in a change
// set of its own so one failing record rolls back only itself. Results come back in op order.
func (c *Client) Batch(ctx context.Context, ops []BatchOp) ([]BatchResult, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	if len(ops) > MaxBatchOps {
		return nil, fmt.Errorf("a $batch holds at most %d operations, got %d", MaxBatchOps, len(ops))
	}
	body, ctype, err := c.batchBody(ops)
	if err != nil {
		return nil, err
	}
	resp, err := c.do(ctx, request{kind: "batch", method: http.MethodPost, path: "/$batch", body: body, ctype: ctype,
		header: http.Header{"Prefer": {"odata.continue-on-error"}}, idempotent: true})
	if err != nil {
		return nil, err
	}
	c.Stats.add("batch_ops", int64(len(ops)))
	return parseBatchResponse(resp.Header.Get("Content-Type"), resp.Body, len(ops))
}

func (c *Client) batchBody(ops []BatchOp) ([]byte, string, error) {
	var buf bytes.Buffer
	outer := multipart.NewWriter(&buf)
	if err := outer.SetBoundary("batch_" + uuid.NewString()); err != nil {
		return nil, "", err
	}
	for i, op := range ops {
		inner := &bytes.Buffer{}
		cs := multipart.NewWriter(inner)
		if err := cs.SetBoundary("changeset_" + uuid.NewString()); err != nil {
			return nil, "", err
		}
		ph := textproto.MIMEHeader{}
		ph.Set("Content-Type", "application/http")
		ph.Set("Content-Transfer-Encoding", "binary")
		ph.Set("Content-ID", strconv.Itoa(i+1))
		pw, err := cs.CreatePart(ph)
		if err != nil {
			return nil, "", err
		}
		var payload []byte
		if op.Members != nil {
			payload = object(op.Members)
		} else if op.Body != nil {
			if payload, err = json.Marshal(op.Body); err != nil {
				return nil, "", fmt.Errorf("encoding batch op %d: %w", i+1, err)
			}
		}
		// Writes into an in-memory buffer cannot fail.
		var part bytes.Buffer
		fmt.Fprintf(&part, "%s %s/%s HTTP/1.1\r\n", op.Method, strings.TrimPrefix(c.base, c.cfg.EnvironmentURL), strings.TrimPrefix(op.Path, "/"))
		if payload != nil {
			fmt.Fprintf(&part, "Content-Type: application/json; type=entry\r\nContent-Length: %d\r\n", len(payload))
		}
		if op.Condition != "" {
			fmt.Fprintf(&part, "%s: *\r\n", op.Condition)
		}
		part.WriteString("\r\n")
		part.Write(payload)
		if _, err := pw.Write(part.Bytes()); err != nil {
			return nil, "", err
		}
		if err := cs.Close(); err != nil {
			return nil, "", err
		}
		oh := textproto.MIMEHeader{}
		oh.Set("Content-Type", "multipart/mixed; boundary="+cs.Boundary())
		ow, err := outer.CreatePart(oh)
		if err != nil {
			return nil, "", err
		}
		if _, err := ow.Write(inner.Bytes()); err != nil {
			return nil, "", err
		}
	}
	if err := outer.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), "multipart/mixed; boundary=" + outer.Boundary(), nil
}

// parseBatchResponse reads a batch response: top-level parts that are either application/http responses or
// nested change-set multiparts of them. Results are matched to ops by Content-ID where echoed, else in order.
func parseBatchResponse(ctype string, body []byte, n int) ([]BatchResult, error) {
	results := make([]BatchResult, n)
	filled := make([]bool, n)
	next := 0
	var walk func(ctype string, r io.Reader) error
	walk = func(ctype string, r io.Reader) error {
		mt, params, err := mime.ParseMediaType(ctype)
		if err != nil || !strings.HasPrefix(mt, "multipart/") || params["boundary"] == "" {
			return fmt.Errorf("batch response: content type %q is not multipart", ctype)
		}
		mr := multipart.NewReader(r, params["boundary"])
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("batch response: %w", err)
			}
			pt := part.Header.Get("Content-Type")
			if strings.HasPrefix(pt, "multipart/") {
				if err := walk(pt, part); err != nil {
					return err
				}
				continue
			}
			resp, err := http.ReadResponse(bufio.NewReader(part), nil)
			if err != nil {
				return fmt.Errorf("batch response part: %w", err)
			}
			pb, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			idx := -1
			if id, err := strconv.Atoi(part.Header.Get("Content-ID")); err == nil && id >= 1 && id <= n {
				idx = id - 1
			}
			for idx < 0 && next < n {
				if !filled[next] {
					idx = next
				}
				next++
			}
			if idx < 0 {
				return errors.New("batch response has more parts than the batch had operations")
			}
			res := BatchResult{Status: resp.StatusCode}
			if resp.StatusCode >= 300 {
				res.Err = apiError(request{method: "BATCH", path: "$batch op " + strconv.Itoa(idx+1)}, &answer{Status: resp.StatusCode, Body: pb})
			}
			results[idx], filled[idx] = res, true
		}
	}
	if err := walk(ctype, bytes.NewReader(body)); err != nil {
		return nil, err
	}
	for i, f := range filled {
		if !f {
			return nil, fmt.Errorf("batch response has no answer for operation %d", i+1)
		}
	}
	return results, nil
}
