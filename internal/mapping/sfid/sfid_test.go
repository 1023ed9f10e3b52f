package sfid

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/uuid"
)

// Ids and their case-safe 18-character forms, as Salesforce documents the suffix.
func TestTo18MatchesSpecVectors(t *testing.T) {
	cases := map[string]string{
		"a0RE000000IJmcN": "a0RE000000IJmcNMAT",
		"001M000000qfPyS": "001M000000qfPySIAU",
		"a01M00000062mPg": "a01M00000062mPgIAI",
		"a0FE000000D6r3F": "a0FE000000D6r3FMAR",
		"0F9E000000092w2": "0F9E000000092w2KAA",
		"aaaaaaaaaaaaaaa": "aaaaaaaaaaaaaaaAAA",
		"AbCdEfGhIjKlMnO": "AbCdEfGhIjKlMnOVKV",
		"aBcDEfgHIJKLMNO": "aBcDEfgHIJKLMNO025",
	}
	for in, want := range cases {
		got, err := To18(in)
		if err != nil || got != want {
			t.Errorf("To18(%q) = %q, %v; want %q", in, got, err, want)
		}
		again, err := To18(want)
		if err != nil || again != want {
			t.Errorf("To18(%q) = %q, %v; want it unchanged", want, again, err)
		}
	}
}

func TestTo18RejectsMalformedIds(t *testing.T) {
	for _, bad := range []string{"", "001", "001M000000qfPySIA", "001M000000qfPy!", "001M000000qfPySIAX", "001M000000qfPySIAUx"} {
		if _, err := To18(bad); err == nil {
			t.Errorf("To18(%q) accepted a malformed Id", bad)
		}
	}
}

func TestSuffixIsCaseInsensitiveOnInput(t *testing.T) {
	got, err := To18("001M000000qfPySiau")
	if err != nil || got != "001M000000qfPySIAU" {
		t.Fatalf("To18 with a lower-case suffix = %q, %v", got, err)
	}
}

func TestEqualComparesFirst15CaseSensitively(t *testing.T) {
	if !Equal("001M000000qfPyS", "001M000000qfPySIAU") {
		t.Error("15- and 18-character forms of one Id should be equal")
	}
	if Equal("001M000000qfPyS", "001M000000qfPys") {
		t.Error("Ids differing in case are different records")
	}
}

// The example of docs/architecture.md.
func TestGUIDMatchesArchitectureExample(t *testing.T) {
	if got := Namespace.String(); got != "5468e1b7-8037-5cb0-9c25-180905dcdad6" {
		t.Fatalf("namespace = %s", got)
	}
	for _, id := range []string{"001D000000IqhSL", "001D000000IqhSLIAZ"} {
		g, err := GUID(id)
		if err != nil {
			t.Fatal(err)
		}
		if g.String() != "bb9ff4c0-591c-5a23-8cbe-566a8191dff5" {
			t.Errorf("GUID(%s) = %s", id, g)
		}
	}
}

// TestGUIDIsUUIDv5OfThe18CharacterId checks the allocation-free GUID against the uuid package's UUIDv5 of
// To18 on random Ids of both lengths and random case, and that malformed Ids fail alike.
func TestGUIDIsUUIDv5OfThe18CharacterId(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 20000 {
		b := make([]byte, 15)
		for i := range b {
			b[i] = Base62[r.IntN(len(Base62))]
		}
		id := string(b)
		if r.IntN(2) == 0 {
			id += strings.ToLower(Suffix(id)) // an 18-character Id, its suffix in either case
			if r.IntN(2) == 0 {
				id = id[:15] + Suffix(id[:15])
			}
		}
		id18, err := To18(id)
		if err != nil {
			t.Fatal(err)
		}
		g, err := GUID(id)
		if want := uuid.NewSHA1(Namespace, []byte(id18)); err != nil || g != want {
			t.Fatalf("GUID(%q) = %v, %v; want %v", id, g, err, want)
		}
		// Averaged over 100 runs: a single run also counts what another goroutine allocates meanwhile (it failed
		// once under load), while an allocation of GUID itself shows in every run.
		if allocs := testing.AllocsPerRun(100, func() { _, _ = GUID(id) }); allocs != 0 {
			t.Fatalf("GUID allocates %v times", allocs)
		}
	}
	for _, bad := range []string{"", "003D000000QV9n", "003D000000QV9n2IAE", "003D000000QV9n2-AD", "003D000000QV9n2IA"} {
		_, err := GUID(bad)
		_, want := To18(bad)
		if err == nil || want == nil || err.Error() != want.Error() {
			t.Errorf("GUID(%q) error %v, want %v", bad, err, want)
		}
	}
}

func TestAppendGUIDWritesTheCanonicalForm(t *testing.T) {
	for _, g := range []uuid.UUID{uuid.Nil, MustGUID("003D000000QV9n2"), uuid.New()} {
		if got := string(AppendGUID([]byte("x"), g)); got != "x"+g.String() {
			t.Errorf("AppendGUID = %s, want x%s", got, g)
		}
	}
}
