package store

import (
	"testing"
	"time"
)

// A claim is one holder's at a time: renewed by it with the same token, refused to another while it lives,
// taken over with a higher token once it expired, free again once released.
func TestClaimsAreOneHoldersAtATime(t *testing.T) {
	s := behaviourStore(t)
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s.Now = func() time.Time { return now }
	ctx := t.Context()
	claim := func(holder string) (int64, bool) {
		t.Helper()
		tok, ok, err := s.Claim(ctx, "backup:x", holder, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		return tok, ok
	}
	tok, ok := claim("replica-a")
	if !ok || tok != 1 {
		t.Fatalf("a free claim: token %d, ok %v", tok, ok)
	}
	now = now.Add(20 * time.Second)
	if tok, ok := claim("replica-a"); !ok || tok != 1 {
		t.Errorf("renewed by its holder: token %d, ok %v; want 1, true", tok, ok)
	}
	now = now.Add(20 * time.Second) // 20 s after the renewal: still live
	if _, ok := claim("replica-b"); ok {
		t.Error("another replica took a live claim")
	}
	now = now.Add(11 * time.Second) // expired
	if tok, ok := claim("replica-b"); !ok || tok != 2 {
		t.Errorf("an expired claim taken over: token %d, ok %v; want 2, true", tok, ok)
	}
	if _, ok := claim("replica-a"); ok {
		t.Error("the old holder renewed a claim another took over")
	}
	if err := s.ReleaseClaim(ctx, "backup:x", "replica-a"); err != nil {
		t.Fatal(err)
	}
	if _, ok := claim("replica-c"); ok {
		t.Error("a release by a replica that does not hold the claim freed it")
	}
	if err := s.ReleaseClaim(ctx, "backup:x", "replica-b"); err != nil {
		t.Fatal(err)
	}
	if tok, ok := claim("replica-c"); !ok || tok != 3 {
		t.Errorf("a released claim taken: token %d, ok %v; want 3 (above every earlier holder's), true", tok, ok)
	}
}
