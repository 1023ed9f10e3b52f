package fidelity

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	gosf "github.com/k-capehart/go-salesforce/v3"
)

// contact is how a go-salesforce user declares records (the library maps them with its salesforce tags).
type contact struct {
	ID        string `salesforce:"Id" csv:"Id"`
	LastName  string `salesforce:"LastName" csv:"LastName"`
	Email     string `salesforce:"Email" csv:"Email"`
	AccountID string `salesforce:"AccountId" csv:"AccountId"`
}

// connect opens a go-salesforce client with the client-credentials flow at its default API version (v63.0).
func connect(t *testing.T, opts ...gosf.Option) *gosf.Salesforce {
	t.Helper()
	sf, err := gosf.Init(gosf.Creds{Domain: sb.Salesforce.InstanceURL, ConsumerKey: sb.Salesforce.ClientID, ConsumerSecret: sb.Salesforce.ClientSecret}, opts...)
	if err != nil {
		t.Fatalf("go-salesforce Init (client credentials): %v", err)
	}
	return sf
}

// Every authentication flow go-salesforce offers that the sandbox serves: JWT bearer (it signs exp as a
// string, 5 minutes ahead, with aud https://login.salesforce.com), client credentials, and a bare access
// token (validated with GET /limits).
func TestGoSalesforceAuthenticates(t *testing.T) {
	key, err := os.ReadFile(sb.Salesforce.PrivateKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	jwtClient, err := gosf.Init(gosf.Creds{Domain: sb.Salesforce.LoginURL, Username: sb.Salesforce.Username,
		ConsumerKey: sb.Salesforce.ClientID, ConsumerRSAPem: string(key)})
	if err != nil {
		t.Fatalf("JWT bearer flow: %v", err)
	}
	if jwtClient.GetAuthFlow() != gosf.AuthFlowJWT || jwtClient.GetInstanceUrl() != sb.Salesforce.InstanceURL {
		t.Errorf("JWT client: flow %v, instance %s", jwtClient.GetAuthFlow(), jwtClient.GetInstanceUrl())
	}
	cc := connect(t)
	if _, err := gosf.Init(gosf.Creds{Domain: sb.Salesforce.InstanceURL, AccessToken: cc.GetAccessToken()}); err != nil {
		t.Errorf("access token flow: %v", err)
	}
	if _, err := gosf.Init(gosf.Creds{Domain: sb.Salesforce.InstanceURL, ConsumerKey: sb.Salesforce.ClientID, ConsumerSecret: "wrong"}); err == nil {
		t.Error("a wrong client secret authenticated")
	}
	// Its generic request helper, on resources go-salesforce has no method for.
	resp, err := cc.DoRequest(http.MethodGet, "/sobjects/Contact/describe", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("DoRequest describe: %v", err)
	}
	resp.Body.Close()
}

// SOQL through REST, with the query locator followed to the second page (2,500 contacts), into structs and
// through go-soql.
func TestGoSalesforceQueries(t *testing.T) {
	sf := connect(t)
	var all []contact
	if err := sf.Query("SELECT Id, LastName, Email, AccountId FROM Contact", &all); err != nil {
		t.Fatal(err)
	}
	if len(all) < 2500 {
		t.Fatalf("queried %d contacts, want at least the 2,500 seeded (two pages)", len(all))
	}
	if all[0].ID == "" || all[0].LastName == "" {
		t.Errorf("first contact decoded as %+v", all[0])
	}
	type soqlContact struct {
		ID       string `soql:"selectColumn,fieldName=Id" salesforce:"Id"`
		LastName string `soql:"selectColumn,fieldName=LastName" salesforce:"LastName"`
	}
	type contactQuery struct {
		SelectClause soqlContact `soql:"selectClause,tableName=Contact"`
		WhereClause  struct {
			LastName string `soql:"equalsOperator,fieldName=LastName"`
		} `soql:"whereClause"`
	}
	q := contactQuery{}
	q.WhereClause.LastName = all[0].LastName
	var named []soqlContact
	if err := sf.QueryStruct(q, &named); err != nil {
		t.Fatal(err)
	}
	if len(named) == 0 || named[0].LastName != all[0].LastName {
		t.Errorf("go-soql query for LastName %q: %+v", all[0].LastName, named)
	}
}

// Single-record create, update, upsert by an idLookup field and delete.
func TestGoSalesforceSingleRecordDML(t *testing.T) {
	sf := connect(t)
	name := unique("Solo")
	res, err := sf.InsertOne("Contact", map[string]any{"LastName": name})
	if err != nil || !res.Success || res.Id == "" {
		t.Fatalf("InsertOne: %+v %v", res, err)
	}
	if err := sf.UpdateOne("Contact", map[string]any{"Id": res.Id, "Title": "Updated"}); err != nil {
		t.Fatalf("UpdateOne: %v", err)
	}
	email := strings.ReplaceAll(strings.ToLower(name), " ", ".") + "@example.com"
	up, err := sf.UpsertOne("Contact", "Email", map[string]any{"Email": email, "LastName": name})
	if err != nil || !up.Success {
		t.Fatalf("UpsertOne (create): %+v %v", up, err)
	}
	again, err := sf.UpsertOne("Contact", "Email", map[string]any{"Email": email, "Title": "Upserted"})
	if err != nil || !again.Success || again.Id != up.Id {
		t.Fatalf("UpsertOne (update): %+v %v, want the record %s", again, err, up.Id)
	}
	var got []contact
	if err := sf.Query("SELECT Id, LastName, Email FROM Contact WHERE Email = '"+email+"'", &got); err != nil || len(got) != 1 {
		t.Fatalf("query after upsert: %v %+v", err, got)
	}
	for _, id := range []string{res.Id, up.Id} {
		if err := sf.DeleteOne("Contact", map[string]any{"Id": id}); err != nil {
			t.Fatalf("DeleteOne: %v", err)
		}
	}
}

// sObject Collections in batches of 200 (250 records: two requests each), through every collection method.
func TestGoSalesforceCollections(t *testing.T) {
	sf := connect(t, gosf.WithCompressionHeaders(true)) // gzip request and answer bodies, too
	name := unique("Coll")
	var recs []map[string]any
	for i := range 250 {
		recs = append(recs, map[string]any{"LastName": fmt.Sprintf("%s %d", name, i), "Email": fmt.Sprintf("coll%d.%s@example.com", i, strings.Fields(name)[1])})
	}
	ins, err := sf.InsertCollection("Contact", recs, 200)
	if err != nil || ins.HasSalesforceErrors || len(ins.Results) != 250 {
		t.Fatalf("InsertCollection: %v, errors %v, %d results", err, ins.HasSalesforceErrors, len(ins.Results))
	}
	upd := make([]map[string]any, 250)
	for i, r := range ins.Results {
		upd[i] = map[string]any{"Id": r.Id, "Department": "Collections"}
	}
	if res, err := sf.UpdateCollection("Contact", upd, 200); err != nil || res.HasSalesforceErrors {
		t.Fatalf("UpdateCollection: %v %+v", err, firstError(res))
	}
	ups := []map[string]any{{"Email": recs[0]["Email"], "Title": "Upserted"}, {"Email": "new." + recs[0]["Email"].(string), "LastName": name + " new"}}
	res, err := sf.UpsertCollection("Contact", "Email", ups, 200)
	if err != nil || res.HasSalesforceErrors || len(res.Results) != 2 || res.Results[0].Id != ins.Results[0].Id {
		t.Fatalf("UpsertCollection: %v %+v", err, res)
	}
	var kept []contact
	if err := sf.Query("SELECT Id, LastName, Email FROM Contact WHERE Department = 'Collections'", &kept); err != nil || len(kept) != 250 {
		t.Fatalf("after UpdateCollection: %v, %d contacts in department Collections, want 250", err, len(kept))
	}
	del := make([]map[string]any, 0, 251)
	for _, r := range ins.Results {
		del = append(del, map[string]any{"Id": r.Id})
	}
	del = append(del, map[string]any{"Id": res.Results[1].Id})
	if res, err := sf.DeleteCollection("Contact", del, 200); err != nil || res.HasSalesforceErrors || len(res.Results) != 251 {
		t.Fatalf("DeleteCollection: %v %+v", err, firstError(res))
	}
}

// The composite variants: collections inside /composite, all or none.
func TestGoSalesforceComposite(t *testing.T) {
	sf := connect(t)
	name := unique("Comp")
	var recs []map[string]any
	for i := range 150 {
		recs = append(recs, map[string]any{"Name": fmt.Sprintf("%s %d", name, i), "AccountNumber": fmt.Sprintf("C-%d", i)})
	}
	ins, err := sf.InsertComposite("Account", recs, 100, true)
	if err != nil || ins.HasSalesforceErrors || len(ins.Results) != 150 {
		t.Fatalf("InsertComposite: %v %+v", err, firstError(ins))
	}
	upd := make([]map[string]any, len(ins.Results))
	for i, r := range ins.Results {
		upd[i] = map[string]any{"Id": r.Id, "Industry": "Retail"}
	}
	if res, err := sf.UpdateComposite("Account", upd, 100, true); err != nil || res.HasSalesforceErrors {
		t.Fatalf("UpdateComposite: %v %+v", err, firstError(res))
	}
	// One bad record with allOrNone: nothing of the request is saved.
	bad := []map[string]any{{"Id": ins.Results[0].Id, "Industry": "Banking"}, {"Id": ins.Results[1].Id, "Name": nil}}
	res, err := sf.UpdateComposite("Account", bad, 100, true)
	if err != nil || !res.HasSalesforceErrors {
		t.Fatalf("UpdateComposite with a required field nulled: %v %+v, want Salesforce errors", err, res)
	}
	var check []struct {
		Industry string `salesforce:"Industry"`
	}
	if err := sf.Query("SELECT Industry FROM Account WHERE Id = '"+ins.Results[0].Id+"'", &check); err != nil || len(check) != 1 || check[0].Industry != "Retail" {
		t.Errorf("after a rolled-back composite: %v %+v, want Industry still Retail", err, check)
	}
	ups := []map[string]any{{"Id": ins.Results[2].Id, "Phone": "+1 555 0100"}}
	if res, err := sf.UpsertComposite("Account", "Id", ups, 100, false); err != nil || res.HasSalesforceErrors {
		t.Fatalf("UpsertComposite by Id: %v %+v", err, firstError(res))
	}
	del := make([]map[string]any, len(ins.Results))
	for i, r := range ins.Results {
		del[i] = map[string]any{"Id": r.Id}
	}
	if res, err := sf.DeleteComposite("Account", del, 100, true); err != nil || res.HasSalesforceErrors {
		t.Fatalf("DeleteComposite: %v %+v", err, firstError(res))
	}
}

// Bulk API 2.0 queries: an export to a CSV file and the page iterator.
func TestGoSalesforceBulkQueries(t *testing.T) {
	sf := connect(t)
	file := filepath.Join(t.TempDir(), "contacts.csv")
	if err := sf.QueryBulkExport("SELECT Id, LastName, Email, AccountId FROM Contact", file); err != nil {
		t.Fatalf("QueryBulkExport: %v", err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(f).ReadAll()
	f.Close()
	if err != nil || len(rows) < 2501 || strings.Join(rows[0], ",") != "Id,LastName,Email,AccountId" {
		t.Fatalf("exported CSV: %v, %d rows, header %v", err, len(rows), rows[0])
	}
	it, err := sf.QueryBulkIterator("SELECT Id, LastName, Email, AccountId FROM Contact")
	if err != nil {
		t.Fatalf("QueryBulkIterator: %v", err)
	}
	n := 0
	for it.Next() {
		var page []contact
		if err := it.Decode(&page); err != nil {
			t.Fatalf("Decode: %v", err)
		}
		n += len(page)
	}
	if err := it.Error(); err != nil || n < 2500 {
		t.Fatalf("iterated %d contacts, err %v", n, err)
	}
}

func firstError(r gosf.SalesforceResults) any {
	for _, x := range r.Results {
		if !x.Success {
			return x
		}
	}
	return nil
}
