package fakedata

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/salesforce/schema"
)

func TestSameSeedGivesSameSequence(t *testing.T) {
	a, b, c := New(42), New(42), New(43)
	differs := false
	for i := range 300 {
		acc1, acc2, acc3 := a.Account(), b.Account(), c.Account()
		id := fmt.Sprintf("001%015d", i)
		con1, con2, con3 := a.Contact(id), b.Contact(id), c.Contact(id)
		up1, up2, up3 := a.Update("Contact"), b.Update("Contact"), c.Update("Contact")
		if !reflect.DeepEqual(acc1, acc2) || !reflect.DeepEqual(con1, con2) || !reflect.DeepEqual(up1, up2) {
			t.Fatalf("record %d differs between two generators with seed 42:\n%v\n%v\n%v\n%v", i, acc1, acc2, con1, con2)
		}
		if !reflect.DeepEqual(acc1, acc3) || !reflect.DeepEqual(con1, con3) || !reflect.DeepEqual(up1, up3) {
			differs = true
		}
	}
	if !differs {
		t.Fatal("seeds 42 and 43 produced the same 300 records")
	}
}

// checkAgainstSchema fails when a value's key is not a writable field of obj, its Go type is not the one
// package schema prescribes for the field type, or it does not fit the field (length, picklist, digits).
func checkAgainstSchema(t *testing.T, obj *schema.Object, rec map[string]any, update bool) {
	t.Helper()
	for k, v := range rec {
		f, ok := obj.Field(k)
		if !ok || f.Name != k {
			t.Fatalf("%s has no field %q (record %v)", obj.Name, k, rec)
		}
		if update && !f.Updateable || !update && !f.Createable {
			t.Fatalf("%s.%s is not writable (update=%v)", obj.Name, k, update)
		}
		if v == nil {
			if !f.Nillable {
				t.Fatalf("%s.%s is required but nil", obj.Name, k)
			}
			continue
		}
		switch {
		case schema.IsText(f.Type) || f.Type == "reference":
			s, ok := v.(string)
			if !ok {
				t.Fatalf("%s.%s (%s) = %#v, want string", obj.Name, k, f.Type, v)
			}
			if n := utf8.RuneCountInString(s); n > f.Length || n == 0 {
				t.Fatalf("%s.%s = %q has %d characters, field length %d", obj.Name, k, s, n, f.Length)
			}
			if f.Type == "picklist" && !slices.ContainsFunc(f.PicklistValues, func(p schema.PicklistValue) bool { return p.Value == s }) {
				t.Fatalf("%s.%s = %q is not a picklist value", obj.Name, k, s)
			}
			if f.Type == "email" && (strings.Count(s, "@") != 1 || !isASCII(s) || strings.ContainsAny(s, " '")) {
				t.Fatalf("%s.%s = %q is not a plain ASCII address", obj.Name, k, s)
			}
		case f.Type == "int":
			n, ok := v.(int64)
			if !ok || n < 0 || n >= int64(math.Pow10(f.Digits)) {
				t.Fatalf("%s.%s = %#v, want int64 of at most %d digits", obj.Name, k, v, f.Digits)
			}
		case f.Type == "currency" || f.Type == "double" || f.Type == "percent":
			x, ok := v.(float64)
			if !ok || x < 0 || x != math.Round(x*math.Pow10(f.Scale))/math.Pow10(f.Scale) {
				t.Fatalf("%s.%s = %#v, want float64 with scale %d", obj.Name, k, v, f.Scale)
			}
		case f.Type == "date":
			d, ok := v.(time.Time)
			if !ok || d.Location() != time.UTC || d.Hour()+d.Minute()+d.Second()+d.Nanosecond() != 0 {
				t.Fatalf("%s.%s = %#v, want time.Time at 00:00 UTC", obj.Name, k, v)
			}
		default:
			t.Fatalf("%s.%s has type %s, which the generator should not fill", obj.Name, k, f.Type)
		}
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func TestValuesHaveSchemaTypesAndFitFieldLengths(t *testing.T) {
	g := New(7)
	contact, account := schema.Contact(), schema.Account()
	for i := range 5000 {
		checkAgainstSchema(t, account, g.Account(), false)
		checkAgainstSchema(t, contact, g.Contact(fmt.Sprintf("001%015d", i%50)), false)
		checkAgainstSchema(t, contact, g.Contact(""), false)
		checkAgainstSchema(t, contact, g.Update("Contact"), true)
		checkAgainstSchema(t, account, g.Update("account"), true)
	}
}

func TestRequiredFieldsAreAlwaysSetAndNeverNulledByUpdates(t *testing.T) {
	g := New(1)
	for range 20000 {
		if s, _ := g.Contact("")["LastName"].(string); s == "" {
			t.Fatal("a contact has no LastName")
		}
		if s, _ := g.Account()["Name"].(string); s == "" {
			t.Fatal("an account has no Name")
		}
		if v, ok := g.Update("Contact")["LastName"]; ok && v == nil {
			t.Fatal("an update nulls Contact.LastName")
		}
		if v, ok := g.Update("Account")["Name"]; ok && v == nil {
			t.Fatal("an update nulls Account.Name")
		}
	}
}

func TestKeySetIsFixedPerObject(t *testing.T) {
	g := New(3)
	want := func(m map[string]any) []string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		return keys
	}
	acc, con := want(g.Account()), want(g.Contact("001000000000000AAA"))
	for range 2000 {
		if got := want(g.Account()); !slices.Equal(got, acc) {
			t.Fatalf("account keys %v, first account had %v", got, acc)
		}
		if got := want(g.Contact("001000000000000AAA")); !slices.Equal(got, con) {
			t.Fatalf("contact keys %v, first contact had %v", got, con)
		}
	}
	if len(acc) != 17 || len(con) != 20 {
		t.Fatalf("account has %d keys (want 17), contact %d (want 20): %v %v", len(acc), len(con), acc, con)
	}
}

func TestEmptyFieldRatesMatchTheIntendedRates(t *testing.T) {
	const n = 20000
	g := New(99)
	nilCount := map[string]int{}
	for range n {
		for k, v := range g.Contact("") {
			if v == nil {
				nilCount["Contact."+k]++
			}
		}
		for k, v := range g.Account() {
			if v == nil {
				nilCount["Account."+k]++
			}
		}
	}
	want := map[string]float64{
		"Contact.FirstName": contactNoFirstName, "Contact.Salutation": contactNoSalutation,
		"Contact.Email": contactNoEmail, "Contact.Phone": contactNoPhone, "Contact.MobilePhone": contactNoMobile,
		"Contact.Fax": contactNoFax, "Contact.AssistantName": contactNoAssistant,
		"Contact.AssistantPhone": contactNoAssistant, "Contact.Department": contactNoDepartment,
		"Contact.Title": contactNoTitle, "Contact.LeadSource": contactNoLeadSource,
		"Contact.Birthdate": contactNoBirthdate, "Contact.Description": contactNoDescription,
		"Contact.MailingCity": contactNoAddress, "Contact.LastName": 0,
		"Account.Name": 0, "Account.Fax": accountNoFax, "Account.Website": accountNoWebsite,
		"Account.TickerSymbol": accountNoTicker, "Account.Description": accountNoDescription,
		"Account.NumberOfEmployees": accountNoEmployees, "Account.BillingCity": accountNoAddress,
	}
	for k, rate := range want {
		got := float64(nilCount[k]) / n
		if math.Abs(got-rate) > 0.02 {
			t.Errorf("%s is empty in %.3f of records, want about %.2f", k, got, rate)
		}
	}
	// The headline expectations of a realistic org, independent of the constants.
	if nilCount["Contact.Fax"] < nilCount["Contact.Phone"]*3 || nilCount["Contact.Description"] < n/3 {
		t.Errorf("fax and description should be mostly missing, phone mostly present: %v", nilCount)
	}
}

func TestNamesAreRealisticAndIncludeNonASCII(t *testing.T) {
	g := New(5)
	seen := map[string]bool{}
	nonASCII := 0
	for range 5000 {
		c := g.Contact("")
		for _, k := range []string{"FirstName", "LastName"} {
			if s, ok := c[k].(string); ok {
				seen[s] = true
				if !isASCII(s) {
					nonASCII++
				}
			}
		}
	}
	for _, name := range []string{"Zoë", "José", "Nguyễn", "Øyvind"} {
		if !seen[name] {
			t.Errorf("%s never appears in 5000 contacts", name)
		}
	}
	if nonASCII < 500 || nonASCII > 5000 {
		t.Errorf("%d of 10000 names are non-ASCII, want a noticeable minority", nonASCII)
	}
	if len(seen) < 200 {
		t.Errorf("only %d distinct names in 5000 contacts", len(seen))
	}
}

func TestEmailsAreDerivedFromNamesAndTheAccountDomain(t *testing.T) {
	g := New(11)
	acc := g.Account()
	for acc["Website"] == nil {
		acc = g.Account()
	}
	g.LinkAccount("001000000000001AAA", acc)
	domain := acc["Website"].(string)[strings.LastIndex(acc["Website"].(string), "/")+1:]
	domain = strings.TrimPrefix(domain, "www.")
	atDomain, named := 0, 0
	for range 500 {
		c := g.Contact("001000000000001AAA")
		email, ok := c["Email"].(string)
		if !ok {
			continue
		}
		if strings.HasSuffix(email, "@"+domain) {
			atDomain++
		}
		if last := slug(c["LastName"].(string)); strings.Contains(email, last) {
			named++
		}
		if c["AccountId"] != "001000000000001AAA" {
			t.Fatalf("AccountId = %v", c["AccountId"])
		}
	}
	if atDomain < 350 {
		t.Errorf("only %d of ~475 emails use the account domain %s", atDomain, domain)
	}
	if named < 250 {
		t.Errorf("only %d of ~475 emails contain the last name", named)
	}
	if slug("Nguyễn") != "nguyen" || slug("Øyvind") != "oyvind" || slug("O'Brien") != "obrien" || slug("Groß") != "gross" {
		t.Errorf("slug folding: %q %q %q %q", slug("Nguyễn"), slug("Øyvind"), slug("O'Brien"), slug("Groß"))
	}
}

func TestBirthdatesFall1940To2005(t *testing.T) {
	g := New(13)
	lo, hi := time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC), time.Time{}
	for range 20000 {
		if d, ok := g.Contact("")["Birthdate"].(time.Time); ok {
			lo, hi = minTime(lo, d), maxTime(hi, d)
		}
	}
	if lo.Year() != 1940 || hi.Year() != 2005 {
		t.Fatalf("birthdates span %s .. %s, want 1940 .. 2005", lo, hi)
	}
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func TestUpdatesChangeOneToThreeFields(t *testing.T) {
	g := New(17)
	sizes := map[int]int{}
	nulls := 0
	for range 6000 {
		u := g.Update("Contact")
		sizes[len(u)]++
		for _, v := range u {
			if v == nil {
				nulls++
			}
		}
	}
	for n := 1; n <= 3; n++ {
		if sizes[n] < 1000 {
			t.Errorf("%d updates of %d fields in 6000, want about 2000 (sizes %v)", sizes[n], n, sizes)
		}
	}
	if len(sizes) != 3 {
		t.Errorf("update sizes %v, want only 1, 2 and 3", sizes)
	}
	if nulls < 700 || nulls > 1300 {
		t.Errorf("%d of 6000 updates null a field, want about 1000", nulls)
	}
	if g.Update("Opportunity") != nil {
		t.Error("Update of an unsupported object should return nil")
	}
}

// TestContactsAllocateLittle guards the seed's cost by its allocation count, which does not depend on how busy
// the machine is; the time per contact is what BenchmarkContact prints (go test -bench Contact).
func TestContactsAllocateLittle(t *testing.T) {
	g := New(1)
	if a := testing.AllocsPerRun(200, func() { _ = g.Contact("001000000000001AAA") }); a > 15 {
		t.Errorf("a contact costs %.0f allocations, want few", a)
	}
}

func BenchmarkContact(b *testing.B) {
	g := New(1)
	b.ReportAllocs()
	for b.Loop() {
		_ = g.Contact("001000000000001AAA")
	}
}

func BenchmarkAccount(b *testing.B) {
	g := New(1)
	b.ReportAllocs()
	for b.Loop() {
		_ = g.Account()
	}
}

func BenchmarkUpdate(b *testing.B) {
	g := New(1)
	b.ReportAllocs()
	for b.Loop() {
		_ = g.Update("Contact")
	}
}
