package dataverse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
)

// batchBuilder writes a $batch body as clients do (spec 4.8).
type batchBuilder struct {
	b        strings.Builder
	boundary string
}

func newBatch() *batchBuilder { return &batchBuilder{boundary: "batch_AAA123"} }

func (bb *batchBuilder) contentType() string {
	return "multipart/mixed; boundary=\"" + bb.boundary + "\""
}

func request(method, url, body string, headers ...string) string {
	var s strings.Builder
	s.WriteString("Content-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n")
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] == "Content-ID" {
			s.WriteString("Content-ID: " + headers[i+1] + "\r\n")
		}
	}
	s.WriteString("\r\n" + method + " " + url + " HTTP/1.1\r\n")
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i] != "Content-ID" {
			s.WriteString(headers[i] + ": " + headers[i+1] + "\r\n")
		}
	}
	if body != "" {
		s.WriteString("Content-Type: application/json; type=entry\r\n")
	}
	s.WriteString("\r\n" + body + "\r\n")
	return s.String()
}

func (bb *batchBuilder) op(method, url, body string, headers ...string) *batchBuilder {
	bb.b.WriteString("--" + bb.boundary + "\r\n" + request(method, url, body, headers...))
	return bb
}

// changeSet adds a change set; each request is {method, url, body, content-id}.
func (bb *batchBuilder) changeSet(name string, reqs ...[4]string) *batchBuilder {
	bb.b.WriteString("--" + bb.boundary + "\r\nContent-Type: multipart/mixed; boundary=\"" + name + "\"\r\n\r\n")
	for _, r := range reqs {
		bb.b.WriteString("--" + name + "\r\n" + request(r[0], r[1], r[2], "Content-ID", r[3]))
	}
	bb.b.WriteString("--" + name + "--\r\n")
	return bb
}

func (bb *batchBuilder) body() string { return bb.b.String() + "--" + bb.boundary + "--\r\n" }

// batchPart is one parsed response part.
type batchPart struct {
	contentID string
	status    int
	header    http.Header
	body      string
	changeSet int // index of the change set response it came in, -1 outside change sets
}

// parseBatchResponse reads a multipart $batch answer with the standard library, as a Go client would.
func parseBatchResponse(t *testing.T, r result) []batchPart {
	t.Helper()
	media, params, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil || media != "multipart/mixed" || !strings.HasPrefix(params["boundary"], "batchresponse_") {
		t.Fatalf("batch answer Content-Type %q", r.header.Get("Content-Type"))
	}
	var parts []batchPart
	var readParts func(body io.Reader, boundary string, cs int)
	readParts = func(body io.Reader, boundary string, cs int) {
		mr := multipart.NewReader(body, boundary)
		n := 0
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatalf("batch answer: %v\n%s", err, r.raw)
			}
			ct := p.Header.Get("Content-Type")
			if strings.HasPrefix(ct, "multipart/mixed") {
				_, ps, _ := mime.ParseMediaType(ct)
				if !strings.HasPrefix(ps["boundary"], "changesetresponse_") {
					t.Errorf("change set boundary %q", ps["boundary"])
				}
				readParts(p, ps["boundary"], n)
				n++
				continue
			}
			if ct != "application/http" || p.Header.Get("Content-Transfer-Encoding") != "binary" {
				t.Errorf("part headers %v", p.Header)
			}
			resp, err := http.ReadResponse(bufio.NewReader(p), nil)
			if err != nil {
				t.Fatalf("part response: %v", err)
			}
			b, _ := io.ReadAll(resp.Body)
			parts = append(parts, batchPart{contentID: p.Header.Get("Content-ID"), status: resp.StatusCode, header: resp.Header,
				body: strings.TrimSpace(string(b)), changeSet: cs})
			n++
		}
	}
	readParts(bytes.NewReader(r.raw), params["boundary"], -1)
	return parts
}

// A change set is atomic, Content-ID references ($1) work as URLs and as bind
// values, GETs run outside change sets, and the answer is the real multipart shape.
func TestBatchRunsChangeSetsWithContentIDReferences(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	bb := newBatch().
		changeSet("changeset_BBB456",
			[4]string{"POST", "/api/data/v9.2/accounts", `{"name":"Batch account"}`, "1"},
			[4]string{"POST", env.api.URL + "/api/data/v9.2/contacts", `{"lastname":"Batch","parentcustomerid_account@odata.bind":"$1"}`, "2"},
			[4]string{"PATCH", "$2", `{"firstname":"X"}`, "3"},
		).
		op("GET", "/api/data/v9.2/contacts?$select=fullname", "")
	r := env.mustStatus(env.call(http.MethodPost, "$batch", bb.body(), "Content-Type", bb.contentType()), http.StatusOK)
	parts := parseBatchResponse(t, r)
	if len(parts) != 4 {
		t.Fatalf("%d parts:\n%s", len(parts), r.raw)
	}
	for i, p := range parts[:3] {
		if p.status != http.StatusNoContent || p.contentID != fmt.Sprint(i+1) || p.changeSet != 0 {
			t.Errorf("change set part %d: %+v", i, p)
		}
		if !strings.HasPrefix(p.header.Get("OData-EntityId"), env.api.URL+"/api/data/v9.2/") || p.header.Get("Location") == "" {
			t.Errorf("part %d headers: %v", i, p.header)
		}
	}
	if parts[3].status != http.StatusOK || !strings.Contains(parts[3].body, `"fullname":"X Batch"`) || parts[3].changeSet != -1 {
		t.Errorf("GET part: %+v", parts[3])
	}
	contacts, _ := env.emu.Rows("contact", "", 0)
	accounts, _ := env.emu.Rows("account", "", 0)
	if len(contacts) != 1 || len(accounts) != 1 || contacts[0]["parentcustomerid"] != accounts[0]["accountid"] {
		t.Fatalf("rows: %v %v", contacts, accounts)
	}
	c := env.emu.Counters()
	if c["batch"] != 1 || c["batch_operations"] != 4 || c["single_write"] != 0 || c["read"] != 0 {
		t.Errorf("counters = %v", c)
	}
}

