package salesforce

import (
	"maps"
	"sync"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/clock"
)

// rollingCounter counts events over a rolling window (24 h for the daily limits) on the sandbox clock,
// in one-minute buckets, so advancing the clock past the window frees the budget as on a real org.
type rollingCounter struct {
	mu      sync.Mutex
	clock   *clock.Clock
	window  time.Duration
	buckets []bucket // ascending minute
	total   int64
}

type bucket struct {
	minute int64
	n      int64
}

func newRollingCounter(c *clock.Clock, window time.Duration) *rollingCounter {
	return &rollingCounter{clock: c, window: window}
}

func (rc *rollingCounter) pruneLocked() int64 {
	minute := rc.clock.Now().Unix() / 60
	oldest := minute - int64(rc.window/time.Minute) + 1
	i := 0
	for i < len(rc.buckets) && rc.buckets[i].minute < oldest {
		rc.total -= rc.buckets[i].n
		i++
	}
	rc.buckets = rc.buckets[i:]
	return minute
}

// tryAdd counts n more unless that would exceed max; it reports whether it counted.
func (rc *rollingCounter) tryAdd(n, max int64) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	minute := rc.pruneLocked()
	if rc.total+n > max {
		return false
	}
	if k := len(rc.buckets); k > 0 && rc.buckets[k-1].minute == minute {
		rc.buckets[k-1].n += n
	} else {
		rc.buckets = append(rc.buckets, bucket{minute: minute, n: n})
	}
	rc.total += n
	return true
}

// used returns the count within the window.
func (rc *rollingCounter) used() int64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.pruneLocked()
	return rc.total
}

func (rc *rollingCounter) reset() {
	rc.mu.Lock()
	rc.buckets, rc.total = nil, 0
	rc.mu.Unlock()
}

// counters counts API calls by kind (oauth.token, rest.query, bulk.results, pubsub.subscribe, ...).
type counters struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *counters) add(kind string, n int64) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]int64{}
	}
	c.m[kind] += n
	c.mu.Unlock()
}

func (c *counters) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.m)
}

func (c *counters) reset() {
	c.mu.Lock()
	c.m = map[string]int64{}
	c.mu.Unlock()
}

func (e *Emulator) count(kind string) { e.counters.add(kind, 1) }

// apiBudget counts one API request against the daily budget (spec 2.4, DailyApiRequests); ok is false
// when the budget is spent (nothing is counted then).
func (e *Emulator) apiBudget() (used, max int64, ok bool) {
	max = e.currentSettings().APIRequestsMax
	ok = e.apiRequests.tryAdd(1, max)
	return e.apiRequests.used(), max, ok
}

type limit struct {
	Max       int64 `json:"Max"`
	Remaining int64 `json:"Remaining"`
}

// limits is the /limits document (spec 2.4): the counted limits from the sandbox's counters, the others
// at the values of an untouched Enterprise org.
func (e *Emulator) limits() map[string]any {
	set := e.currentSettings()
	fixed := func(max int64) limit { return limit{Max: max, Remaining: max} }
	out := map[string]any{
		"ConcurrentAsyncGetReportInstances":           fixed(200),
		"ConcurrentSyncReportRuns":                    fixed(20),
		"DailyAsyncApexExecutions":                    fixed(250000),
		"DailyBulkApiBatches":                         fixed(15000),
		"DailyBulkV2QueryFileStorageMB":               fixed(976562),
		"DailyDurableGenericStreamingApiEvents":       fixed(10000),
		"DailyDurableStreamingApiEvents":              fixed(10000),
		"DailyGenericStreamingApiEvents":              fixed(10000),
		"DailyStandardVolumePlatformEvents":           fixed(10000),
		"DailyStreamingApiEvents":                     fixed(10000),
		"DailyWorkflowEmails":                         fixed(1000),
		"DataStorageMB":                               fixed(1024),
		"FileStorageMB":                               fixed(2048),
		"HourlyAsyncReportRuns":                       fixed(1200),
		"HourlyDashboardRefreshes":                    fixed(200),
		"HourlyDashboardResults":                      fixed(5000),
		"HourlyDashboardStatuses":                     fixed(999999999),
		"HourlyODataCallout":                          fixed(10000),
		"HourlyPublishedPlatformEvents":               fixed(250000),
		"HourlyPublishedStandardVolumePlatformEvents": fixed(1000),
		"HourlySyncReportRuns":                        fixed(500),
		"MassEmail":                                   fixed(5000),
		"PermissionSets":                              fixed(1500),
		"SingleEmail":                                 fixed(5000),
	}
	used := e.apiRequests.used()
	out["DailyApiRequests"] = limit{Max: set.APIRequestsMax, Remaining: max(0, set.APIRequestsMax-used)}
	jobs := e.bulkJobs24h.used()
	out["DailyBulkV2QueryJobs"] = limit{Max: dailyBulkJobsMax, Remaining: max(0, dailyBulkJobsMax-jobs)}
	delivered := e.deliveries.used()
	out["DailyDeliveredPlatformEvents"] = limit{Max: set.DeliveredEventsMax, Remaining: max(0, set.DeliveredEventsMax-delivered)}
	return out
}
