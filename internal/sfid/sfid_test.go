package sfid

import "testing"

// The test vectors of specs/salesforce-api.md section 3.
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

// The example of ARCHITECTURE.md section 4.
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