// Spec 4.8: with Prefer: odata.continue-on-error a failing change set is rolled back as one error part and
// the batch goes on (200); without it the batch stops at the failure and answers with its status, holding
// only the failing part.
func TestBatchContinueOnErrorAndStopOnFirstFailure(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	build := func() *batchBuilder {
		return newBatch().
			changeSet("changeset_ok", [4]string{"PATCH", "/api/data/v9.2/contacts(" + guidA + ")", `{"lastname":"A"}`, "1"}).
			changeSet("changeset_bad",
				[4]string{"PATCH", "/api/data/v9.2/contacts(" + guidB + ")", `{"lastname":"B"}`, "1"},
				[4]string{"PATCH", "/api/data/v9.2/contacts(" + guidC + ")", `{"lastname":"` + strings.Repeat("c", 51) + `"}`, "2"}).
			op("PATCH", "/api/data/v9.2/accounts("+guidA+")", `{"name":"After"}`)
	}
	bb := build()
	r := env.mustStatus(env.call(http.MethodPost, "$batch", bb.body(), "Content-Type", bb.contentType(), "Prefer", "odata.continue-on-error"), http.StatusOK)
	parts := parseBatchResponse(t, r)
	if len(parts) != 3 || parts[0].status != 204 || parts[1].status != 400 || parts[1].contentID != "2" || parts[2].status != 204 {
		t.Fatalf("parts: %+v\n%s", parts, r.raw)
	}
	if !strings.Contains(parts[1].body, `"code":"0x80044331"`) {
		t.Errorf("error part body: %s", parts[1].body)
	}
	if _, err := env.emu.Row("contact", guidB); err == nil {
		t.Fatal("the failed change set's first part was not rolled back")
	}
	if _, err := env.emu.Row("account", guidA); err != nil {
		t.Fatal("the operation after the failed change set did not run")
	}

	if err := env.emu.Reset(); err != nil {
		t.Fatal(err)
	}
	bb = build()
	r = env.call(http.MethodPost, "$batch", bb.body(), "Content-Type", bb.contentType())
	if r.status != http.StatusBadRequest {
		t.Fatalf("without continue-on-error: status %d\n%s", r.status, r.raw)
	}
	parts = parseBatchResponse(t, r)
	if len(parts) != 1 || parts[0].status != 400 {
		t.Fatalf("without continue-on-error: parts %+v", parts)
	}
	if _, err := env.emu.Row("contact", guidA); err != nil {
		t.Error("the change set before the failure was lost")
	}
	if _, err := env.emu.Row("account", guidA); err == nil {
		t.Error("processing continued after the failure")
	}
}

// Spec 4.8: change-set parts need Content-ID, GET is not allowed inside a change set, and a reference to an
// undeclared Content-ID fails; each failure rolls its change set back.
func TestBatchChangeSetRules(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	cases := []struct {
		name string
		cs   [][4]string
		msg  string
	}{
		{"missing Content-ID", [][4]string{{"POST", "/api/data/v9.2/contacts", `{"lastname":"x"}`, ""}}, "Content-ID header not present"},
		{"GET in a change set", [][4]string{{"POST", "/api/data/v9.2/contacts", `{"lastname":"x"}`, "1"}, {"GET", "/api/data/v9.2/contacts", "", "2"}}, "GET"},
		{"undeclared reference", [][4]string{{"POST", "/api/data/v9.2/contacts", `{"lastname":"x"}`, "1"}, {"PATCH", "$7", `{"firstname":"y"}`, "2"}}, "Content-ID Reference: '$7' does not exist in the batch context."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bb := newBatch().changeSet("changeset_x", tc.cs...)
			r := env.call(http.MethodPost, "$batch", bb.body(), "Content-Type", bb.contentType())
			parts := parseBatchResponse(t, r)
			if r.status != http.StatusBadRequest || len(parts) != 1 || !strings.Contains(parts[0].body, tc.msg) {
				t.Fatalf("%d %+v", r.status, parts)
			}
			if n, _ := env.emu.Count("contact"); n != 0 {
				t.Fatal("the failed change set left rows")
			}
		})
	}
}

// Spec 4.8: at most 1,000 operations per batch; exactly 1,000 is accepted.
func TestBatchAcceptsAThousandOperations(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	bb := newBatch()
	for i := 0; i < maxBatchOperations; i++ {
		bb.op("PATCH", fmt.Sprintf("/api/data/v9.2/contacts(00000000-0000-4000-8000-%012d)", i), `{"lastname":"n"}`)
	}
	r := env.mustStatus(env.call(http.MethodPost, "$batch", bb.body(), "Content-Type", bb.contentType()), http.StatusOK)
	if parts := parseBatchResponse(t, r); len(parts) != maxBatchOperations {
		t.Fatalf("%d parts", len(parts))
	}
	if n, _ := env.emu.Count("contact"); n != maxBatchOperations {
		t.Fatalf("count = %d", n)
	}
}
