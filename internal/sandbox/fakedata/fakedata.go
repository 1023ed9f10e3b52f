// Package fakedata generates realistic Salesforce Contact and Account field values for the sandbox's seed
// data and CDC load: names from several countries (including non-ASCII ones such as Zoë, José, Nguyễn and
// Øyvind) with addresses and phone numbers of the same country, emails derived from the names and the
// account's domain, birthdates between 1940 and 2005, multi-sentence descriptions, picklist values of the
// schema, and optional fields left empty at realistic rates.
//
// Values use the Go types of package schema (string, int64, float64, time.Time at midnight UTC for dates,
// nil for null) and respect its field lengths. Every optional field the generator knows is present in the
// returned map, holding nil when empty, so callers can rely on a fixed key set per object.
//
// A Generator is deterministic: the same seed yields the same sequence of records for the same sequence of
// calls. It is not safe for concurrent use; give each goroutine its own. It is built for bulk seeding: a
// record costs a couple of microseconds and about a dozen small allocations, because the generated text
// of one record shares a single backing string and fixed values (names, cities, picklist values) are
// boxed once per process.
package fakedata

import (
	"math/rand/v2"
	"strings"
	"time"
)

// Generator produces records. Create it with New.
type Generator struct {
	rng     *rand.Rand
	buf     []byte            // the generated text of the record being built
	spans   []span            // which part of buf belongs to which field
	domains map[string]string // account ID → email domain, from LinkAccount
}

type span struct {
	key        string
	start, end int
}

// New returns a generator whose sequence is fixed by seed.
func New(seed int64) *Generator {
	return &Generator{
		rng:     rand.New(rand.NewPCG(uint64(seed), 0x6a09e667f3bcc909)), //nolint:gosec // G404: repeatable fake data, not secrets
		buf:     make([]byte, 0, 1024),
		spans:   make([]span, 0, 16),
		domains: map[string]string{},
	}
}

// Rates at which optional fields are empty (nil). They follow what a typical B2B org holds: almost every
// contact has an email and a phone, few have a fax or an assistant, and long descriptions are the exception.
const (
	contactNoFirstName   = 0.02
	contactNoSalutation  = 0.35
	contactNoEmail       = 0.05
	contactNoPhone       = 0.10
	contactNoMobile      = 0.35
	contactNoFax         = 0.80
	contactNoAssistant   = 0.85 // AssistantName and AssistantPhone together
	contactNoDepartment  = 0.20
	contactNoTitle       = 0.10
	contactNoLeadSource  = 0.30
	contactNoBirthdate   = 0.40
	contactNoDescription = 0.60
	contactNoAddress     = 0.15 // all Mailing* fields together

	accountNoNumber      = 0.10
	accountNoPhone       = 0.05
	accountNoFax         = 0.60
	accountNoWebsite     = 0.15
	accountNoSic         = 0.40
	accountNoIndustry    = 0.15
	accountNoType        = 0.10
	accountNoEmployees   = 0.15
	accountNoRevenue     = 0.30
	accountNoTicker      = 0.85
	accountNoDescription = 0.50
	accountNoAddress     = 0.10 // all Billing* fields together
)

