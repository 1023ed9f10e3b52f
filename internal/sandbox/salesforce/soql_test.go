package salesforce

import (
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// Spec 2.3: query pages at 2,000 records with nextRecordsUrl /services/data/vXX.X/query/<locator>-<offset>
// until done; the pages together hold every record once, in Id order.
func TestQueryPagesAt2000WithNextRecordsURL(t *testing.T) {
	o := newTestOrg(t, 5000, 10)
	p := o.query("SELECT Id, LastName FROM Contact", false)
	var ids []string
	locator := regexp.MustCompile(`^/services/data/v62\.0/query/01g\w{15}-(\d+)$`)
	for page := 0; ; page++ {
		if p.TotalSize != 5000 {
			t.Fatalf("page %d totalSize = %d", page, p.TotalSize)
		}
		for _, r := range p.Records {
			ids = append(ids, r["Id"].(string))
		}
		if p.Done {
			if p.NextRecordsURL != "" || len(p.Records) != 1000 {
				t.Errorf("last page: %d records, nextRecordsUrl %q", len(p.Records), p.NextRecordsURL)
			}
			break
		}
		m := locator.FindStringSubmatch(p.NextRecordsURL)
		if len(p.Records) != 2000 || m == nil || m[1] != []string{"2000", "4000"}[page] {
			t.Fatalf("page %d: %d records, nextRecordsUrl %q", page, len(p.Records), p.NextRecordsURL)
		}
		resp, body := o.do(http.MethodGet, p.NextRecordsURL, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("next page: %d %s", resp.StatusCode, body)
		}
		p = queryPage{}
		mustJSON(t, body, &p)
	}
	if len(ids) != 5000 || !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != 5000 {
		t.Errorf("paged %d Ids; sorted %v", len(ids), slices.IsSorted(ids))
	}
}

func TestQueryBatchSizeHeaderAndLocatorExpiry(t *testing.T) {
	o := newTestOrg(t, 700, 0)
	resp, body := o.do(http.MethodGet, "/services/data/v62.0/query?q="+url.QueryEscape("SELECT Id FROM Contact"), nil,
		"Sforce-Query-Options", "batchSize=500")
	var p queryPage
	mustJSON(t, body, &p)
	if resp.StatusCode != http.StatusOK || len(p.Records) != 500 || p.Done {
		t.Fatalf("batchSize=500: %d records, done %v", len(p.Records), p.Done)
	}
	o.clock.Advance(14 * time.Minute) // idle less than 15 minutes: still valid
	if resp, body := o.do(http.MethodGet, p.NextRecordsURL, nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("locator after 14 idle minutes: %d %s", resp.StatusCode, body)
	}
	o.clock.Advance(16 * time.Minute)
	resp, body = o.do(http.MethodGet, p.NextRecordsURL, nil)
	if e := restErr(t, body); resp.StatusCode != http.StatusBadRequest || e.ErrorCode != "INVALID_QUERY_LOCATOR" {
		t.Errorf("locator idle for 16 minutes: %d %s", resp.StatusCode, body)
	}
}

// The SOQL subset of spec 2.3 a sync needs.
func TestSOQLSubset(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	mk := func(object, body string) string {
		_, b := o.do(http.MethodPost, "/services/data/v62.0/sobjects/"+object, body)
		var cr map[string]any
		mustJSON(t, b, &cr)
		return cr["id"].(string)
	}
	acme := mk("Account", `{"Name":"Acme"}`)
	a := mk("Contact", `{"LastName":"Adams","FirstName":"Ann","AccountId":"`+acme+`"}`)
	o.clock.Advance(time.Minute)
	mid := o.clock.Now().UTC()
	o.clock.Advance(time.Minute)
	b := mk("Contact", `{"LastName":"Brown","Email":"b@example.com"}`)
	c := mk("Contact", `{"LastName":"Clark","Title":"CEO","AccountId":"`+acme+`"}`)

	ids := func(p queryPage) []string {
		var out []string
		for _, r := range p.Records {
			out = append(out, r["Id"].(string))
		}
		return out
	}
	cases := []struct {
		soql string
		want []string
	}{
		{"SELECT Id FROM Contact WHERE Id IN ('" + a[:15] + "', '" + c + "')", []string{a, c}},
		{"SELECT Id FROM Contact WHERE Id = '" + b[:15] + "'", []string{b}},
		{"SELECT Id FROM Contact WHERE SystemModstamp > " + mid.Format(time.RFC3339), []string{b, c}},
		{"SELECT Id FROM Contact WHERE LastModifiedDate <= " + mid.Format("2006-01-02T15:04:05.000Z"), []string{a}},
		{"SELECT Id FROM Contact WHERE CreatedDate = LAST_N_DAYS:1 AND CreatedDate < TOMORROW", []string{a, b, c}},
		{"SELECT Id FROM Contact WHERE Id > '" + a + "' ORDER BY Id LIMIT 1", []string{b}},
		{"SELECT Id FROM Contact ORDER BY LastName DESC", []string{c, b, a}},
		{"SELECT Id FROM Contact ORDER BY Email NULLS LAST, LastName", []string{b, a, c}},
		{"SELECT Id FROM Contact WHERE (LastName = 'adams' OR Title = 'CEO') AND Email = null", []string{a, c}},
		{"SELECT Id FROM Contact WHERE NOT LastName LIKE 'b%'", []string{a, c}},
		{"SELECT Id FROM Contact WHERE LastName NOT IN ('Brown') AND AccountId != null", []string{a, c}},
		{"SELECT Id FROM Contact WHERE Account.Name = 'Acme' ORDER BY Id DESC", []string{c, a}},
		{"SELECT Id FROM Contact ORDER BY Id LIMIT 2 OFFSET 1", []string{b, c}},
	}
	for _, tc := range cases {
		if got := ids(o.query(tc.soql, false)); !slices.Equal(got, tc.want) {
			t.Errorf("%s\n got %v\nwant %v", tc.soql, got, tc.want)
		}
	}

	if p := o.query("SELECT COUNT() FROM Contact WHERE Email = null", false); p.TotalSize != 2 || len(p.Records) != 0 || !p.Done {
		t.Errorf("COUNT() = %+v", p)
	}
	p := o.query("SELECT LastName, Account.Name, Email FROM Contact ORDER BY LastName", false)
	acc, ok := p.Records[0]["Account"].(map[string]any)
	if !ok || acc["Name"] != "Acme" || acc["attributes"].(map[string]any)["type"] != "Account" {
		t.Errorf("parent field Account.Name = %v", p.Records[0])
	}
	if v, present := p.Records[1]["Account"]; !present || v != nil {
		t.Errorf("a contact without an account should have \"Account\": null, got %v", p.Records[1])
	}
	if k := keysOf(p.Records[0]); len(k) != 4 {
		t.Errorf("record keys = %v, want attributes, LastName, Account, Email", k)
	}
}

// Spec 2.5: query errors embed the query, a caret line and the row and column.
func TestSOQLErrorsPointAtTheProblem(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	cases := []struct {
		soql, code, contains string
	}{
		{"SELECT Id, Foo FROM Contact", "INVALID_FIELD", "\nSELECT Id, Foo FROM Contact\n           ^\nERROR at Row:1:Column:12\nNo such column 'Foo' on entity 'Contact'."},
		{"SELECT Id FROM Contactz", "INVALID_TYPE", "sObject type 'Contactz' is not supported."},
		{"SELECT Id FORM Contact", "MALFORMED_QUERY", "ERROR at Row:1:Column:11\nunexpected token: FORM"},
		{"SELECT Id FROM Contact WHERE CreatedDate > '2024-01-01'", "INVALID_FIELD", "must be of type dateTime and should not be enclosed in quotes"},
		{"SELECT Id FROM Contact WHERE LastName = 'a' AND Email = 'b' OR Title = 'c'", "MALFORMED_QUERY", "unexpected token: OR"},
		{"SELECT Id FROM Contact WHERE Id = 'nope'", "INVALID_QUERY_FILTER_OPERATOR", "invalid ID field: nope"},
		{"SELECT Id FROM Contact LIMIT", "MALFORMED_QUERY", "unexpected token: <EOF>"},
		{"SELECT Id, Id FROM Contact", "MALFORMED_QUERY", "duplicate field selected: Id"},
		{"SELECT Id, Owner.Name FROM Contact", "INVALID_FIELD", "Didn't understand relationship 'Owner'"},
		{"SELECT Id FROM Contact GROUP BY Id", "MALFORMED_QUERY", "GROUP BY"},
		{"SELECT FIELDS(ALL) FROM Contact", "MALFORMED_QUERY", "LIMIT of at most 200"},
	}
	for _, tc := range cases {
		resp, body := o.do(http.MethodGet, "/services/data/v62.0/query?q="+url.QueryEscape(tc.soql), nil)
		e := restErr(t, body)
		if resp.StatusCode != http.StatusBadRequest || e.ErrorCode != tc.code || !strings.Contains(e.Message, tc.contains) {
			t.Errorf("%s: %d %s\nwant %s containing %q", tc.soql, resp.StatusCode, body, tc.code, tc.contains)
		}
	}
}

// Spec 8.1: filters on Contact.Birthdate ignore the year.
func TestBirthdateFiltersIgnoreTheYear(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	o.do(http.MethodPost, "/services/data/v62.0/sobjects/Contact", `{"LastName":"Old","Birthdate":"1950-06-15"}`)
	if p := o.query("SELECT Id FROM Contact WHERE Birthdate = 2001-06-15", false); p.TotalSize != 1 {
		t.Errorf("Birthdate = 2001-06-15 matched %d contacts, want the 1950-06-15 one", p.TotalSize)
	}
	if p := o.query("SELECT Id FROM Contact WHERE Birthdate > 1999-07-01", false); p.TotalSize != 0 {
		t.Errorf("Birthdate > 1999-07-01 matched %d contacts born on 15 June", p.TotalSize)
	}
}

// FIELDS() and compound address fields in REST queries.
func TestQueryAddressCompoundAndFields(t *testing.T) {
	o := newTestOrg(t, 0, 0)
	o.do(http.MethodPost, "/services/data/v62.0/sobjects/Contact", `{"LastName":"A","MailingCity":"Oslo","MailingCountry":"Norway"}`)
	p := o.query("SELECT MailingAddress FROM Contact", false)
	addr, ok := p.Records[0]["MailingAddress"].(map[string]any)
	if !ok || addr["city"] != "Oslo" || addr["country"] != "Norway" || addr["street"] != nil {
		t.Errorf("MailingAddress = %v", p.Records[0]["MailingAddress"])
	}
	p = o.query("SELECT FIELDS(STANDARD) FROM Contact", false)
	if _, ok := p.Records[0]["LastModifiedDate"]; !ok || len(p.Records[0]) < 30 {
		t.Errorf("FIELDS(STANDARD) returned %d keys", len(p.Records[0]))
	}
}
