package dataverse

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/clock"
)

// benchEmulator is an emulator with limits high enough for bulk loads, driven in process (no sockets).
func benchEmulator(b *testing.B) (*Emulator, string) {
	b.Helper()
	emu, err := New(Config{Clock: clock.New(), EnvironmentURL: "https://bench.crm.dynamics.com", AuthorityURL: "https://login.bench",
		Limits: Limits{Requests: 1 << 30, ExecutionTime: Duration(1 << 62), Concurrency: 1 << 20}})
	if err != nil {
		b.Fatal(err)
	}
	return emu, emu.signToken(emu.clock.Now(), time.Hour*24, &emu.apps[0])
}

func guidFor(kind byte, i int) string {
	return fmt.Sprintf("%08x-0000-4000-8%03x-%012x", i, kind, i)
}

// contactBatch renders an UpsertMultiple body of n contacts like the ones the sync writes: predefined
// columns, the account lookup and the owning team.
func contactBatch(buf *bytes.Buffer, from, n, accounts int, team string) {
	buf.Reset()
	buf.WriteString(`{"Targets":[`)
	for i := from; i < from+n; i++ {
		if i > from {
			buf.WriteByte(',')
		}
		fmt.Fprintf(buf, `{"@odata.type":"Microsoft.Dynamics.CRM.contact","contactid":"%s","firstname":"First%d","lastname":"Lastname%d",`+
			`"emailaddress1":"person%d@example.com","telephone1":"+1 555 %07d","mobilephone":"+1 555 %07d","department":"Sales",`+
			`"salutation":"Ms.","description":"Imported contact %d","parentcustomerid_account@odata.bind":"/accounts(%s)","ownerid@odata.bind":"/teams(%s)"}`,
			guidFor(1, i), i, i, i, i, i+1, i, guidFor(2, i%accounts), team)
	}
	buf.WriteString(`]}`)
}

func accountBatch(buf *bytes.Buffer, from, n int, team string) {
	buf.Reset()
	buf.WriteString(`{"Targets":[`)
	for i := from; i < from+n; i++ {
		if i > from {
			buf.WriteByte(',')
		}
		fmt.Fprintf(buf, `{"@odata.type":"Microsoft.Dynamics.CRM.account","accountid":"%s","name":"Account %d Ltd","accountnumber":"AN%08d",`+
			`"telephone1":"+1 555 %07d","fax":"+1 555 %07d","sic":"7372","tickersymbol":"T%d","numberofemployees":%d,"ownerid@odata.bind":"/teams(%s)"}`,
			guidFor(2, i), i, i, i, i+1, i%10000, i%5000, team)
	}
	buf.WriteString(`]}`)
}

func post(b *testing.B, h http.Handler, token, path string, body []byte) {
	req := httptest.NewRequest(http.MethodPost, "https://bench.crm.dynamics.com/api/data/v9.2/"+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNoContent {
		b.Fatalf("POST %s: %d %s", path, rec.Code, rec.Body.String())
	}
}

// BenchmarkUpsertMultiple1000 measures one UpsertMultiple of 1,000 new contacts through the API handler
// (JSON parsing, validation, lookups, privilege checks, storage), without sockets.
func BenchmarkUpsertMultiple1000(b *testing.B) {
	emu, token := benchEmulator(b)
	h := emu.APIHandler()
	var buf bytes.Buffer
	accountBatch(&buf, 0, 1000, emu.TeamID())
	post(b, h, token, "accounts/Microsoft.Dynamics.CRM.UpsertMultiple", buf.Bytes())
	bodies := make([][]byte, 16)
	for i := range bodies {
		contactBatch(&buf, i*1000, 1000, 1000, emu.TeamID())
		bodies[i] = bytes.Clone(buf.Bytes())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		post(b, h, token, "contacts/Microsoft.Dynamics.CRM.UpsertMultiple", bodies[i%len(bodies)])
	}
}

// BenchmarkMemoryMillionRows loads 1,000,000 contacts and 200,000 accounts through UpsertMultiple batches of
// 1,000 and reports the heap and resident memory they occupy.
func BenchmarkMemoryMillionRows(b *testing.B) {
	for b.Loop() {
		emu, token := benchEmulator(b)
		h := emu.APIHandler()
		team := emu.TeamID()
		var buf bytes.Buffer
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		started := time.Now()
		const accounts, contacts = 200_000, 1_000_000
		for i := 0; i < accounts; i += 1000 {
			accountBatch(&buf, i, 1000, team)
			post(b, h, token, "accounts/Microsoft.Dynamics.CRM.UpsertMultiple", buf.Bytes())
		}
		for i := 0; i < contacts; i += 1000 {
			contactBatch(&buf, i, 1000, accounts, team)
			post(b, h, token, "contacts/Microsoft.Dynamics.CRM.UpsertMultiple", buf.Bytes())
		}
		load := time.Since(started)
		buf = bytes.Buffer{}
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if n, _ := emu.Count("contact"); n != contacts {
			b.Fatalf("contacts = %d", n)
		}
		heap := float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
		rss := residentMB()
		b.ReportMetric(heap, "heapMB")
		b.ReportMetric(rss, "rssMB")
		b.ReportMetric(load.Seconds(), "load-s")
		b.Logf("1,000,000 contacts + 200,000 accounts: live heap %.0f MB, process RSS %.0f MB, loaded in %v (%d UpsertMultiple requests)",
			heap, rss, load.Round(time.Millisecond), (accounts+contacts)/1000)
		runtime.KeepAlive(emu)
	}
}

// residentMB reads VmRSS from /proc (Linux); 0 elsewhere.
func residentMB() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			return float64(kb) / 1024
		}
	}
	return 0
}