// Account returns the fields of a new Account: Name (always set), AccountNumber, Phone, Fax, Website, Sic,
// Industry, Type, NumberOfEmployees (int64), AnnualRevenue (float64), TickerSymbol, Description and the
// Billing address fields.
func (g *Generator) Account() map[string]any {
	m := make(map[string]any, 20)
	g.begin()
	loc := g.locale()
	stem := pick(g, companyStems)
	second := pick(g, companyWords)
	legal := legalForms[g.rng.IntN(len(legalForms))]

	start := len(g.buf)
	g.buf = append(g.buf, stem.s...)
	if second.s != "" {
		g.buf = append(append(g.buf, ' '), second.s...)
	}
	if legal != "" {
		g.buf = append(append(g.buf, ' '), legal...)
	}
	g.end("Name", start)

	if g.empty(accountNoNumber) {
		m["AccountNumber"] = nil
	} else {
		g.pattern("AccountNumber", "CD######", "")
	}
	g.optPhone(m, "Phone", loc, accountNoPhone)
	g.optPhone(m, "Fax", loc, accountNoFax)
	if g.empty(accountNoWebsite) {
		m["Website"] = nil
	} else {
		start := len(g.buf)
		g.buf = append(g.buf, websitePrefixes[g.rng.IntN(len(websitePrefixes))]...)
		g.buf = append(g.buf, stem.slug...)
		if second.slug != "" {
			g.buf = append(append(g.buf, '-'), second.slug...)
		}
		g.buf = append(append(g.buf, '.'), tlds[g.rng.IntN(len(tlds))]...)
		g.end("Website", start)
	}
	if g.empty(accountNoSic) {
		m["Sic"] = nil
	} else {
		g.pattern("Sic", "####", "")
	}
	g.optWord(m, "Industry", industries, accountNoIndustry)
	g.optWord(m, "Type", accountType, accountNoType)
	// Company sizes are roughly log-uniform between 1 and 200,000 employees; revenue follows size.
	employees := int64(1)
	for n := g.rng.IntN(6); n > 0; n-- {
		employees *= int64(2 + g.rng.IntN(9))
	}
	employees = min(employees, 99_999_999) // NumberOfEmployees has 8 digits
	if g.empty(accountNoEmployees) {
		m["NumberOfEmployees"] = nil
	} else {
		m["NumberOfEmployees"] = employees
	}
	if g.empty(accountNoRevenue) {
		m["AnnualRevenue"] = nil
	} else {
		perHead := 80_000 + g.rng.Float64()*220_000
		m["AnnualRevenue"] = float64(int64(float64(employees)*perHead/1000) * 1000) // currency(18, 0)
	}
	if g.empty(accountNoTicker) {
		m["TickerSymbol"] = nil
	} else {
		g.ticker("TickerSymbol", stem.slug)
	}
	g.optDescription(m, "Description", accountNoDescription)
	g.address(m, loc, billing, accountNoAddress)
	g.finish(m)
	return m
}

// LinkAccount tells the generator the ID the store gave an account made by Account, so contacts of that
// account get emails at its website's domain. Without it, Contact derives a stable domain from the ID.
func (g *Generator) LinkAccount(accountID string, account map[string]any) {
	if w, ok := account["Website"].(string); ok {
		w = strings.TrimPrefix(strings.TrimPrefix(strings.TrimPrefix(w, "https://"), "http://"), "www.")
		g.domains[accountID] = w
	}
}

// Contact returns the fields of a new Contact: Salutation, FirstName, LastName (always set), Email, Phone,
// MobilePhone, Fax, AssistantName, AssistantPhone, Department, Title, LeadSource, Birthdate (time.Time at
// 00:00 UTC), Description and the Mailing address fields; AccountId when accountID is not empty.
func (g *Generator) Contact(accountID string) map[string]any {
	m := make(map[string]any, 21)
	g.begin()
	loc := g.locale()
	names := loc
	if g.rng.Float64() < 0.15 { // people move: some names come from another country than the address
		names = g.locale()
	}
	first := pick(g, names.firstNames)
	last := pick(g, names.lastNames)

	m["LastName"] = last.v
	if g.empty(contactNoFirstName) {
		m["FirstName"] = nil
		first = word{}
	} else {
		m["FirstName"] = first.v
	}
	g.optWord(m, "Salutation", salutations, contactNoSalutation)
	if g.empty(contactNoEmail) {
		m["Email"] = nil
	} else {
		g.email("Email", first.slug, last.slug, accountID)
	}
	g.optPhone(m, "Phone", loc, contactNoPhone)
	g.optPhone(m, "MobilePhone", loc, contactNoMobile)
	g.optPhone(m, "Fax", loc, contactNoFax)
	if g.empty(contactNoAssistant) {
		m["AssistantName"], m["AssistantPhone"] = nil, nil
	} else {
		g.personName("AssistantName", names)
		g.phone("AssistantPhone", loc)
	}
	g.optWord(m, "Department", departments, contactNoDepartment)
	g.optWord(m, "Title", titles, contactNoTitle)
	g.optWord(m, "LeadSource", leadSources, contactNoLeadSource)
	if g.empty(contactNoBirthdate) {
		m["Birthdate"] = nil
	} else {
		m["Birthdate"] = birthFrom.AddDate(0, 0, g.rng.IntN(birthDays))
	}
	g.optDescription(m, "Description", contactNoDescription)
	g.address(m, loc, mailing, contactNoAddress)
	if accountID != "" {
		m["AccountId"] = accountID
	}
	g.finish(m)
	return m
}

