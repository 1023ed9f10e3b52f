package salesforce

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/crmsync/terraform-provider-crmsync/internal/sandbox/fakedata"
)

// seed fills the org with cfg.Accounts accounts and cfg.Contacts contacts from package fakedata (about a
// third of the contacts without an account). Seeded records were created and last modified between about
// 400 and 5 days ago, before the CDC retention window, so they produce no change events.
func (e *Emulator) seed() error {
	if e.cfg.Accounts == 0 && e.cfg.Contacts == 0 {
		return nil
	}
	g := fakedata.New(e.cfg.Seed)
	rng := rand.New(rand.NewPCG(uint64(e.cfg.Seed), 0x5eed)) //nolint:gosec // repeatable seed data, not secrets
	acc, ok := e.store.meta("Account")
	con, ok2 := e.store.meta("Contact")
	if !ok || !ok2 {
		return fmt.Errorf("salesforce emulator: the schema lacks Account or Contact")
	}
	now := e.clock.Now().UTC().Truncate(time.Second)
	base := now.Add(-400 * 24 * time.Hour)
	span := 390 * 24 * time.Hour
	user := any(e.userID)

	build := func(m *objMeta, vals map[string]any, id string, i, n int) *record {
		r := &record{vals: make([]any, len(m.obj.Fields))}
		for k, v := range vals {
			if pos, ok := m.exact[k]; ok {
				r.vals[pos] = v
			}
		}
		created := base.Add(time.Duration(float64(span) * float64(i) / float64(n))).Truncate(time.Second)
		modified := created.Add(time.Duration(rng.Int64N(int64(5 * 24 * time.Hour)))).Truncate(time.Second)
		c, mod := any(created), any(modified)
		r.vals[m.id], r.vals[m.isDeleted] = id, false
		r.vals[m.created], r.vals[m.createdBy] = c, user
		r.vals[m.modified], r.vals[m.modifiedBy], r.vals[m.modstamp] = mod, user, mod
		r.vals[m.owner] = user
		if m.name >= 0 {
			r.vals[m.name] = fullName(r.vals[m.firstName], r.vals[m.lastName])
		}
		return r
	}

	e.store.mu.Lock()
	defer e.store.mu.Unlock()
	accountIDs := make([]string, 0, e.cfg.Accounts)
	for i := 0; i < e.cfg.Accounts; i++ {
		vals := g.Account()
		id := e.ids.New(acc.obj.KeyPrefix)
		g.LinkAccount(id, vals)
		accountIDs = append(accountIDs, id)
		e.store.insertSeed(acc.obj.Name, build(acc, vals, id, i, e.cfg.Accounts))
	}
	for i := 0; i < e.cfg.Contacts; i++ {
		accountID := ""
		if len(accountIDs) > 0 && rng.IntN(3) != 0 {
			accountID = accountIDs[rng.IntN(len(accountIDs))]
		}
		vals := g.Contact(accountID)
		id := e.ids.New(con.obj.KeyPrefix)
		e.store.insertSeed(con.obj.Name, build(con, vals, id, i, e.cfg.Contacts))
	}
	return nil
}
