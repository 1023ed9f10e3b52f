package sandbox

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"

	eventbusv1 "github.com/crmsync/terraform-provider-crmsync/internal/proto/eventbus/v1"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
)

func TestStartWritesSandboxJSONAndServesEveryEndpoint(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new-dir")
	started := time.Now()
	sb, err := Start(t.Context(), Options{Dir: dir, Contacts: 2500, Accounts: 300, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	t.Logf("started with 2,500 contacts and 300 accounts in %s", time.Since(started))

	info, err := ReadInfo(filepath.Join(dir, "sandbox.json"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	sections := map[string]map[string]any{}
	b, _ := os.ReadFile(filepath.Join(dir, "sandbox.json"))
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"salesforce", "dataverse"} {
		var m map[string]any
		if err := json.Unmarshal(raw[k], &m); err != nil {
			t.Fatalf("sandbox.json %s: %v", k, err)
		}
		sections[k] = m
	}
	if _, ok := raw["admin_url"]; !ok {
		t.Error("sandbox.json has no admin_url")
	}
	for _, k := range []string{"login_url", "instance_url", "pubsub_addr", "api_version", "org_id", "client_id", "client_secret", "username", "private_key_file", "ca_file"} {
		if v, _ := sections["salesforce"][k].(string); v == "" {
			t.Errorf("sandbox.json salesforce.%s is empty", k)
		}
	}
	for _, k := range []string{"environment_url", "authority_url", "tenant_id", "client_id", "client_secret", "team_id", "team_without_privileges_id", "ca_file"} {
		if v, _ := sections["dataverse"][k].(string); v == "" {
			t.Errorf("sandbox.json dataverse.%s is empty", k)
		}
	}
	if !strings.HasPrefix(info.Salesforce.OrgID, "00D") || info.Salesforce.APIVersion != salesforce.DefaultAPIVersion {
		t.Errorf("org %q, api version %q", info.Salesforce.OrgID, info.Salesforce.APIVersion)
	}
	for _, f := range []string{info.Salesforce.CAFile, info.Salesforce.PrivateKeyFile} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	if fi, _ := os.Stat(info.Salesforce.PrivateKeyFile); fi != nil && fi.Mode().Perm() != 0o600 {
		t.Errorf("the private key file is %v, want 0600", fi.Mode().Perm())
	}

	hc := sb.HTTPClient()
	// Salesforce client credentials on the instance host.
	resp, err := hc.PostForm(info.Salesforce.InstanceURL+"/services/oauth2/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {info.Salesforce.ClientID}, "client_secret": {info.Salesforce.ClientSecret}})
	if err != nil {
		t.Fatal(err)
	}
	var sfTok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&sfTok)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || sfTok.AccessToken == "" {
		t.Fatalf("Salesforce token: %d", resp.StatusCode)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, info.Salesforce.InstanceURL+"/services/data/v62.0/query?q="+url.QueryEscape("SELECT COUNT() FROM Contact"), nil)
	req.Header.Set("Authorization", "Bearer "+sfTok.AccessToken)
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var count struct {
		TotalSize int `json:"totalSize"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&count)
	resp.Body.Close()
	if count.TotalSize != 2500 {
		t.Errorf("SELECT COUNT() FROM Contact = %d, want 2500", count.TotalSize)
	}

	// Dataverse client credentials at {authority}/{tenant}/oauth2/v2.0/token, then WhoAmI.
	resp, err = hc.PostForm(info.Dataverse.AuthorityURL+"/"+info.Dataverse.TenantID+"/oauth2/v2.0/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {info.Dataverse.ClientID}, "client_secret": {info.Dataverse.ClientSecret},
		"scope": {info.Dataverse.EnvironmentURL + "/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	var dvTok struct {
		AccessToken string `json:"access_token"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&dvTok)
	resp.Body.Close()
	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, info.Dataverse.EnvironmentURL+"/api/data/v9.2/WhoAmI", nil)
	req.Header.Set("Authorization", "Bearer "+dvTok.AccessToken)
	resp, err = hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("WhoAmI: %d", resp.StatusCode)
	}

	// Pub/Sub over TLS with the generated CA.
	conn, err := grpc.NewClient(info.Salesforce.PubSubAddr, grpc.WithTransportCredentials(credentials.NewTLS(sb.ClientTLS())))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx := metadata.AppendToOutgoingContext(t.Context(), "accesstoken", sfTok.AccessToken, "instanceurl", info.Salesforce.InstanceURL, "tenantid", info.Salesforce.OrgID)
	topic, err := eventbusv1.NewPubSubClient(conn).GetTopic(ctx, &eventbusv1.TopicRequest{TopicName: "/data/ContactChangeEvent"})
	if err != nil {
		t.Fatal(err)
	}
	if !topic.GetCanSubscribe() || topic.GetSchemaId() == "" {
		t.Errorf("topic %+v", topic)
	}

	// The admin API answers and the clock advances.
	resp, err = hc.Post(info.AdminURL+"/clock/advance", "application/json", strings.NewReader(`{"duration":"1h"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || sb.Clock.Offset() != time.Hour {
		t.Errorf("clock advance: %d, offset %s", resp.StatusCode, sb.Clock.Offset())
	}
}

func TestInProcessSandboxLeavesNoFilesAndClosesItsPorts(t *testing.T) {
	cwd, _ := os.Getwd()
	before, _ := os.ReadDir(cwd)
	sb, err := Start(context.Background(), Options{Plaintext: true})
	if err != nil {
		t.Fatal(err)
	}
	if sb.Info.Salesforce.CAFile != "" || sb.Info.Salesforce.PrivateKeyFile != "" || len(sb.Info.Salesforce.PrivateKeyPEM) == 0 {
		t.Errorf("without Dir nothing is written and the key is in memory: %+v", sb.Info.Salesforce)
	}
	url := sb.Info.Salesforce.InstanceURL
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Errorf("plaintext instance URL %q", url)
	}
	sb.Close()
	sb.Close() // idempotent
	if _, err := http.Get(url + "/services/data/"); err == nil {
		t.Error("the instance still answers after Close")
	}
	after, _ := os.ReadDir(cwd)
	if len(after) != len(before) {
		t.Errorf("files appeared in %s", cwd)
	}
}

func TestFixedPortsFromAPortBase(t *testing.T) {
	base := 0
	for p := 47100; p < 47900 && base == 0; p += 10 {
		sb, err := Start(t.Context(), Options{PortBase: p, Plaintext: true})
		if err != nil {
			continue // ports taken: try another range
		}
		base = p
		want := []string{":" + itoa(p), ":" + itoa(p+1), ":" + itoa(p+2), ":" + itoa(p+3), ":" + itoa(p+4), ":" + itoa(p+5)}
		got := []string{sb.Info.Salesforce.LoginURL, sb.Info.Salesforce.InstanceURL, sb.Info.Salesforce.PubSubAddr, sb.Info.AdminURL, sb.Info.Dataverse.EnvironmentURL, sb.Info.Dataverse.AuthorityURL}
		for i := range want {
			if !strings.HasSuffix(got[i], want[i]) {
				t.Errorf("listener %d at %s, want port %s", i, got[i], want[i])
			}
		}
		sb.Close()
	}
	if base == 0 {
		t.Skip("no free block of six ports found")
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// A sandbox with several Dataverse application users lists the ones after the first in
// sandbox.json, each with its secret in a file of its own (0600), and each signs in as itself.
func TestSandboxJSONListsTheMoreApplicationUsers(t *testing.T) {
	dir := t.TempDir()
	sb, err := Start(t.Context(), Options{Dir: dir, Plaintext: true, Dataverse: dataverse.Config{ApplicationUsers: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	info, err := ReadInfo(filepath.Join(dir, "sandbox.json"))
	if err != nil {
		t.Fatal(err)
	}
	users := info.Dataverse.ApplicationUsers
	if len(users) != 2 {
		t.Fatalf("sandbox.json lists %d more application users, want 2: %+v", len(users), users)
	}
	for i, u := range users {
		b, err := os.ReadFile(u.ClientSecretFile)
		if err != nil || strings.TrimSpace(string(b)) != u.ClientSecret || u.ClientID == info.Dataverse.ClientID || u.UserID == "" {
			t.Errorf("user %d: %+v, secret file: %q, %v", i, u, b, err)
		}
		if fi, _ := os.Stat(u.ClientSecretFile); fi != nil && fi.Mode().Perm() != 0o600 {
			t.Errorf("user %d's secret file is %v, want 0600", i, fi.Mode().Perm())
		}
		resp, err := http.PostForm(info.Dataverse.AuthorityURL+"/"+info.Dataverse.TenantID+"/oauth2/v2.0/token", url.Values{
			"grant_type": {"client_credentials"}, "client_id": {u.ClientID}, "client_secret": {u.ClientSecret},
			"scope": {info.Dataverse.EnvironmentURL + "/.default"}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("user %d: token status %d", i, resp.StatusCode)
		}
	}
}
