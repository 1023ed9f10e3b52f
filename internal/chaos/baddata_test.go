package chaos_test

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping"
	"github.com/crmsync/terraform-provider-crmsync/internal/runtime/agent"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/compare"
	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce"
)

// unusual is text a sync must carry unchanged: accents in both compositions, right-to-left scripts, CJK,
// emoji outside the Basic Multilingual Plane with joiners and skin tones, zero-width and line-separator
// characters, and quotes and separators that break naive CSV and JSON handling.
var unusual = []string{
	"Zoë Ñúñez-Ægir", "Cafe\u0301 Zoe\u0308", "مرحبا بالعالم", "שָׁלוֹם", "山田 太郎", "Łódź Śródmieście",
	"👨‍👩‍👧‍👦 family", "👍🏽 thumbs", "zero\u200bwidth\u200djoin", "line\u2028sep", "tab\tand \"quotes\", commas; pipes|`backquotes`",
	"𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝕄𝕒𝕥𝕙", "\u00a0nbsp\u00a0", "ｆｕｌｌｗｉｄｔｈ", "🏳️‍🌈🇩🇪🇯🇵",
}

// badBatch is one batch of injected records: those that must be dead-lettered (by code prefix) and those that
// must arrive unchanged.
type badBatch struct {
	dead map[string]string // Salesforce Id → expected dead-letter code
	good []string
}

// injectBadData creates, in one batch, records Dataverse must refuse or that cannot be written, and
// records at the edges that must be synced exactly. tag keeps the batches apart.
func injectBadData(t *testing.T, sf *salesforce.Emulator, tag string) badBatch {
	t.Helper()
	b := badBatch{dead: map[string]string{}}
	create := func(object string, fields map[string]any) string {
		t.Helper()
		res, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{{Op: "create", Object: object, Fields: fields}}})
		if err != nil {
			t.Fatalf("creating %s %v: %v", object, fields, err)
		}
		return res.IDs[0][0]
	}
	dead := func(code, object string, fields map[string]any) string {
		id := create(object, fields)
		b.dead[id] = code
		return id
	}
	good := func(object string, fields map[string]any) {
		b.good = append(b.good, create(object, fields))
	}

	// Refused by the mapping: a name longer than Dataverse's 160 characters (the column does not truncate).
	longName := dead(agent.CodeMapping, "Account", map[string]any{"Name": tag + " " + strings.Repeat("Long name ", 17)})
	// Lookups to an account that is not in Dataverse: dead-lettered as lookup_missing (and retried).
	dead(agent.CodeLookupMissing, "Contact", map[string]any{"LastName": tag + " Orphan", "AccountId": longName})
	// Values Dataverse refuses: employees below the column's range, dates before 1753-01-01, a last name of 41
	// emoji (41 characters for Salesforce, 82 UTF-16 units for Dataverse's 50).
	dead("0x80044331", "Account", map[string]any{"Name": tag + " Negative", "NumberOfEmployees": -5})
	dead("0x80044331", "Contact", map[string]any{"LastName": tag + " Ancient", "Birthdate": "1700-01-01"})
	dead("0x80044331", "Contact", map[string]any{"LastName": tag + " Julian", "Birthdate": "1752-12-31"})
	dead(agent.CodeMapping, "Contact", map[string]any{"LastName": strings.Repeat("😀", 41)})

	// At the edges, and must arrive as they are.
	for _, d := range []string{"1753-01-01", "4000-12-31", "2000-02-29", "1900-02-28", "1970-01-01"} {
		good("Contact", map[string]any{"LastName": tag + " Date " + d, "Birthdate": d})
	}
	good("Account", map[string]any{"Name": tag + " Max employees", "NumberOfEmployees": 99999999})
	good("Account", map[string]any{"Name": tag + " No employees", "NumberOfEmployees": 0})
	good("Account", map[string]any{"Name": strings.Repeat("N", 160-len(tag)-1) + " " + tag}) // exactly 160
	good("Contact", map[string]any{"LastName": tag + " Description at the limit", "Description": strings.Repeat("d", 2000)})
	good("Contact", map[string]any{"LastName": tag + " Emoji at the limit", "Description": strings.Repeat("😀", 1000)}) // 2000 UTF-16 units
	good("Contact", map[string]any{"LastName": tag + " Cut description", "Description": strings.Repeat("e", 2100)})    // truncated
	// Truncated at 2000 UTF-16 units, never inside a surrogate pair.
	good("Contact", map[string]any{"LastName": tag + " Cut emoji", "Description": "x" + strings.Repeat("😀", 1200)})
	good("Contact", map[string]any{"LastName": tag + " Long text", "Description": strings.Repeat("Line of text\n", 150)})
	for i, s := range unusual {
		good("Contact", map[string]any{"LastName": s, "FirstName": fmt.Sprintf("%s %d", tag, i), "Description": strings.Repeat(s+" ", 20),
			"Department": s, "Email": fmt.Sprintf("o'brien+%s.%d@example.co.uk", strings.ToLower(tag), i)})
	}
	good("Contact", map[string]any{"LastName": strings.Repeat("😀", 25)}) // 50 UTF-16 units: the limit
	return b
}

