package agent

import (
	"testing"
	"time"
)

func TestWindowIntervalIsTheTablesShareOfTheUsersBudget(t *testing.T) {
	for _, c := range []struct {
		flush         time.Duration
		users, tables int
		want          time.Duration
	}{
		{time.Minute, 1, 1, 100 * time.Millisecond},            // one user, one table: 10 requests/s
		{time.Minute, 1, 2, 200 * time.Millisecond},            // two tables share it
		{time.Minute, 4, 2, 50 * time.Millisecond},             // four users: four times the budget
		{100 * time.Millisecond, 1, 4, 100 * time.Millisecond}, // the flush interval caps the wait
		{time.Minute, 0, 0, 100 * time.Millisecond},            // degenerate counts read as one
	} {
		if got := windowInterval(c.flush, c.users, c.tables); got != c.want {
			t.Errorf("windowInterval(%s, %d users, %d tables) = %s, want %s", c.flush, c.users, c.tables, got, c.want)
		}
	}
}
