package salesforce

import (
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"
)

// The benchmark-sized org (1,000,000 contacts and 200,000 accounts) seeds in under 2.5 GB of heap, and a Bulk
// query of every contact streams its pages. The seeding time is logged, not asserted: it depends on the machine. It takes a while, so it runs only with
// CRMSYNC_SCALE_TEST=1.
func TestBenchmarkSizedOrgSeedsAndStreams(t *testing.T) {
	if os.Getenv("CRMSYNC_SCALE_TEST") != "1" {
		t.Skip("set CRMSYNC_SCALE_TEST=1 to seed 1,000,000 contacts")
	}
	start := time.Now()
	o := newTestOrg(t, 1_000_000, 200_000, func(c *Config) { c.BulkDelay = 0 })
	took := time.Since(start)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("seeded in %v, heap in use %d MB", took, ms.HeapInuse>>20)
	if ms.HeapInuse > 2500<<20 {
		t.Errorf("seeding holds %d MB of heap, want at most 2500", ms.HeapInuse>>20)
	}
	start = time.Now()
	job := createJob(t, o, `{"operation":"query","query":"SELECT Id, FirstName, LastName, Email, AccountId, SystemModstamp FROM Contact"}`)
	id := job["id"].(string)
	for jobState(t, o, id)["state"] != "JobComplete" {
		time.Sleep(10 * time.Millisecond)
	}
	rows, locator := 0, ""
	for pages := 0; pages < 100 && locator != "null"; pages++ {
		path := jobsPath + "/" + id + "/results?maxRecords=250000"
		if locator != "" {
			path += "&locator=" + locator
		}
		req, _ := http.NewRequest(http.MethodGet, o.instance.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+o.token())
		resp, err := o.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(resp.Header.Get("Sforce-NumberOfRecords"))
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		rows += n
		locator = resp.Header.Get("Sforce-Locator")
	}
	runtime.ReadMemStats(&ms)
	t.Logf("bulk query of %d rows in %v, heap in use %d MB", rows, time.Since(start), ms.HeapInuse>>20)
	if rows != 1_000_000 {
		t.Errorf("bulk query returned %d rows", rows)
	}
}
