package agent_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/crmsync/terraform-provider-crmsync/internal/api"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent/localstore"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	sbdataverse "github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
)

// newEnvUsers is an env whose Dataverse environment has n application users, all of them in the agent's
// configuration: the first as client_id, the second by secret file, the others inline.
func newEnvUsers(t *testing.T, contacts, accounts, n int) *env {
	t.Helper()
	e := newEnvWith(t, sandbox.Options{Contacts: contacts, Accounts: accounts, Dataverse: sbdataverse.Config{ApplicationUsers: n - 1}})
	for i, u := range e.sb.Info.Dataverse.ApplicationUsers {
		au := api.DataverseApplicationUser{ClientID: u.ClientID, ClientSecret: u.ClientSecret}
		if i == 0 {
			au = api.DataverseApplicationUser{ClientID: u.ClientID, ClientSecretFile: u.ClientSecretFile}
		}
		e.cfg.Dataverse.AdditionalUsers = append(e.cfg.Dataverse.AdditionalUsers, au)
	}
	return e
}

// createdBy counts a table's rows by the systemuser that created them.
func (e *env) createdBy(t *testing.T, table string) map[string]int {
	t.Helper()
	rows, err := e.sb.Dataverse.Rows(table, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range rows {
		if id, _ := r["createdby"].(string); id != "" {
			out[id]++
		}
	}
	return out
}

// An agent configured with three application users loads and streams through all of
// them — every user creates a share of the rows, under a request budget no single user could meet in time —
// and Dataverse ends equal to Salesforce.
func TestAnAgentWritesThroughEveryApplicationUser(t *testing.T) {
	e := newEnvUsers(t, 3000, 300, 3)
	// Small batches and a small request budget per user: 40 requests per minute each. One user would need
	// minutes for the ~40 requests of the load and then throttle for a minute; three share them.
	e.cfg.Tuning.BatchSize = 100
	e.sb.Dataverse.SetLimits(sbdataverse.Limits{Requests: 40, Window: sbdataverse.Duration(time.Minute)})
	r := e.start(t, "")
	e.settle(t, r, 2*time.Minute)
	if _, err := e.sb.Salesforce.Mutate("Contact", 50, ""); err != nil {
		t.Fatal(err)
	}
	e.settle(t, r, 2*time.Minute)
	e.compareAll(t, nil)

	users := map[string]bool{e.sb.Dataverse.ApplicationUserID(): true}
	for _, u := range e.sb.Info.Dataverse.ApplicationUsers {
		users[u.UserID] = true
	}
	by := e.createdBy(t, "contact")
	total := 0
	for id, n := range by {
		if !users[id] {
			t.Errorf("%d contacts created by %s, not one of the application users", n, id)
		}
		total += n
	}
	for id := range users {
		if by[id] < total/10 {
			t.Errorf("application user %s created %d of %d contacts: the writes were not spread (%v)", id, by[id], total, by)
		}
	}
	if early := e.sb.Dataverse.EarlyRetries(); early != 0 {
		t.Errorf("%d requests came before their user's Retry-After expired", early)
	}

	// The status and the metrics show each user's share.
	st := r.a.Status()
	if len(st.ApplicationUsers) != 3 || st.ApplicationUsers[0].ClientID != e.cfg.Dataverse.ClientID {
		t.Fatalf("status application_users: %+v", st.ApplicationUsers)
	}
	var sum int64
	for _, u := range st.ApplicationUsers {
		if u.Requests == 0 || u.RemainingRequests == nil || u.RemainingExecutionSeconds == nil {
			t.Errorf("user %s: %+v", u.ClientID, u)
		}
		sum += u.Requests
	}
	if sum != st.DataverseCalls {
		t.Errorf("the users' requests add up to %d, the agent's to %d", sum, st.DataverseCalls)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(agent.NewCollector(r.a.ConnectorName(), r.a.Status))
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	perUser := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "crmsync_dataverse_user_requests_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "client_id" {
					perUser[l.GetValue()] = m.GetCounter().GetValue()
				}
			}
		}
	}
	for _, u := range st.ApplicationUsers {
		if perUser[u.ClientID] == 0 {
			t.Errorf("crmsync_dataverse_user_requests_total{client_id=%q} = %v", u.ClientID, perUser[u.ClientID])
		}
	}
}

// The standalone configuration names the additional users like the API; a secret the agent cannot
// read stops it at start, naming the user's field.
func TestTheConfigFileNamesAdditionalUsersAndAMissingSecretIsNamed(t *testing.T) {
	e := newEnvUsers(t, 10, 0, 2)
	dir := t.TempDir()
	path := filepath.Join(dir, "agent.yaml")
	u := e.sb.Info.Dataverse.ApplicationUsers[0]
	missing := filepath.Join(dir, "absent-secret")
	yaml := strings.Join([]string{
		"connector: standalone",
		"team_id: " + e.cfg.TeamID,
		"salesforce:",
		"  login_url: " + e.cfg.Salesforce.LoginURL,
		"  auth: jwt_bearer",
		"  client_id: " + e.cfg.Salesforce.ClientID,
		"  username: " + e.cfg.Salesforce.Username,
		"  private_key_file: " + e.cfg.Salesforce.PrivateKeyFile,
		"  pubsub_addr: " + e.cfg.Salesforce.PubSubAddr,
		"  ca_file: " + e.cfg.Salesforce.CAFile,
		"dataverse:",
		"  environment_url: " + e.cfg.Dataverse.EnvironmentURL,
		"  authority_url: " + e.cfg.Dataverse.AuthorityURL,
		"  tenant_id: " + e.cfg.Dataverse.TenantID,
		"  client_id: " + e.cfg.Dataverse.ClientID,
		"  client_secret: " + e.cfg.Dataverse.ClientSecret,
		"  ca_file: " + e.cfg.Dataverse.CAFile,
		"  additional_application_users:",
		"    - client_id: " + u.ClientID,
		"      client_secret_file: " + missing,
		"tables:",
		"  - source_table: Contact",
		"    use_predefined_mappings: true",
	}, "\n") + "\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := agent.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Dataverse.AdditionalUsers) != 1 || cfg.Dataverse.AdditionalUsers[0].ClientSecretFile != missing {
		t.Fatalf("additional users read: %+v", cfg.Dataverse.AdditionalUsers)
	}
	store, err := localstore.Open(filepath.Join(dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	_, err = agent.New(*cfg, agent.Stores{Checkpoints: store, DeadLetters: store, Reporter: store}, nil)
	if err == nil || !strings.Contains(err.Error(), "dataverse.additional_application_users[0].client_secret_file") {
		t.Errorf("a missing secret file: err = %v, want it named", err)
	}
}
