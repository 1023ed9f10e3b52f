package controlplane

import (
	"crypto/sha256"
	"testing"
	"time"
)

// A status page session ends SessionIdle after its last use and SessionMax after sign-in, and the table of
// sessions stays bounded.
func TestUISessionsExpireAndStayBounded(t *testing.T) {
	var ss sessions
	tok := sha256.Sum256([]byte("t"))
	now := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	id, _ := ss.open(tok, now)
	if ss.lookup(id, now.Add(SessionIdle-time.Minute)) == nil {
		t.Fatal("a session used within the idle time ended")
	}
	for at := now; at.Before(now.Add(SessionMax - time.Minute)); at = at.Add(SessionIdle / 2) {
		if ss.lookup(id, at) == nil {
			t.Fatalf("a session in use ended at %s", at.Sub(now))
		}
	}
	if ss.lookup(id, now.Add(SessionMax+time.Second)) != nil {
		t.Error("a session outlived SessionMax")
	}
	idle, _ := ss.open(tok, now)
	if ss.lookup(idle, now.Add(SessionIdle+time.Second)) != nil {
		t.Error("an idle session outlived SessionIdle")
	}
	if ss.lookup("not-a-session", now) != nil || ss.lookup("", now) != nil {
		t.Error("an unknown cookie value found a session")
	}
	for i := 0; i < maxSessions+10; i++ {
		ss.open(tok, now.Add(time.Duration(i)*time.Millisecond))
	}
	if n := len(ss.byID); n > maxSessions {
		t.Errorf("%d sessions kept, the bound is %d", n, maxSessions)
	}
	last, _ := ss.open(tok, now.Add(time.Hour))
	ss.close(last)
	if ss.lookup(last, now.Add(time.Hour)) != nil {
		t.Error("a closed session still answers")
	}
}
