package chaos_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	eventbusv1 "github.com/crmsync/terraform-provider-crmsync/internal/proto/eventbus/v1"
	sfclient "github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
)

// TestWriteFuzzSeedCorpora regenerates the committed seed corpora of the fuzz targets from what the sandbox
// really sends: change event payloads and their schema (FuzzChangeEventDecode), Bulk results pages
// (FuzzReadCSV), $batch requests (the emulator's FuzzParseBatchRequest) and $batch answers
// (FuzzParseBatchResponse). It runs only with CRMSYNC_WRITE_FUZZ_CORPORA=1 and writes into the source tree.
func TestWriteFuzzSeedCorpora(t *testing.T) {
	if os.Getenv("CRMSYNC_WRITE_FUZZ_CORPORA") != "1" {
		t.Skip("set CRMSYNC_WRITE_FUZZ_CORPORA=1 to regenerate the fuzz seed corpora")
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: t.TempDir(), Plaintext: true, Contacts: 12, Accounts: 4, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	info := sb.Info
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	sf, err := sfclient.New(sfclient.Config{LoginURL: info.Salesforce.LoginURL, InstanceURL: info.Salesforce.InstanceURL,
		Auth: sfclient.AuthJWTBearer, ClientID: info.Salesforce.ClientID, Username: info.Salesforce.Username, PrivateKeyPEM: info.Salesforce.PrivateKeyPEM})
	if err != nil {
		t.Fatal(err)
	}
	sess, err := sf.Session(ctx)
	if err != nil {
		t.Fatal(err)
	}

	// Change events: subscribe raw, make one change of every kind, keep the payloads.
	conn, err := grpc.NewClient(info.Salesforce.PubSubAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ps := eventbusv1.NewPubSubClient(conn)
	actx := metadata.AppendToOutgoingContext(ctx, "accesstoken", sess.AccessToken, "instanceurl", sess.InstanceURL, "tenantid", sess.OrgID)
	stream, err := ps.Subscribe(actx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&eventbusv1.FetchRequest{TopicName: "/data/ContactChangeEvent", ReplayPreset: eventbusv1.ReplayPreset_EARLIEST, NumRequested: 100}); err != nil {
		t.Fatal(err)
	}
	es := sb.Salesforce
	created, err := es.Transact(salesforce.Transaction{Operations: []salesforce.Operation{{Op: "create", Object: "Contact", Fields: map[string]any{
		"FirstName": "Zoë", "LastName": "Ñúñez 👨‍👩‍👧", "Email": "zoe@example.com", "Birthdate": "1753-01-01", "MailingCity": "Łódź",
		"Description": "line one\nline \"two\", with, commas"}}}})
	if err != nil {
		t.Fatal(err)
	}
	id := created.IDs[0][0]
	steps := []salesforce.Operation{
		{Op: "update", Object: "Contact", ID: id, Fields: map[string]any{"LastName": "Renamed", "Phone": nil, "MailingStreet": "1 Main St"}},
		{Op: "update", Object: "Contact", ID: id, Fields: map[string]any{"Birthdate": "2000-02-29", "Department": nil}},
		{Op: "delete", Object: "Contact", ID: id},
		{Op: "undelete", Object: "Contact", IDs: []string{id}},
	}
	for _, op := range steps {
		if _, err := es.Transact(salesforce.Transaction{Operations: []salesforce.Operation{op}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := es.InjectGap(salesforce.GapRequest{Object: "Contact", ChangeType: "GAP_UPDATE", IDs: []string{id}}); err != nil {
		t.Fatal(err)
	}
	if _, err := es.InjectOverflow("Contact"); err != nil {
		t.Fatal(err)
	}
	var payloads [][]byte
	schemaID := ""
	for len(payloads) < 7 {
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range resp.GetEvents() {
			payloads = append(payloads, ev.GetEvent().GetPayload())
			schemaID = ev.GetEvent().GetSchemaId()
		}
	}
	si, err := ps.GetSchema(actx, &eventbusv1.SchemaRequest{SchemaId: schemaID})
	if err != nil {
		t.Fatal(err)
	}
	sfDir := filepath.Join(root, "internal", "runtime", "source", "salesforce", "testdata")
	writeFile(t, filepath.Join(sfDir, "contact-change-event.avsc"), []byte(si.GetSchemaJson()))
	for _, p := range payloads {
		writeSeed(t, filepath.Join(sfDir, "fuzz", "FuzzChangeEventDecode"), fmt.Sprintf("[]byte(%q)", p))
	}

	// Bulk results pages.
	job, err := sf.CreateQueryJob(ctx, "SELECT Id, FirstName, LastName, Email, Birthdate, Description, AccountId, Account.Name FROM Contact", true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sf.WaitQueryJob(ctx, job.ID); err != nil {
		t.Fatal(err)
	}
	for _, max := range []string{"5", "100"} {
		u := sess.InstanceURL + "/services/data/v" + info.Salesforce.APIVersion + "/jobs/query/" + job.ID + "/results?maxRecords=" + max
		page := get(t, ctx, u, "Bearer "+sess.AccessToken)
		writeSeed(t, filepath.Join(sfDir, "fuzz", "FuzzReadCSV"), fmt.Sprintf("[]byte(%q)", page))
	}

	// $batch: a request of upserts, an update of a missing row, a delete and a bad row, and its answer.
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {info.Dataverse.ClientID},
		"client_secret": {info.Dataverse.ClientSecret}, "scope": {info.Dataverse.EnvironmentURL + "/.default"}}
	tokResp := post(t, ctx, info.Dataverse.AuthorityURL+"/"+info.Dataverse.TenantID+"/oauth2/v2.0/token", "application/x-www-form-urlencoded", "", []byte(form.Encode()), nil)
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(tokResp.body, &tok); err != nil {
		t.Fatal(err)
	}
	ctype, body := batchRequest(info.Dataverse.TeamID)
	dvDir := filepath.Join(root, "internal", "sandbox", "dataverse", "testdata", "fuzz", "FuzzParseBatchRequest")
	writeSeed(t, dvDir, fmt.Sprintf("string(%q)\n[]byte(%q)", ctype, body))
	resp := post(t, ctx, info.Dataverse.EnvironmentURL+"/api/data/v9.2/$batch", ctype, "Bearer "+tok.AccessToken, body,
		http.Header{"Prefer": {"odata.continue-on-error"}, "Odata-Version": {"4.0"}, "Accept": {"application/json"}})
	sinkDir := filepath.Join(root, "internal", "runtime", "sink", "dataverse", "testdata", "fuzz", "FuzzParseBatchResponse")
	writeSeed(t, sinkDir, fmt.Sprintf("string(%q)\n[]byte(%q)\nint(4)", resp.ctype, resp.body))
	// Without continue-on-error the first failure ends the batch with that part alone.
	resp = post(t, ctx, info.Dataverse.EnvironmentURL+"/api/data/v9.2/$batch", ctype, "Bearer "+tok.AccessToken, body,
		http.Header{"Odata-Version": {"4.0"}, "Accept": {"application/json"}})
	writeSeed(t, sinkDir, fmt.Sprintf("string(%q)\n[]byte(%q)\nint(4)", resp.ctype, resp.body))
}

// batchRequest builds a $batch in the shape crmsync's client sends: one change set per operation.
func batchRequest(teamID string) (string, []byte) {
	ops := []string{
		"PATCH /api/data/v9.2/contacts(11111111-2222-4333-8444-555555555555) HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n" +
			`{"lastname":"Lovelace","firstname":"Ada","ownerid@odata.bind":"/teams(` + teamID + `)"}`,
		"PATCH /api/data/v9.2/contacts(11111111-2222-4333-8444-666666666666) HTTP/1.1\r\nContent-Type: application/json; type=entry\r\nIf-Match: *\r\n\r\n" +
			`{"telephone1":"555-0100"}`,
		"DELETE /api/data/v9.2/contacts(11111111-2222-4333-8444-777777777777) HTTP/1.1\r\n\r\n",
		"PATCH /api/data/v9.2/contacts(11111111-2222-4333-8444-888888888888) HTTP/1.1\r\nContent-Type: application/json; type=entry\r\n\r\n" +
			`{"lastname":"` + strings.Repeat("x", 60) + `","ownerid@odata.bind":"/teams(` + teamID + `)"}`,
	}
	var b bytes.Buffer
	for i, op := range ops {
		cs := fmt.Sprintf("changeset_%d", i+1)
		fmt.Fprintf(&b, "--batch_seed\r\nContent-Type: multipart/mixed; boundary=%s\r\n\r\n", cs)
		fmt.Fprintf(&b, "--%s\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\nContent-ID: %d\r\n\r\n%s\r\n--%s--\r\n", cs, i+1, op, cs)
	}
	b.WriteString("--batch_seed--\r\n")
	return "multipart/mixed; boundary=batch_seed", b.Bytes()
}

type answer struct {
	ctype string
	body  []byte
}

func post(t *testing.T, ctx context.Context, u, ctype, auth string, body []byte, hdr http.Header) answer {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = hdr.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Content-Type", ctype)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return answer{ctype: resp.Header.Get("Content-Type"), body: b}
}

func get(t *testing.T, ctx context.Context, u, auth string) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", auth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v %s", u, resp.StatusCode, err, b)
	}
	return b
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeSeed writes one seed in the go test fuzz v1 format, named by its content's hash as go does.
func writeSeed(t *testing.T, dir, values string) {
	t.Helper()
	content := "go test fuzz v1\n" + values + "\n"
	sum := sha256.Sum256([]byte(content))
	writeFile(t, filepath.Join(dir, "sandbox-"+hex.EncodeToString(sum[:8])), []byte(content))
}