// TestChaosBadDataIsDeadLetteredExactly: records Dataverse rejects, lookups to accounts that are not in
// Dataverse, very long texts, unusual Unicode and dates at the edges arrive during the initial load and
// again during CDC. Exactly the records that cannot be written are dead-lettered, with the expected code;
// every other record, the edge cases included, is synced field for field (the description column truncates,
// so long descriptions arrive cut at 2000 UTF-16 units).
func TestChaosBadDataIsDeadLetteredExactly(t *testing.T) {
	e := newEnv(t, "bad-data", envOptions{contacts: profile.Contacts / 2, accounts: profile.Accounts / 2})
	e.cfg.Tables[1].Columns = map[string]mapping.ColumnOverride{"description": {Source: "Description", Truncate: true}}
	sf := e.sb.Salesforce
	load := injectBadData(t, sf, "Load")
	r := e.startAgent("")
	e.settle(r, 3*time.Minute)
	cdc := injectBadData(t, sf, "CDC")
	// The bad records change again while streaming: still dead-lettered, once each.
	cs := e.startChanges(100*time.Millisecond, 30)
	for id := range load.dead {
		if strings.HasPrefix(id, "003") {
			if _, err := sf.Transact(salesforce.Transaction{Operations: []salesforce.Operation{
				{Op: "update", Object: "Contact", ID: id, Fields: map[string]any{"Department": "Changed again"}}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	cs.stop()
	s := e.settle(r, 3*time.Minute)
	reconciled(t, s)

	want := map[string]string{}
	for _, b := range []badBatch{load, cdc} {
		for id, code := range b.dead {
			want[id] = code
		}
	}
	dls, err := r.store.DeadLetters(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]agent.DeadLetter{}
	for _, d := range dls {
		got[d.RecordID] = d
	}
	for id, code := range want {
		d, ok := got[id]
		switch {
		case !ok:
			t.Errorf("record %s was not dead-lettered (want code %q)", id, code)
		case code != "" && d.Code != code:
			t.Errorf("record %s dead-lettered with %s (%s), want code %s", id, d.Code, d.Reason, code)
		}
	}
	var extra []string
	for id, d := range got {
		if _, ok := want[id]; !ok {
			extra = append(extra, fmt.Sprintf("%s %s: %s", id, d.Code, d.Reason))
		}
	}
	sort.Strings(extra)
	if len(extra) > 0 {
		t.Errorf("%d records dead-lettered that should have been written:\n  %s", len(extra), strings.Join(extra, "\n  "))
	}
	t.Logf("%d records dead-lettered as injected (%d bad, %d edge cases synced per batch)", len(got), len(load.dead), len(load.good))
	for id := range want {
		e.skip[id] = true
	}
	contact := compare.Contact(true)
	for i, c := range contact.Columns {
		if c.Dest == "description" {
			contact.Columns[i].MaxLength = 2000
		}
	}
	e.tables = []compare.Table{compare.Account(), contact}
	e.iterations, e.faults = 2, int64(len(want))
	res := e.finish()
	if res.Compared == 0 {
		t.Error("nothing compared")
	}
}
