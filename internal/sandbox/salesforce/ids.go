package salesforce

import (
	"crypto/rand"
	"fmt"
	"math/big"
	"sync"

	"github.com/crmsync/terraform-provider-crmsync/internal/mapping/sfid"
)

// Key prefixes of the Ids the emulator issues (spec section 3).
const (
	prefixAccount = "001"
	prefixContact = "003"
	prefixUser    = "005"
	prefixOrg     = "00D"
	prefixJob     = "750"
	prefixLocator = "01g"
)

// idInstance is the 2-character instance (pod) part of every Id, and idReserved the reserved character
// after it, following the layout `<prefix><instance><reserved><9 base-62 counter>` of spec section 3.
const (
	idInstance = "8d"
	idReserved = "0"
)

// idGen issues 18-character Ids per key prefix from a counter. Counters only grow (also across Reset), so
// an Id issued once never names another record, and Ids of one prefix sort in issue order as strings
// because sfid.Base62 is in ASCII order.
type idGen struct {
	mu   sync.Mutex
	next map[string]uint64
}

func newIDGen() *idGen { return &idGen{next: map[string]uint64{}} }

// New returns the next Id of prefix.
func (g *idGen) New(prefix string) string {
	g.mu.Lock()
	g.next[prefix]++
	n := g.next[prefix]
	g.mu.Unlock()
	return makeID(prefix, n)
}

// Reserve moves the counter of prefix to at least n, so Ids made by makeID(prefix, ≤n) are never reissued.
func (g *idGen) Reserve(prefix string, n uint64) {
	g.mu.Lock()
	if g.next[prefix] < n {
		g.next[prefix] = n
	}
	g.mu.Unlock()
}

// makeID builds the 18-character Id with counter n.
func makeID(prefix string, n uint64) string {
	var b [18]byte
	copy(b[:], prefix)
	copy(b[3:], idInstance)
	copy(b[5:], idReserved)
	for i := 14; i >= 6; i-- {
		b[i] = sfid.Base62[n%62]
		n /= 62
	}
	copy(b[15:], sfid.Suffix(string(b[:15])))
	return string(b[:])
}

// randomBase62 returns n random base-62 characters from crypto/rand, for tokens and secrets.
func randomBase62(n int) string {
	b := make([]byte, n)
	max := big.NewInt(62)
	for i := range b {
		v, err := rand.Int(rand.Reader, max)
		if err != nil {
			panic(fmt.Sprintf("crypto/rand failed: %v", err))
		}
		b[i] = sfid.Base62[v.Int64()]
	}
	return string(b)
}

// normalizeID returns the 18-character form of a 15- or 18-character Id with the given key prefix, or
// false when id is malformed or of another object.
func normalizeID(id, prefix string) (string, bool) {
	id18, err := sfid.To18(id)
	if err != nil || (prefix != "" && sfid.KeyPrefix(id18) != prefix) {
		return "", false
	}
	return id18, true
}
