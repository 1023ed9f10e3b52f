package fidelity

import (
	"bytes"
	"encoding/binary"
	"log"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/developerforce/pub-sub-api/go/common"
	"github.com/developerforce/pub-sub-api/go/grpcclient"
	"github.com/developerforce/pub-sub-api/go/proto"
)

// syncBuffer collects the client's log output (it reports every event it decodes with log.Printf).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Salesforce's Go Pub/Sub API client (developerforce/pub-sub-api/go), configured through its common
// package as its README says: OAuth (its client-credentials variant), userinfo, GetTopic, GetSchema, and
// Subscribe from EARLIEST with flow control, decoding every event with goavro — a different Avro library
// from the sandbox's. The events include a merged one (one UPDATE of three accounts) and its replay ID is
// the one the client returns when the stream ends.
func TestOfficialPubSubClientSubscribes(t *testing.T) {
	common.GRPCEndpoint = sb.Salesforce.PubSubAddr
	common.OAuthEndpoint = sb.Salesforce.InstanceURL
	common.GrantType = "client_credentials"
	common.ClientId, common.ClientSecret = sb.Salesforce.ClientID, sb.Salesforce.ClientSecret
	common.TopicName = "/data/AccountChangeEvent"
	common.Appetite = 2 // re-requests after every event or two: exercises flow control
	common.GRPCDialTimeout, common.GRPCCallTimeout, common.OAuthDialTimeout = 30*time.Second, 30*time.Second, 30*time.Second

	// Changes first: a new account, then one update of the same field on three accounts.
	name := unique("PubSub")
	var created struct {
		IDs       [][]string `json:"ids"`
		ReplayIDs []uint64   `json:"replay_ids"`
	}
	admin(t, "POST", "/salesforce/transaction", map[string]any{"operations": []map[string]any{
		{"op": "create", "object": "Account", "records": []map[string]any{{"Name": name + " A"}, {"Name": name + " B"}, {"Name": name + " C"}}}}}, &created)
	var updated struct {
		ReplayIDs []uint64 `json:"replay_ids"`
	}
	admin(t, "POST", "/salesforce/transaction", map[string]any{"operations": []map[string]any{
		{"op": "update", "object": "Account", "ids": created.IDs[0], "fields": map[string]any{"Description": name + " merged"}}}}, &updated)
	if len(updated.ReplayIDs) != 1 {
		t.Fatalf("the update of three accounts made %d events, want one merged event", len(updated.ReplayIDs))
	}

	var logs syncBuffer
	log.SetOutput(&logs)
	t.Cleanup(func() { log.SetOutput(os.Stderr) })

	client, err := grpcclient.NewGRPCClient()
	if err != nil {
		t.Fatalf("NewGRPCClient: %v", err)
	}
	if err := client.Authenticate(); err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if err := client.FetchUserInfo(); err != nil {
		t.Fatalf("FetchUserInfo: %v", err)
	}
	topic, err := client.GetTopic()
	if err != nil || !topic.GetCanSubscribe() || topic.GetCanPublish() || topic.GetSchemaId() == "" {
		t.Fatalf("GetTopic: %v %+v", err, topic)
	}
	schema, err := client.GetSchema(topic.GetSchemaId())
	if err != nil || !strings.Contains(schema.GetSchemaJson(), "AccountChangeEvent") {
		t.Fatalf("GetSchema: %v", err)
	}

	type subscribed struct {
		replay []byte
		err    error
	}
	done := make(chan subscribed, 1)
	go func() {
		r, err := client.Subscribe(proto.ReplayPreset_EARLIEST, nil)
		done <- subscribed{r, err}
	}()
	want := 4 // three creates and the merged update
	deadline := time.Now().Add(time.Minute)
	for strings.Count(logs.String(), "event body:") < want && time.Now().Before(deadline) {
		select {
		case s := <-done:
			t.Fatalf("Subscribe ended early: %v\n%s", s.err, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	out := logs.String()
	if n := strings.Count(out, "event body:"); n < want {
		t.Fatalf("the client decoded %d events in a minute, want %d:\n%s", n, want, out)
	}
	if !strings.Contains(out, name+" merged") || !strings.Contains(out, name+" B") {
		t.Errorf("decoded events lack the changed values:\n%s", out)
	}
	for _, id := range created.IDs[0] {
		if strings.Count(out, id) < 2 { // in its CREATE and in the merged UPDATE's recordIds
			t.Errorf("record %s is not in both its CREATE and the merged UPDATE:\n%s", id, out)
		}
	}
	client.Close()
	select {
	case s := <-done:
		if len(s.replay) != 8 || binary.BigEndian.Uint64(s.replay) != updated.ReplayIDs[0] {
			t.Errorf("Subscribe returned replay ID %x (%v), want the merged event's %d", s.replay, s.err, updated.ReplayIDs[0])
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Subscribe did not return after Close")
	}
}
