package api

// The agent pool (docs/scaling.md): `crmsync agent --control-plane URL` without --connector asks the control
// plane, every few seconds, which connectors to take and which to give back.

// PoolRequest is POST /v1/agent/pool: a pool agent's check-in.
type PoolRequest struct {
	// Host names the agent process (its host name; a pod's name): one agent identity may run as several
	// processes, told apart by host.
	Host string `json:"host" crmsync:"required"`
	// MaxConnectors is how many connectors the agent runs at most.
	MaxConnectors int `json:"max_connectors" crmsync:"required"`
	// Running lists the connectors the agent runs now.
	Running []string `json:"running"`
	// Draining is set by an agent that is stopping: it takes nothing and counts for no share.
	Draining bool `json:"draining,omitempty"`
}

// PoolAnswer tells a pool agent what to do until its next check-in.
type PoolAnswer struct {
	// Take lists active connectors no live agent holds, for the agent to lease (another agent may be quicker:
	// a lease refused with 409 is skipped).
	Take []string `json:"take"`
	// Release lists connectors the agent runs above its fair share while others have room: it drains them,
	// commits and releases their leases, for the others to take.
	Release []string `json:"release"`
	// Members is the number of live pool agents, the asking one included.
	Members int `json:"members"`
	// PollSeconds is when to check in again.
	PollSeconds float64 `json:"poll_seconds"`
}
