package dataverse

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
)

// Concurrent writers, readers and a batch never corrupt the store: every row written is read back whole.
func TestConcurrentWritesAndReadsKeepRowsWhole(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	team := env.emu.TeamID()
	const workers, perWorker = 4, 5
	var wg sync.WaitGroup
	errs := make(chan string, workers*perWorker*2)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				r := env.call(http.MethodPost, "contacts/Microsoft.Dynamics.CRM.UpsertMultiple", contactTargets(50, (w*perWorker+i)*50, team))
				if r.status != http.StatusNoContent {
					errs <- fmt.Sprintf("upsert: %d %s", r.status, r.raw)
				}
				r = env.call(http.MethodGet, "contacts?$select=lastname&$filter=startswith(lastname,'Last1')&$top=20", nil)
				if r.status != http.StatusOK {
					errs <- fmt.Sprintf("query: %d %s", r.status, r.raw)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	rows, _ := env.emu.Rows("contact", "", 0)
	if len(rows) != workers*perWorker*50 {
		t.Fatalf("%d rows, want %d", len(rows), workers*perWorker*50)
	}
	for _, row := range rows {
		id := row["contactid"].(string)
		var n int
		if _, err := fmt.Sscanf(id[24:], "%d", &n); err != nil {
			t.Fatalf("row id %s: %v", id, err)
		}
		if row["lastname"] != fmt.Sprintf("Last%d", n) || row["emailaddress1"] != fmt.Sprintf("person%d@example.com", n) {
			t.Fatalf("row %s is not whole: %v", id, row)
		}
	}
}

// Reset may race with traffic; requests either see the old or the new environment, never a torn one.
func TestResetDuringTrafficIsSafe(t *testing.T) {
	env := newTestEnv(t)
	env.login()
	team := env.emu.TeamID()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			env.call(http.MethodPost, "contacts/Microsoft.Dynamics.CRM.UpsertMultiple", contactTargets(20, i*20, team))
			env.call(http.MethodGet, "contacts?$select=lastname&$top=5", nil)
			env.call(http.MethodGet, "EntityDefinitions(LogicalName='contact')?$select=LogicalName", nil)
		}
	}()
	for i := 0; i < 5; i++ {
		if err := env.emu.Reset(); err != nil {
			t.Error(err)
		}
		if err := env.emu.AddColumn("contact", CustomColumn{LogicalName: "new_region", Type: "String", MaxLength: 10}); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
	r := env.mustStatus(env.call(http.MethodGet, "contacts?$select=new_region&$top=1", nil), http.StatusOK)
	if _, ok := r.json(t)["value"]; !ok {
		t.Errorf("query after resets: %s", r.raw)
	}
}
