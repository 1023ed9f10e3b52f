package dataverse_test

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/sink/dataverse"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox"
	dvemu "github.com/crmsync/terraform-provider-crmsync/internal/sandbox/dataverse"
)

// startUsers starts a sandbox whose environment has n application users and a client that signs in as
// every one of them.
func startUsers(t *testing.T, n int, limits dvemu.Limits) (*sandbox.Sandbox, *dataverse.Client) {
	t.Helper()
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sb"),
		Dataverse: dvemu.Config{ApplicationUsers: n - 1, Limits: limits}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	i := sb.Info.Dataverse
	var more []dataverse.Credentials
	for _, u := range i.ApplicationUsers {
		more = append(more, dataverse.Credentials{ClientID: u.ClientID, ClientSecret: u.ClientSecret})
	}
	c, err := dataverse.New(dataverse.Config{EnvironmentURL: i.EnvironmentURL, AuthorityURL: i.AuthorityURL, TenantID: i.TenantID,
		ClientID: i.ClientID, ClientSecret: i.ClientSecret, MoreUsers: more, CAFile: i.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	return sb, c
}

// writeConcurrently writes n bulk requests of size rows each, k at a time, within ctx.
func writeConcurrently(ctx context.Context, t *testing.T, c *dataverse.Client, team string, n, size, k int) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, k)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- c.Bulk(ctx, dataverse.UpsertMultiple, "contact", "contacts", rows(team, size, i*size))
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// createdBy counts the rows of contact by the systemuser that wrote them.
func createdBy(t *testing.T, sb *sandbox.Sandbox) map[string]int {
	t.Helper()
	all, err := sb.Dataverse.Rows("contact", "", 100000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range all {
		if id, _ := r["createdby"].(string); id != "" {
			out[id]++
		}
	}
	return out
}

// A client given several application users sends its requests as all of them, each signed in
// with its own token: the rows are created by every user, and each user's share is about even.
func TestRequestsSpreadOverEveryApplicationUser(t *testing.T) {
	sb, c := startUsers(t, 3, dvemu.Limits{})
	writeConcurrently(t.Context(), t, c, sb.Info.Dataverse.TeamID, 30, 10, 6)
	by := createdBy(t, sb)
	want := map[string]bool{sb.Dataverse.ApplicationUserID(): true}
	for _, u := range sb.Info.Dataverse.ApplicationUsers {
		want[u.UserID] = true
	}
	for id := range want {
		if by[id] < 30 { // 300 rows over 3 users: each wrote at least a third of its fair share
			t.Errorf("user %s created %d rows; by user: %v", id, by[id], by)
		}
	}
	if len(by) != 3 {
		t.Errorf("rows created by %v, want the 3 application users", by)
	}
	var sent int64
	for _, u := range c.Users() {
		sent += u.Requests
		if u.RemainingTime <= 0 || u.RemainingRequests <= 0 {
			t.Errorf("user %s: the budget left is not tracked: %+v", u.ClientID, u)
		}
	}
	if sent != c.Stats.Get("requests") {
		t.Errorf("the users' requests add up to %d, the client's to %d", sent, c.Stats.Get("requests"))
	}
}

// A throttled application user's load moves to the others while its Retry-After holds, instead of
// every request waiting for it; no request reaches the service before its user's Retry-After has passed.
func TestAThrottledUsersLoadMovesToTheOthers(t *testing.T) {
	// Each user may send 5 requests per minute: 3 users, 12 requests. One user alone would wait a minute.
	sb, c := startUsers(t, 3, dvemu.Limits{Requests: 5, Window: dvemu.Duration(time.Minute)})
	// A user's Retry-After is about a minute; the writes must not wait for any of them.
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	writeConcurrently(ctx, t, c, sb.Info.Dataverse.TeamID, 12, 5, 2)
	if early := sb.Dataverse.EarlyRetries(); early != 0 {
		t.Errorf("%d requests arrived before their user's Retry-After expired", early)
	}
	if n, _ := sb.Dataverse.Count("contact"); n != 60 {
		t.Errorf("%d rows written, want 60", n)
	}
	for _, u := range c.Users() {
		if u.Requests > 5+u.Throttled {
			t.Errorf("user %s sent %d requests with %d throttled: more than its budget", u.ClientID, u.Requests, u.Throttled)
		}
	}
}