// Update returns a realistic change to an existing record of object ("Contact" or "Account", any case):
// one to three updatable fields, of which in about one change in six one optional field is set to nil and
// the others get new values. Required fields (LastName, Account Name) are never nulled. It returns nil for
// other objects.
func (g *Generator) Update(object string) map[string]any {
	var changes []change
	var nullable []string
	switch strings.ToLower(object) {
	case "contact":
		changes, nullable = contactChanges, contactNullable
	case "account":
		changes, nullable = accountChanges, accountNullable
	default:
		return nil
	}
	n := 1 + g.rng.IntN(3)
	m := make(map[string]any, n)
	g.begin()
	if g.rng.Float64() < 1.0/6 {
		m[nullable[g.rng.IntN(len(nullable))]] = nil
	}
	loc := g.locale()
	for len(m)+len(g.spans) < n {
		c := changes[g.rng.IntN(len(changes))]
		if _, dup := m[c.field]; dup || g.pending(c.field) {
			continue
		}
		if v := c.fill(g, c.field, loc); !g.pending(c.field) { // generated text is added by finish
			m[c.field] = v
		}
	}
	g.finish(m)
	return m
}

// change is one kind of update: fill returns the field's new value or, for generated text, records it in
// the generator's buffer for finish.
type change struct {
	field string
	fill  func(g *Generator, key string, l *locale) any
}

func textChange(f func(g *Generator, key string, l *locale)) func(*Generator, string, *locale) any {
	return func(g *Generator, key string, l *locale) any { f(g, key, l); return nil }
}

var (
	contactChanges = []change{
		{"Title", func(g *Generator, _ string, _ *locale) any { return pick(g, titles).v }},
		{"Department", func(g *Generator, _ string, _ *locale) any { return pick(g, departments).v }},
		{"Phone", textChange((*Generator).phone)},
		{"MobilePhone", textChange((*Generator).phone)},
		{"Email", textChange(func(g *Generator, key string, l *locale) {
			g.email(key, pick(g, l.firstNames).slug, pick(g, l.lastNames).slug, "")
		})},
		{"LastName", func(g *Generator, _ string, l *locale) any { return pick(g, l.lastNames).v }}, // e.g. after marriage
		{"Salutation", func(g *Generator, _ string, _ *locale) any { return pick(g, salutations).v }},
		{"LeadSource", func(g *Generator, _ string, _ *locale) any { return pick(g, leadSources).v }},
		{"Description", textChange(func(g *Generator, key string, _ *locale) { g.description(key) })},
		{"AssistantName", textChange((*Generator).personName)},
		{"MailingStreet", textChange((*Generator).street)},
		{"MailingCity", func(g *Generator, _ string, l *locale) any { return l.cities[g.rng.IntN(len(l.cities))].name.v }},
	}
	contactNullable = []string{"Fax", "MobilePhone", "AssistantName", "AssistantPhone", "Description",
		"Department", "Title", "LeadSource"}

	accountChanges = []change{
		{"Phone", textChange((*Generator).phone)},
		{"Fax", textChange((*Generator).phone)},
		{"Type", func(g *Generator, _ string, _ *locale) any { return pick(g, accountType).v }},
		{"Industry", func(g *Generator, _ string, _ *locale) any { return pick(g, industries).v }},
		{"NumberOfEmployees", func(g *Generator, _ string, _ *locale) any { return int64(1 + g.rng.IntN(50_000)) }},
		{"AnnualRevenue", func(g *Generator, _ string, _ *locale) any { return float64(1000 * (1 + g.rng.IntN(5_000_000))) }},
		{"Description", textChange(func(g *Generator, key string, _ *locale) { g.description(key) })},
		{"BillingStreet", textChange((*Generator).street)},
		{"Sic", textChange(func(g *Generator, key string, _ *locale) { g.pattern(key, "####", "") })},
		{"AccountNumber", textChange(func(g *Generator, key string, _ *locale) { g.pattern(key, "CD######", "") })},
	}
	accountNullable = []string{"Fax", "Website", "Sic", "TickerSymbol", "Description", "AnnualRevenue"}
)

