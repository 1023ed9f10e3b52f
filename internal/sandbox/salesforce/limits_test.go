package salesforce

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
)

// Spec 2.4 and 2.5: the daily API budget is counted on every REST and Bulk call, enforced with 403
// REQUEST_LIMIT_EXCEEDED, and freed as the rolling 24 hours pass.
func TestDailyAPIBudgetIsEnforcedOverARollingDay(t *testing.T) {
	o := newTestOrg(t, 0, 0, func(c *Config) { c.APIRequestsMax = 3; c.TokenLifetime = 48 * time.Hour })
	paths := []string{"/services/data/v62.0/limits", "/services/data/v62.0/query?q=SELECT+Id+FROM+Contact", jobsPath}
	for i, p := range paths {
		resp, body := o.do(http.MethodGet, p, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("call %d: %d %s", i+1, resp.StatusCode, body)
		}
		if got, want := resp.Header.Get("Sforce-Limit-Info"), "api-usage="+string(rune('1'+i))+"/3"; got != want {
			t.Errorf("call %d Sforce-Limit-Info = %q, want %q", i+1, got, want)
		}
	}
	resp, body := o.do(http.MethodGet, "/services/data/v62.0/limits", nil)
	e := restErr(t, body)
	if resp.StatusCode != http.StatusForbidden || e.ErrorCode != "REQUEST_LIMIT_EXCEEDED" || e.Message != "TotalRequests Limit exceeded." {
		t.Errorf("call over the budget: %d %s", resp.StatusCode, body)
	}
	if u := o.e.LimitUsage().APIRequests; u.Used != 3 || u.Max != 3 {
		t.Errorf("usage = %+v; refused calls must not count", u)
	}
	o.clock.Advance(24*time.Hour + time.Minute)
	if resp, body := o.do(http.MethodGet, "/services/data/v62.0/limits", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("a day later: %d %s", resp.StatusCode, body)
	}
	if c := o.e.Counters(); c["rest.limits"] != 2 || c["rest.query"] != 1 || c["bulk.list_jobs"] != 1 || c["oauth.token"] != 1 {
		t.Errorf("counters = %v", c)
	}
}

// Spec 2.4 and 5.6: /limits reports the counted limits with Max and Remaining; the delivery allocation
// refuses deliveries beyond its maximum.
func TestLimitsReportTheCountedAllocations(t *testing.T) {
	o := newTestOrg(t, 0, 0, func(c *Config) { c.DeliveredEventsMax = 10 })
	alloc := pubsubAllocation{o.e}
	if !alloc.ConsumeDeliveries(7) || alloc.ConsumeDeliveries(4) || !alloc.ConsumeDeliveries(3) || alloc.ConsumeDeliveries(1) {
		t.Error("the allocation of 10 did not admit 7 + 3 and refuse the rest")
	}
	_, body := o.do(http.MethodGet, "/services/data/v62.0/limits", nil)
	var limits map[string]map[string]int64
	mustJSON(t, body, &limits)
	if d := limits["DailyDeliveredPlatformEvents"]; d["Max"] != 10 || d["Remaining"] != 0 {
		t.Errorf("DailyDeliveredPlatformEvents = %v", d)
	}
	if a := limits["DailyApiRequests"]; a["Max"] != 1_000_000 || a["Remaining"] != 1_000_000-1 {
		t.Errorf("DailyApiRequests = %v", a)
	}
	for _, k := range []string{"DailyBulkApiBatches", "DailyBulkV2QueryJobs", "DailyBulkV2QueryFileStorageMB", "DataStorageMB", "FileStorageMB", "HourlyPublishedPlatformEvents"} {
		if _, ok := limits[k]["Max"]; !ok {
			t.Errorf("/limits lacks %s", k)
		}
	}
	o.clock.Advance(25 * time.Hour)
	if !alloc.ConsumeDeliveries(10) {
		t.Error("the delivery allocation was not freed after a day")
	}
}

// Spec 6.3: the Pub/Sub metadata must carry a live token, this org's instance URL and its Id (15 or 18
// characters).
func TestPubSubAuthenticatorChecksTokenInstanceAndTenant(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	auth := pubsubAuth{o.e}
	tok, org := o.token(), o.e.cfg.OrgID
	ctx := context.Background()
	if err := auth.Authenticate(ctx, tok, o.instance.URL, org); err != nil {
		t.Errorf("valid metadata: %v", err)
	}
	if err := auth.Authenticate(ctx, tok, o.instance.URL+"/", org[:15]); err != nil {
		t.Errorf("15-character tenant id: %v", err)
	}
	for name, args := range map[string][3]string{
		"bad token":        {"nope", o.instance.URL, org},
		"other instance":   {tok, "https://other.my.salesforce.com", org},
		"other tenant":     {tok, o.instance.URL, "00D000000000001AAA"},
		"empty everything": {"", "", ""},
	} {
		if err := auth.Authenticate(ctx, args[0], args[1], args[2]); err == nil {
			t.Errorf("%s was accepted", name)
		}
	}
}

// Spec 3: Ids are <prefix><instance><reserved><9 base-62 counter> plus the case-safe suffix, and Ids of
// one prefix sort as strings in issue order (ORDER BY Id and Id > X paging rely on it).
func TestIssuedIdsFollowTheSpecLayoutAndSortInIssueOrder(t *testing.T) {
	prev := ""
	for _, n := range []uint64{1, 9, 10, 35, 36, 61, 62, 63, 3843, 3844, 1 << 40} {
		id := makeID(prefixContact, n)
		if len(id) != 18 || !strings.HasPrefix(id, "003"+idInstance+idReserved) || id[15:] != sfid.Suffix(id[:15]) {
			t.Errorf("makeID(003, %d) = %s", n, id)
		}
		if id <= prev {
			t.Errorf("makeID(003, %d) = %s does not sort after %s", n, id, prev)
		}
		prev = id
	}
	o := newTestOrg(t, 3, 2)
	if org := o.e.cfg.OrgID; !strings.HasPrefix(org, "00D") || !sfid.Valid(org) || len(org) != 18 {
		t.Errorf("org Id %s", org)
	}
	if u := o.e.UserID(); !strings.HasPrefix(u, "005") || !sfid.Valid(u) {
		t.Errorf("user Id %s", u)
	}
}
