package agent

import "time"

// Group commit of change windows. A streaming table writes its window as soon as its writer is free: the
// changes that arrive while a write is in flight make the next window (the way a database's group commit or
// a Kafka producer with in-flight batching works), so a trickle is written change by change at once and a
// burst in growing windows. What bounds the request rate is Dataverse's budget, not a timer: each table may
// start a window write at most once per windowInterval, its share of the application users' request budget;
// under load the windows grow instead of the requests multiplying. The flush interval (Tuning.FlushInterval)
// is only an upper bound on that wait.

// changeRequestShare is the request rate, per Dataverse application user, that change windows may use: half of
// a user's sustained budget (6,000 requests per 5 minutes, 20 per second), the other half left to loads,
// re-reads, out-of-band checks and reconciliations.
const changeRequestShare = 10.0

// windowInterval is the shortest time between the starts of two window writes of one table: the table's
// share (an even split among the connector's tables) of the users' change budget, capped by flush (a shorter
// flush interval trades budget for latency).
func windowInterval(flush time.Duration, users, tables int) time.Duration {
	share := time.Duration(float64(time.Second) * float64(max(1, tables)) / (changeRequestShare * float64(max(1, users))))
	return min(share, flush)
}