// begin starts a record: generated text goes into buf, one span per field.
func (g *Generator) begin() {
	g.buf, g.spans = g.buf[:0], g.spans[:0]
}

// end records buf[start:] as the value of key.
func (g *Generator) end(key string, start int) {
	g.spans = append(g.spans, span{key, start, len(g.buf)})
}

func (g *Generator) pending(key string) bool {
	for _, s := range g.spans {
		if s.key == key {
			return true
		}
	}
	return false
}

// finish converts the record's text to one string and stores each field's slice of it in m.
func (g *Generator) finish(m map[string]any) {
	text := string(g.buf)
	for _, s := range g.spans {
		m[s.key] = text[s.start:s.end]
	}
}

// empty reports, with probability p, that an optional field stays empty.
func (g *Generator) empty(p float64) bool { return g.rng.Float64() < p }

func pick(g *Generator, ws []word) word { return ws[g.rng.IntN(len(ws))] }

func (g *Generator) optWord(m map[string]any, key string, ws []word, pNil float64) {
	if g.empty(pNil) {
		m[key] = nil
	} else {
		m[key] = pick(g, ws).v
	}
}

func (g *Generator) optPhone(m map[string]any, key string, l *locale, pNil float64) {
	if g.empty(pNil) {
		m[key] = nil
	} else {
		g.phone(key, l)
	}
}

func (g *Generator) optDescription(m map[string]any, key string, pNil float64) {
	if g.empty(pNil) {
		m[key] = nil
	} else {
		g.description(key)
	}
}

var localeWeightTotal = func() int {
	t := 0
	for _, l := range locales {
		t += l.weight
	}
	return t
}()

func (g *Generator) locale() *locale {
	n := g.rng.IntN(localeWeightTotal)
	for _, l := range locales {
		if n < l.weight {
			return l
		}
		n -= l.weight
	}
	return locales[0]
}

// pattern sets key to p expanded.
func (g *Generator) pattern(key, p, area string) {
	start := len(g.buf)
	g.expand(p, area)
	g.end(key, start)
}

// expand appends p with '#' replaced by a random digit, '@' by a random capital letter and 'A' by area.
func (g *Generator) expand(p, area string) {
	for i := 0; i < len(p); i++ {
		switch c := p[i]; c {
		case '#':
			g.buf = append(g.buf, digits[g.rng.IntN(10)])
		case '@':
			g.buf = append(g.buf, letters[g.rng.IntN(26)])
		case 'A':
			g.buf = append(g.buf, area...)
		default:
			g.buf = append(g.buf, c)
		}
	}
}

// phone sets key to a number in one of the locale's usual formats, with the area code of one of its cities.
func (g *Generator) phone(key string, l *locale) {
	c := l.cities[g.rng.IntN(len(l.cities))]
	g.pattern(key, l.phoneFmts[g.rng.IntN(len(l.phoneFmts))], c.areaCode)
}

func (g *Generator) personName(key string, l *locale) {
	start := len(g.buf)
	g.buf = append(append(append(g.buf, pick(g, l.firstNames).s...), ' '), pick(g, l.lastNames).s...)
	g.end(key, start)
}

func (g *Generator) street(key string, l *locale) {
	start := len(g.buf)
	name := l.streets[g.rng.IntN(len(l.streets))]
	if l.streetFmt == 0 {
		g.buf = appendInt(g.buf, 1+g.rng.IntN(l.houseMax))
		g.buf = append(append(g.buf, ' '), name...)
	} else {
		g.buf = append(append(g.buf, name...), ' ')
		g.buf = appendInt(g.buf, 1+g.rng.IntN(l.houseMax))
	}
	if l.secondLine != "" && g.rng.Float64() < 0.1 { // textarea street fields often hold a second line
		g.expand(l.secondLine, "")
	}
	g.end(key, start)
}

// addressKeys are the five fields of a compound address, as constants so the hot path builds no keys.
type addressKeys struct{ street, city, state, postal, country string }

var (
	mailing = addressKeys{"MailingStreet", "MailingCity", "MailingState", "MailingPostalCode", "MailingCountry"}
	billing = addressKeys{"BillingStreet", "BillingCity", "BillingState", "BillingPostalCode", "BillingCountry"}
)

