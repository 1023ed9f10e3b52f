package salesforce_test

import (
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/source/salesforce"
	sfemu "github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
)

// randomText returns a string drawn from every Unicode plane that holds characters (0, 1, 2, 3, 14, and
// the private-use planes 15 and 16), mixed with CRLF, lone CR, lone LF, NUL-free control characters, CSV and
// JSON syntax, line and paragraph separators, a byte order mark and zero-width characters.
func randomText(rng *rand.Rand) string {
	planes := [][2]rune{{0x20, 0xD7FF}, {0xE000, 0xFFFD}, {0x10000, 0x1FFFF}, {0x20000, 0x2FFFF}, {0x30000, 0x3134F},
		{0xE0000, 0xE01EF}, {0xF0000, 0xFFFFD}, {0x100000, 0x10FFFD}}
	specials := []string{"\r\n", "\r", "\n", "\r\n\r\n", "\t", "\"", "\"\"", ",", "\\", "\\\"", "\u2028", "\u2029", "\ufeff",
		"\u200b", "\u200d", "\u0085", "\x7f", "'", "<", "&", "{", "}", " ", "  "}
	var b strings.Builder
	for n := rng.IntN(40); n >= 0; n-- {
		switch k := rng.IntN(10); {
		case k < 4:
			p := planes[rng.IntN(len(planes))]
			b.WriteRune(p[0] + rng.Int32N(p[1]-p[0]+1))
		case k < 7:
			b.WriteString(specials[rng.IntN(len(specials))])
		case k < 8:
			b.WriteByte(byte(1 + rng.IntN(0x1f))) // control characters, NUL excepted
		case k < 9:
			b.WriteRune(0x80 + rng.Int32N(0x20)) // C1 controls
		default:
			b.WriteString("text")
		}
	}
	return b.String()
}

// TestTextIsByteIdenticalThroughBulkRESTAndChangeEvents is a property test: random text (every Unicode
// plane, CRLF, lone CR, control characters) written into Salesforce reads back byte for byte the same
// through a Bulk API 2.0 query (CSV), a REST query and a retrieve (JSON) and the change events (Avro) as the
// value Salesforce stores. CHAOS_SEED repeats a run.
func TestTextIsByteIdenticalThroughBulkRESTAndChangeEvents(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		seed = v
	}
	t.Logf("seed %d (CHAOS_SEED=%d repeats this run)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x7e47)) //nolint:gosec // test data
	sb, cfg := startOrg(t, 0)
	c, err := salesforce.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := c.DialPubSub(sb.Info.Salesforce.PubSubAddr, false)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()

	const records = 300
	var recs []map[string]any
	for i := range records {
		d := randomText(rng)
		if !utf8.ValidString(d) {
			t.Fatalf("generated invalid UTF-8 %q", d)
		}
		recs = append(recs, map[string]any{"LastName": "P" + strconv.Itoa(i) + randomText(rng), "Description": d})
	}
	res, err := sb.Salesforce.Transact(sfemu.Transaction{Operations: []sfemu.Operation{{Op: "create", Object: "Contact", Records: recs}}})
	if err != nil {
		t.Fatal(err)
	}
	ids := res.IDs[0]
	// want is what Salesforce stores, read without the API.
	want := map[string]map[string]any{}
	for _, id := range ids {
		r, ok := sb.Salesforce.Record("Contact", id)
		if !ok {
			t.Fatalf("record %s not stored", id)
		}
		want[id] = r
	}
	fields := []string{"LastName", "Description"}
	check := func(path, id string, got map[string]any) {
		t.Helper()
		w, ok := want[id]
		if !ok {
			t.Errorf("%s: record %s was not written by the test", path, id)
			return
		}
		for _, f := range fields {
			gs, _ := got[f].(string)
			ws, _ := w[f].(string)
			if gs != ws {
				t.Errorf("%s: %s.%s read as %q, Salesforce holds %q", path, id, f, gs, ws)
			}
		}
	}

	// Bulk API 2.0 (CSV pages of 50 rows, so values cross page boundaries too).
	job, err := c.CreateQueryJob(t.Context(), "SELECT Id, LastName, Description FROM Contact", false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitQueryJob(t.Context(), job.ID); err != nil {
		t.Fatal(err)
	}
	bulk := 0
	for locator := ""; ; {
		page, err := c.QueryResults(t.Context(), job.ID, locator, 50, func(r salesforce.Record) error {
			bulk++
			check("bulk CSV", r.ID(), r)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if page.Next == "" {
			break
		}
		locator = page.Next
	}
	// REST query and retrieve (JSON).
	rest, err := c.Query(t.Context(), "SELECT Id, LastName, Description FROM Contact", false, func(r salesforce.Record) error {
		check("REST query", r.ID(), r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	retrieved := 0
	if err := c.Retrieve(t.Context(), "Contact", fields, ids, func(r salesforce.Record) error {
		retrieved++
		check("REST retrieve", r.ID(), r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Change events (Avro).
	sub, err := ps.Subscribe(t.Context(), salesforce.SubscribeOptions{Topic: "/data/ContactChangeEvent", Preset: salesforce.Earliest, Credit: 500})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	events := 0
	deadline := time.Now().Add(30 * time.Second)
	for events < records && time.Now().Before(deadline) {
		b, err := sub.Next()
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range b.Events {
			for _, id := range ev.RecordIDs {
				events++
				check("change event", id, ev.Values)
			}
		}
	}
	if bulk != records || rest != records || retrieved != records || events != records {
		t.Fatalf("read %d (bulk), %d (REST query), %d (retrieve), %d (events) of %d records", bulk, rest, retrieved, events, records)
	}
}