// address fills all five address fields from one city of the locale, or leaves all five empty.
func (g *Generator) address(m map[string]any, l *locale, k addressKeys, pNil float64) {
	if g.empty(pNil) {
		m[k.street], m[k.city], m[k.state], m[k.postal], m[k.country] = nil, nil, nil, nil, nil
		return
	}
	c := &l.cities[g.rng.IntN(len(l.cities))]
	g.street(k.street, l)
	m[k.city] = c.name.v
	m[k.state] = c.state.v
	g.pattern(k.postal, c.postal, "")
	m[k.country] = l.country.v
}

// email sets key to first.last@domain (or one of a few other common patterns) built from ASCII slugs. The
// domain is the account's when the contact has one, a free-mail provider otherwise or occasionally.
func (g *Generator) email(key, first, last, accountID string) {
	start := len(g.buf)
	b := g.buf
	switch n := g.rng.IntN(10); {
	case first == "":
		b = append(b, last...)
	case n < 5:
		b = append(append(append(b, first...), '.'), last...)
	case n < 7:
		b = append(append(b, first[0]), last...)
	case n < 8:
		b = append(append(append(b, first...), '_'), last...)
	case n < 9:
		b = append(append(b, first...), last[0])
	default:
		b = append(b, first...)
	}
	b = b[:min(len(b), start+40)] // keeps the address within Email's 80 characters
	if accountID != "" && g.rng.Float64() < 0.9 {
		b = append(append(b, '@'), g.accountDomain(accountID)...)
	} else {
		if g.rng.IntN(3) == 0 {
			b = appendInt(b, 1+g.rng.IntN(99))
		}
		b = append(append(b, '@'), freeMail[g.rng.IntN(len(freeMail))]...)
	}
	g.buf = b
	g.end(key, start)
}

func (g *Generator) accountDomain(accountID string) string {
	if d, ok := g.domains[accountID]; ok {
		return d
	}
	// A stable domain per account without LinkAccount: hash the ID onto the company pool.
	var h uint32 = 2166136261
	for i := 0; i < len(accountID); i++ {
		h = (h ^ uint32(accountID[i])) * 16777619
	}
	d := companyStems[int(h)%len(companyStems)].slug + "." + tlds[int(h>>8)%len(tlds)]
	g.domains[accountID] = d
	return d
}

var birthFrom = time.Date(1940, 1, 1, 0, 0, 0, 0, time.UTC)

const birthDays = 66*365 + 16 // 1940-01-01 .. 2005-12-31

// strides are the steps coprime with len(sentences), so a description never repeats a sentence.
var strides = func() []int {
	var out []int
	for s := 1; s < len(sentences); s++ {
		a, b := s, len(sentences)
		for b != 0 {
			a, b = b, a%b
		}
		if a == 1 {
			out = append(out, s)
		}
	}
	return out
}()

// description sets key to two to four distinct sentences.
func (g *Generator) description(key string) {
	start := len(g.buf)
	i := g.rng.IntN(len(sentences))
	step := strides[g.rng.IntN(len(strides))]
	for n := 2 + g.rng.IntN(3); n > 0; n-- {
		g.buf = append(g.buf, sentences[i]...)
		if n > 1 {
			g.buf = append(g.buf, ' ')
		}
		i = (i + step) % len(sentences)
	}
	g.end(key, start)
}

// ticker sets key to a 3–4 letter symbol starting with the company's initials.
func (g *Generator) ticker(key, stemSlug string) {
	start := len(g.buf)
	for i := range 3 + g.rng.IntN(2) {
		if i < 2 && i < len(stemSlug) && stemSlug[i] >= 'a' && stemSlug[i] <= 'z' {
			g.buf = append(g.buf, stemSlug[i]-'a'+'A')
		} else {
			g.buf = append(g.buf, letters[g.rng.IntN(26)])
		}
	}
	g.end(key, start)
}

const (
	digits  = "0123456789"
	letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
)

func appendInt(b []byte, n int) []byte {
	var tmp [20]byte
	i := len(tmp)
	for {
		i--
		tmp[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, tmp[i:]...)
}
